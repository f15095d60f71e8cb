package test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A device that crashes is shown offline within the presence timeout, also
// when the controller was restarted meanwhile and no last will ever reaches
// it; `devices show` and `status` say how long it has been silent.
func TestCrashedAgentSeenOffline(t *testing.T) {
	p := newPlantWith(t, func(*plant) []string { return []string{"--presence-timeout", "4s"} })
	token := p.enrollToken("--uses", "1")
	p.mustEnroll("dev-1", token)
	startFast := func() *proc {
		// A heartbeat well inside the timeout, as operations.md asks.
		cfg := filepath.Join(p.dir, "dev-1-fast.yaml")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf("socket: %s\noutbox_interval: 1s\nheartbeat_interval: 1s\n", p.socket("dev-1"))), 0o600); err != nil {
			t.Fatal(err)
		}
		a := start(t, "agent dev-1", bin.agent, "run", "--state", p.stateDir("dev-1"), "--config", cfg)
		p.agents["dev-1"] = a
		return a
	}
	online := func(want bool) {
		t.Helper()
		eventually(t, 60*time.Second, func() (bool, string) {
			var d struct {
				Online        bool   `json:"online"`
				SilentSeconds *int64 `json:"silent_seconds"`
			}
			p.cliJSON(&d, "devices", "show", "dev-1")
			return d.Online == want && d.SilentSeconds != nil, fmt.Sprintf("online=%v silent=%v, want online=%v", d.Online, d.SilentSeconds, want)
		})
	}

	a := startFast()
	online(true)
	// It stays online past the timeout while its heartbeats arrive: every
	// look over 6 s (longer than the 4 s timeout) must say online.
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); {
		if d := p.device("dev-1"); !d.Online {
			t.Fatal("a live agent with heartbeats inside the timeout was shown offline")
		}
	}

	a.kill()
	online(false)
	var st struct {
		Offline []struct {
			Device        string `json:"device"`
			SilentSeconds *int64 `json:"silent_seconds"`
		} `json:"offline"`
	}
	p.cliJSON(&st, "status")
	if len(st.Offline) != 1 || st.Offline[0].Device != "dev-1" || st.Offline[0].SilentSeconds == nil {
		t.Fatalf("status offline list %+v; want dev-1 with how long it has been silent", st.Offline)
	}

	// Online again, then the controller dies, the agent dies while it is
	// away, and the controller comes back: no will reached it, the store
	// still says "online" was the last presence, and yet the device is
	// shown offline within the timeout.
	a = startFast()
	online(true)
	p.ctl.kill()
	a.kill()
	p.startController()
	online(false)
}
