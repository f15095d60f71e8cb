package test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// notifySocket listens where systemd would (NOTIFY_SOCKET) and collects what
// a service sends: the Type=notify and WatchdogSec= contract of the units,
// checked without systemd as PID 1.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	msgs := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				if line != "" {
					msgs <- line
				}
			}
		}
	}()
	return path, msgs
}

func expectNotify(t *testing.T, msgs <-chan string, want ...string) {
	t.Helper()
	seen := map[string]bool{}
	deadline := time.After(20 * time.Second)
	for len(seen) < len(want) {
		select {
		case m := <-msgs:
			for _, w := range want {
				if m == w {
					seen[w] = true
				}
			}
		case <-deadline:
			t.Fatalf("service sent %v of %v to NOTIFY_SOCKET", seen, want)
		}
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
			path, msgs := notifySocket(t)
			cmd := exec.Command(svc.args[0], svc.args[1:]...)
			// WatchdogSec=1s: the service must ping at least every second.
			cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+path, "WATCHDOG_USEC=1000000")
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
			expectNotify(t, msgs, "READY=1", "WATCHDOG=1")
			cmd.Process.Signal(os.Interrupt)
			expectNotify(t, msgs, "STOPPING=1")
		})
	}
}
