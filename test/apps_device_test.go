package test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/protocol"
)

// TestAppLifecycleOnDevice: a real app (a shell script that serves HTTP on
// a loopback port with python3's http.server) is pushed, assigned,
// upgraded, rolled back and unassigned through the real controller and
// agent, and the test checks over HTTP which version actually serves.
func TestAppLifecycleOnDevice(t *testing.T) {
	cosign := cosignBin(t)
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	if real, err := filepath.EvalSymlinks(python); err == nil {
		python = real
	}
	p := newPlant(t)
	p.mustCLI("groups", "create", "line-1")
	p.mustEnroll("press-01", p.enrollToken("--groups", "line-1", "--uses", "1"))
	p.startAgent("press-01")
	p.converged(map[string][]string{"press-01": {"line-1"}})

	work := filepath.Join(p.dir, "publisher")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	pass := []string{"COSIGN_PASSWORD=publisher secret"}
	mustInDir(t, work, pass, cosign, "generate-key-pair")
	p.mustCLI("publishers", "add", "acme", "--key", filepath.Join(work, "cosign.pub"))

	addr := freeAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	build := func(version string) {
		dir := filepath.Join(work, version)
		os.MkdirAll(dir, 0o755)
		script := fmt.Sprintf("#!/bin/sh\necho serving %s\nexec %s -m http.server %s --bind 127.0.0.1\n", version, python, port)
		if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "version.txt"), []byte(version+"\n"), 0o644)
		out, code := inDir(t, dir, p.env(), bin.cli, "apps", "manifest", "--name", "web", "--version", version,
			"--publisher", "acme", "--runtime", "process", "--exec", "run.sh", "run.sh", "version.txt")
		if code != 0 {
			t.Fatalf("apps manifest %s: %s", version, out)
		}
		os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(out), 0o644)
		mustInDir(t, dir, append(p.env(), pass...), bin.cli, "apps", "sign", "--key", filepath.Join(work, "cosign.key"), "manifest.json")
		mustInDir(t, dir, p.env(), bin.cli, "apps", "push", "--manifest", "manifest.json", "--signature", "manifest.json.sig", "run.sh", "version.txt")
	}
	build("1.0.0")
	build("2.0.0")

	client := &http.Client{Timeout: 2 * time.Second}
	serving := func() string {
		resp, err := client.Get("http://" + addr + "/version.txt")
		if err != nil {
			return "nothing (" + err.Error() + ")"
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	reported := func() []protocol.AppStatus {
		var d struct {
			Apps []protocol.AppStatus `json:"apps"`
		}
		p.cliJSON(&d, "devices", "show", "press-01")
		return d.Apps
	}
	runs := func(version string) {
		t.Helper()
		eventually(t, 60*time.Second, func() (bool, string) {
			got := serving()
			apps := reported()
			ok := got == version && len(apps) == 1 && apps[0].Version == version && apps[0].State == protocol.AppRunning
			return ok, fmt.Sprintf("serving %s, reported %+v", got, apps)
		})
	}

	p.mustCLI("apps", "assign", "web", "1.0.0", "--group", "line-1")
	runs("1.0.0")

	// A second agent on the same state directory refuses before it touches
	// anything: the first one's app keeps running in the same process group
	// (before the lock, the second agent's start-up killed it).
	pidFile := filepath.Join(p.stateDir("press-01"), "applogs", "web.pid")
	pidBefore, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the process driver's pid file: %v", err)
	}
	out, code := run(t, nil, nil, bin.agent, "run", "--state", p.stateDir("press-01"), "--config", p.agentConfig("press-01"))
	if code == 0 || !strings.Contains(out, "another edgewarden-agent") || !strings.Contains(out, "stop it first") {
		t.Fatalf("second agent on one state directory: exit %d, %q; want a refusal that names the running agent", code, out)
	}
	if pidAfter, err := os.ReadFile(pidFile); err != nil || string(pidAfter) != string(pidBefore) {
		t.Fatalf("pid file %q → %q (%v): the second agent touched the running app", pidBefore, pidAfter, err)
	}
	if got := serving(); got != "1.0.0" {
		t.Fatalf("after a refused second agent the app serves %q, want 1.0.0", got)
	}
	if p.agents["press-01"].exited() {
		t.Fatal("the first agent exited")
	}

	p.mustCLI("apps", "assign", "web", "2.0.0", "--group", "line-1")
	runs("2.0.0")

	// Rollback: the controller refuses a downgrade unless the admin forces
	// it; the device then runs the older version again.
	if out, code := p.cli("apps", "assign", "web", "1.0.0", "--group", "line-1"); code == 0 {
		t.Fatalf("downgrade assigned without --allow-downgrade: %s", out)
	}
	p.mustCLI("apps", "assign", "web", "1.0.0", "--group", "line-1", "--allow-downgrade", "--force")
	runs("1.0.0")

	// The local view lists it too.
	eventually(t, 10*time.Second, func() (bool, string) {
		out, code := run(t, nil, nil, bin.agent, "status", "--state", p.stateDir("press-01"))
		return code == 0 && strings.Contains(out, "web") && strings.Contains(out, "running"), out
	})

	p.mustCLI("apps", "unassign", "web", "--group", "line-1")
	eventually(t, 60*time.Second, func() (bool, string) {
		got := serving()
		apps := reported()
		return strings.HasPrefix(got, "nothing") && len(apps) == 0, fmt.Sprintf("serving %s, reported %+v", got, apps)
	})
	if _, err := os.Stat(filepath.Join(p.agentStatus("press-01").AppsDir, "web")); !os.IsNotExist(err) {
		t.Errorf("app directory left after unassign: %v", err)
	}
}
