package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSecondAgentRefused: a second `edgewarden-agent run` on a state
// directory an agent is using refuses with a clear error and touches
// nothing. The first agent's app is a real process group running from the
// apps directory, recorded the way the process driver records it (before
// the lock, the second agent's start-up killed it as "left by a previous
// agent").
func TestSecondAgentRefused(t *testing.T) {
	p := newPlant(t)
	p.mustCLI("groups", "create", "line-1")
	p.mustEnroll("press-01", p.enrollToken("--groups", "line-1", "--uses", "1"))
	first := p.startAgent("press-01")
	p.converged(map[string][]string{"press-01": {"line-1"}})

	// The first agent's running app.
	appDir := filepath.Join(p.agentStatus("press-01").AppsDir, "web")
	if err := os.MkdirAll(appDir, 0o755); err != nil {
		t.Fatal(err)
	}
	app := exec.Command("sleep", "600")
	app.Dir = appDir
	app.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-app.Process.Pid, syscall.SIGKILL); app.Wait() })
	pidFile := filepath.Join(p.stateDir("press-01"), "applogs", "web.pid")
	pid := []byte(strconv.Itoa(app.Process.Pid) + "\n")
	if err := os.WriteFile(pidFile, pid, 0o600); err != nil {
		t.Fatal(err)
	}
	sockBefore := fileInfo(t, p.socket("press-01")) // the first agent's local API

	out, code := run(t, nil, nil, bin.agent, "run", "--state", p.stateDir("press-01"), "--config", p.agentConfig("press-01"))
	if code == 0 || !strings.Contains(out, "another edgewarden-agent process (pid "+strconv.Itoa(first.cmd.Process.Pid)+") is running") || !strings.Contains(out, "stop it first") {
		t.Fatalf("second agent: exit %d, %q; want a refusal naming the running agent's pid", code, out)
	}
	if err := syscall.Kill(app.Process.Pid, 0); err != nil {
		t.Fatalf("the first agent's app is gone after a refused second agent: %v", err)
	}
	if got, err := os.ReadFile(pidFile); err != nil || string(got) != string(pid) {
		t.Fatalf("pid file %q (%v): the second agent touched the app's record", got, err)
	}
	if after := fileInfo(t, p.socket("press-01")); !os.SameFile(sockBefore, after) {
		t.Fatal("the refused agent replaced the first agent's local API socket")
	}
	if first.exited() {
		t.Fatalf("the first agent exited:\n%s", first.logs.String())
	}

	// Once the first agent is gone (kill -9: the kernel drops the lock), a
	// new one starts on the directory.
	first.kill()
	second := p.startAgent("press-01")
	eventually(t, 20*time.Second, func() (bool, string) {
		return p.device("press-01").Online && !second.exited(), "the agent did not come back after the first was killed"
	})
}

func fileInfo(t *testing.T, path string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}
