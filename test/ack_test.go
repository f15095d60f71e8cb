package test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // reads the controller's and the agent's databases
)

// startAgentWithConfig runs an enrolled agent with the test's usual config
// plus extra YAML lines.
func (p *plant) startAgentWithConfig(id string, extra ...string) *proc {
	p.t.Helper()
	cfg := filepath.Join(p.dir, id+"-agent.yaml")
	body := fmt.Sprintf("socket: %s\noutbox_interval: 1s\n%s\n", p.socket(id), strings.Join(extra, "\n"))
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		p.t.Fatal(err)
	}
	a := start(p.t, "agent "+id, bin.agent, "run", "--state", p.stateDir(id), "--config", cfg)
	p.agents[id] = a
	return a
}

// sideloadDirs drops n app directories named prefix-NNN into the agent's
// apps directory, each in one rename: with sideloading banned the guard
// quarantines each and reports two events (sideload_blocked, quarantined).
func (p *plant) sideloadDirs(id, prefix string, from, n int, pause time.Duration) {
	p.t.Helper()
	apps := filepath.Join(p.stateDir(id), "apps")
	stage := filepath.Join(p.stateDir(id), "stage")
	if err := os.MkdirAll(stage, 0o700); err != nil {
		p.t.Fatal(err)
	}
	for i := from; i < from+n; i++ {
		name := fmt.Sprintf("%s-%03d", prefix, i)
		dir := filepath.Join(stage, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			p.t.Error(err)
			return
		}
		os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\n"), 0o755)
		if err := os.Rename(dir, filepath.Join(apps, name)); err != nil {
			p.t.Error(err)
			return
		}
		if pause > 0 {
			time.Sleep(pause) // pacing the producer, not waiting for a result
		}
	}
}

// storedQuarantines reads the controller's database: how many
// "quarantined" events it stored for each app of the device, and how many
// events of the device in all.
func (p *plant) storedQuarantines(id string) (map[string]int, int) {
	p.t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(p.ctlDir, "controller.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		p.t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT kind, details FROM events WHERE device_id = ?`, id)
	if err != nil {
		p.t.Fatalf("read the controller's events: %v", err)
	}
	defer rows.Close()
	byApp, total := map[string]int{}, 0
	for rows.Next() {
		var kind, details string
		if err := rows.Scan(&kind, &details); err != nil {
			p.t.Fatal(err)
		}
		total++
		if kind != "quarantined" {
			continue
		}
		var d map[string]string
		json.Unmarshal([]byte(details), &d)
		byApp[d["app"]]++
	}
	if err := rows.Err(); err != nil {
		p.t.Fatal(err)
	}
	return byApp, total
}

// storedKinds counts the device's stored events by kind.
func (p *plant) storedKinds(id string) map[string]int {
	p.t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(p.ctlDir, "controller.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		p.t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT kind, COUNT(*) FROM events WHERE device_id = ? GROUP BY kind`, id)
	if err != nil {
		p.t.Fatalf("read the controller's events: %v", err)
	}
	defer rows.Close()
	kinds := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			p.t.Fatal(err)
		}
		kinds[k] = n
	}
	return kinds
}

// pendingEvents is the agent's outbox size (`edgewarden-agent status`).
func (p *plant) pendingEvents(id string) int {
	p.t.Helper()
	var st struct {
		PendingEvents int `json:"pending_events"`
	}
	out, code := run(p.t, nil, nil, bin.agent, "status", "--state", p.stateDir(id), "-o", "json")
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		p.t.Fatalf("agent status: exit %d: %s", code, out)
	}
	return st.PendingEvents
}

// allStoredOnce waits until the agent's outbox is empty and then checks
// that the controller stored exactly one quarantine event for each of the
// n apps prefix-NNN: produced = stored, no duplicates, nothing else.
func (p *plant) allStoredOnce(id, prefix string, n int) {
	p.t.Helper()
	eventually(p.t, 90*time.Second, func() (bool, string) {
		byApp, _ := p.storedQuarantines(id)
		pending := p.pendingEvents(id)
		return pending == 0 && len(byApp) >= n, fmt.Sprintf("%d events still in the outbox, %d of %d quarantines stored", pending, len(byApp), n)
	})
	byApp, _ := p.storedQuarantines(id)
	for i := range n {
		name := fmt.Sprintf("%s-%03d", prefix, i)
		if byApp[name] != 1 {
			p.t.Errorf("app %s: %d quarantine events stored, want exactly 1", name, byApp[name])
		}
		delete(byApp, name)
	}
	if len(byApp) != 0 {
		p.t.Errorf("quarantine events stored for apps never produced: %v", byApp)
	}
}

var sentEvents = regexp.MustCompile(`msg="sent events; waiting for the controller's acknowledgement" .*?events=(\d+)`)

// sentCount sums the events the agent's debug log says the broker
// acknowledged (PUBACK).
func sentCount(logs string) int {
	n := 0
	for _, m := range sentEvents.FindAllStringSubmatch(logs, -1) {
		v, _ := strconv.Atoi(m[1])
		n += v
	}
	return n
}

// TestExternalBrokerCrashLosesNoEvents: events produced while the
// controller is down are acknowledged (PUBACK) by an external mosquitto,
// which is then killed with -9 before it saved them. The agent kept them,
// since only the controller's acknowledgement deletes them: after
// everything restarts each is stored exactly once.
func TestExternalBrokerCrashLosesNoEvents(t *testing.T) {
	brokerAddr := freeAddr(t)
	persist := t.TempDir()
	// No autosave during the test: a crash loses whatever mosquitto held.
	noSave := map[string]string{`(?m)^autosave_interval .*$`: "autosave_interval 3600"}
	var mosq *proc
	p := newPlantWith(t, func(p *plant) []string {
		mosq = startMosquittoIn(t, p.ctlDir, brokerAddr, persist, noSave)
		return []string{"--broker-url", "tls://" + brokerAddr}
	})
	p.mustEnroll("dev-1", p.enrollToken())
	agent := p.startAgentWithConfig("dev-1", "log_level: debug", "ack_timeout: 2s")
	p.converged(map[string][]string{"dev-1": nil})

	p.ctl.kill()
	const n = 60
	p.sideloadDirs("dev-1", "lost", 0, n, 0)
	eventually(t, 60*time.Second, func() (bool, string) {
		sent, pending := sentCount(agent.logs.String()), p.pendingEvents("dev-1")
		return sent >= 2*n && pending == 2*n, fmt.Sprintf("%d of %d events PUBACKed by mosquitto, %d in the outbox", sent, 2*n, pending)
	})

	mosq.kill() // SIGKILL: the queued events for the controller are gone
	startMosquittoIn(t, p.ctlDir, brokerAddr, persist, noSave)
	p.startController()
	p.allStoredOnce("dev-1", "lost", n)
}

// TestEmbeddedBrokerRestartLosesNoEvents: the controller (with its
// embedded broker) is killed with -9 and restarted while the device keeps
// producing events: each is stored exactly once.
func TestEmbeddedBrokerRestartLosesNoEvents(t *testing.T) {
	p := newPlant(t)
	p.mustEnroll("dev-1", p.enrollToken())
	p.startAgentWithConfig("dev-1", "ack_timeout: 2s")
	p.converged(map[string][]string{"dev-1": nil})

	const n = 60
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.sideloadDirs("dev-1", "stream", 0, n, 40*time.Millisecond)
	}()
	eventually(t, 30*time.Second, func() (bool, string) {
		byApp, _ := p.storedQuarantines("dev-1")
		return len(byApp) >= 10, fmt.Sprintf("%d quarantines stored", len(byApp))
	})
	p.ctl.kill() // mid-stream
	p.startController()
	<-done
	p.allStoredOnce("dev-1", "stream", n)
}

// TestPolicyExpiryReported: the controller goes away, the device's
// document expires: the agent queues a policy_expired event at once (and
// again on reconnect while still expired), and once the controller is back
// it is stored.
func TestPolicyExpiryReported(t *testing.T) {
	p := newPlantWith(t, func(*plant) []string { return []string{"--document-ttl", "6s"} })
	p.mustEnroll("dev-1", p.enrollToken())
	agent := p.startAgentWithConfig("dev-1")
	p.converged(map[string][]string{"dev-1": nil})
	p.ctl.kill()
	eventually(t, 30*time.Second, func() (bool, string) {
		return strings.Contains(agent.logs.String(), "kind=policy_expired phase=expired"), "no policy_expired event queued"
	})
	if got := p.pendingEvents("dev-1"); got < 1 {
		t.Fatalf("%d events in the outbox after the expiry, want the policy_expired event", got)
	}
	p.startController()
	eventually(t, 60*time.Second, func() (bool, string) {
		kinds := p.storedKinds("dev-1")
		return kinds["policy_expired"] >= 1 && p.pendingEvents("dev-1") == 0, fmt.Sprintf("stored %v", kinds)
	})
	// Reported once per expiry, not on every tick while the controller
	// was away.
	if n := strings.Count(agent.logs.String(), "phase=expired"); n != 1 {
		t.Fatalf("the expiry was reported %d times", n)
	}
}
