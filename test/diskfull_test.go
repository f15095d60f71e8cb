package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/test/fulldisk"
)

// deploySleeper publishes and assigns to group a signed process app "keeper"
// that just sleeps, and waits until it runs on device id; it returns its pid.
func (p *plant) deploySleeper(id, group string) int {
	p.t.Helper()
	cosign := cosignBin(p.t)
	work := filepath.Join(p.dir, "publisher")
	os.MkdirAll(work, 0o755)
	pass := []string{"COSIGN_PASSWORD=publisher secret"}
	mustInDir(p.t, work, pass, cosign, "generate-key-pair")
	p.mustCLI("publishers", "add", "acme", "--key", filepath.Join(work, "cosign.pub"))
	if err := os.WriteFile(filepath.Join(work, "run.sh"), []byte("#!/bin/sh\nexec sleep 100000\n"), 0o755); err != nil {
		p.t.Fatal(err)
	}
	out, code := inDir(p.t, work, p.env(), bin.cli, "apps", "manifest", "--name", "keeper", "--version", "1.0.0",
		"--publisher", "acme", "--runtime", "process", "--exec", "run.sh", "run.sh")
	if code != 0 {
		p.t.Fatalf("apps manifest: %s", out)
	}
	os.WriteFile(filepath.Join(work, "manifest.json"), []byte(out), 0o644)
	mustInDir(p.t, work, append(p.env(), pass...), bin.cli, "apps", "sign", "--key", filepath.Join(work, "cosign.key"), "manifest.json")
	mustInDir(p.t, work, p.env(), bin.cli, "apps", "push", "--manifest", "manifest.json", "--signature", "manifest.json.sig", "run.sh")
	p.mustCLI("apps", "assign", "keeper", "1.0.0", "--group", group)
	pidFile := filepath.Join(p.stateDir(id), "applogs", "keeper.pid")
	var pid int
	eventually(p.t, 60*time.Second, func() (bool, string) {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false, "no pid file: " + err.Error()
		}
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return pidAlive(pid), fmt.Sprintf("keeper pid %d not running", pid)
	})
	return pid
}

type localDisk struct {
	DiskFull *struct {
		Path string `json:"path"`
	} `json:"disk_full"`
	PendingEvents int `json:"pending_events"`
}

func (p *plant) localDisk(id string) localDisk {
	p.t.Helper()
	out, code := run(p.t, nil, nil, bin.agent, "status", "--state", p.stateDir(id), "-o", "json")
	var st localDisk
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		p.t.Fatalf("agent status on a full disk: exit %d: %s", code, out)
	}
	return st
}

func healthz(t *testing.T, addr string) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return map[string]any{"error": err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

// TestFullStateDisk: the agent's state directory is a small tmpfs, filled
// up while events wait in its outbox and the controller comes and goes.
// The agent does not panic, its app keeps running, `status` and /healthz
// show disk_full with the path; once space is freed both clear, a
// disk_full event reaches the controller, and every event stored before
// the disk filled is delivered exactly once.
func TestFullStateDisk(t *testing.T) {
	p := newPlant(t)
	stateDir := p.stateDir("dev-1")
	fulldisk.Mount(t, stateDir, "24m")
	p.mustCLI("groups", "create", "line-1")
	p.mustEnroll("dev-1", p.enrollToken("--groups", "line-1"))
	metrics := freeAddr(t)
	agent := p.startAgentWithConfig("dev-1", "metrics: "+metrics, "ack_timeout: 2s")
	p.converged(map[string][]string{"dev-1": {"line-1"}})
	pid := p.deploySleeper("dev-1", "line-1")

	// Events queued while the controller is away: stored in the outbox.
	p.ctl.kill()
	const n = 3
	p.sideloadDirs("dev-1", "before", 0, n, 0)
	eventually(t, 30*time.Second, func() (bool, string) {
		got := p.localDisk("dev-1").PendingEvents
		return got == 2*n, fmt.Sprintf("%d of %d events in the outbox", got, 2*n)
	})

	filler := filepath.Join(stateDir, "filler")
	fulldisk.Fill(t, filler)
	p.startController() // acknowledgements arrive, documents are refreshed: writes fail
	eventually(t, 30*time.Second, func() (bool, string) {
		st := p.localDisk("dev-1")
		h := healthz(t, metrics)
		ok := st.DiskFull != nil && st.DiskFull.Path == stateDir && h["disk_full"] != nil
		return ok, fmt.Sprintf("status disk_full %+v, healthz %v", st.DiskFull, h)
	})
	if d, _ := healthz(t, metrics)["disk_full"].(map[string]any); d["path"] != stateDir {
		t.Fatalf("/healthz disk_full %v, want path %s", d, stateDir)
	}
	if agent.exited() {
		t.Fatalf("the agent exited on a full disk:\n%s", agent.logs.String())
	}
	if !pidAlive(pid) {
		t.Fatal("the app stopped when the disk filled")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		st := p.localDisk("dev-1")
		h := healthz(t, metrics)
		return st.DiskFull == nil && h["disk_full"] == nil && h["device_id"] == "dev-1", fmt.Sprintf("still full: status %+v, healthz %v", st.DiskFull, h)
	})
	p.allStoredOnce("dev-1", "before", n)
	eventually(t, 30*time.Second, func() (bool, string) {
		kinds := p.storedKinds("dev-1")
		return kinds["disk_full"] == 1, fmt.Sprintf("stored event kinds %v, want one disk_full", kinds)
	})
	if agent.exited() || strings.Contains(agent.logs.String(), "panic") {
		t.Fatalf("the agent panicked or exited:\n%s", agent.logs.String())
	}
	if !pidAlive(pid) {
		t.Fatal("the app stopped")
	}
}
