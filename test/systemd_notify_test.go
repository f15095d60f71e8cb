package test

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/test/sdnotify"
)

// expectNotify waits until the service has sent each of want to its
// notify socket.
func expectNotify(t *testing.T, n *sdnotify.Socket, want ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		seen := map[string]bool{}
		for _, w := range want {
			if n.Count(w) > 0 {
				seen[w] = true
			}
		}
		if len(seen) == len(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("service sent %v of %v to NOTIFY_SOCKET", seen, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSystemdNotify: both services say READY=1 once serving, feed the
// watchdog while healthy, and say STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	p := newPlant(t)
	token := p.enrollToken()
	p.mustEnroll("dev-1", token)
	// One controller per data directory: the plant's must stop before this
	// test runs its own on the same directory.
	p.ctl.stop(t)

	for _, svc := range []struct {
		name string
		args []string
	}{
		{"controller", []string{bin.controller, "serve", "--data", p.ctlDir, "--http", freeAddr(t), "--mqtt", freeAddr(t)}},
		{"agent", []string{bin.agent, "run", "--state", p.stateDir("dev-1"), "--config", p.agentConfig("dev-1")}},
	} {
		t.Run(svc.name, func(t *testing.T) {
			n := sdnotify.Listen(t)
			cmd := exec.Command(svc.args[0], svc.args[1:]...)
			// WatchdogSec=1s: the service must ping at least every second.
			cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+n.Path, "WATCHDOG_USEC=1000000")
			logs := &logBuffer{}
			cmd.Stdout, cmd.Stderr = logs, logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Kill()
				cmd.Wait()
				if t.Failed() {
					t.Logf("%s output:\n%s", svc.name, logs.String())
				}
			}()
			expectNotify(t, n, "READY=1", "WATCHDOG=1")
			cmd.Process.Signal(os.Interrupt)
			expectNotify(t, n, "STOPPING=1")
		})
	}
}
