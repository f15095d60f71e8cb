package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition
	}
}

// script writes an executable shell script app into a new app dir.
func script(t *testing.T, body string) App {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	return App{Name: "demo", Version: "1.0.0", Dir: dir, DataDir: data, Exec: manifest.Exec{Command: "run.sh"}}
}

func newProcess(t *testing.T, opts ProcessOptions) *Process {
	t.Helper()
	if opts.LogDir == "" {
		opts.LogDir = t.TempDir()
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 10 * time.Millisecond
		opts.MaxBackoff = 50 * time.Millisecond
	}
	opts.Logger = slog.New(slog.DiscardHandler)
	d, err := NewProcess(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

func TestProcessStartLogsStop(t *testing.T) {
	d := newProcess(t, ProcessOptions{GracePeriod: 5 * time.Second})
	app := script(t, `echo "hello from $EDGEWARDEN_APP $EDGEWARDEN_APP_VERSION in $(pwd)"; echo oops >&2; trap 'echo got TERM; exit 0' TERM; while :; do sleep 0.05; done`+"\n")
	ctx := context.Background()
	if err := d.Start(ctx, app); err != nil {
		t.Fatal(err)
	}
	st := d.Status(ctx, "demo")
	if st.State != protocol.AppRunning || st.PID == 0 || st.Version != "1.0.0" {
		t.Fatalf("status after start: %+v", st)
	}
	// Same version again: nothing happens. Another version: refused.
	if err := d.Start(ctx, app); err != nil {
		t.Fatal(err)
	}
	other := app
	other.Version = "2.0.0"
	if err := d.Start(ctx, other); !errors.Is(err, ErrRunning) {
		t.Fatalf("start of another version while running: %v, want ErrRunning", err)
	}
	eventually(t, "output in the log", func() bool {
		l, _ := d.Logs(ctx, "demo", 10)
		return slices.Contains(l, "oops") && slices.ContainsFunc(l, func(s string) bool { return strings.HasPrefix(s, "hello from demo 1.0.0 in "+app.Dir) })
	})
	pid := st.PID
	if err := d.Stop(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatal("app still alive after Stop")
	}
	if st := d.Status(ctx, "demo"); st.State != protocol.AppStopped {
		t.Fatalf("status after stop: %+v", st)
	}
	eventually(t, "TERM handled", func() bool {
		l, _ := d.Logs(ctx, "demo", 1)
		return slices.Equal(l, []string{"got TERM"})
	})
	if err := d.Remove(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Logs(ctx, "demo", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("logs after remove: %v", err)
	}
}

func TestProcessStopKillsGroupAfterGrace(t *testing.T) {
	d := newProcess(t, ProcessOptions{GracePeriod: 100 * time.Millisecond})
	// Ignores TERM, and has a child in its group that ignores it too.
	app := script(t, "trap '' TERM\n(trap '' TERM; while :; do sleep 0.05; done) &\necho $! > \"$EDGEWARDEN_DATA_DIR/child\"\nwhile :; do sleep 0.05; done\n")
	ctx := context.Background()
	if err := d.Start(ctx, app); err != nil {
		t.Fatal(err)
	}
	var child int
	eventually(t, "child pid", func() bool {
		b, err := os.ReadFile(filepath.Join(app.DataDir, "child"))
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && child > 0
	})
	pid := d.Status(ctx, "demo").PID
	if err := d.Stop(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatal("app survived Stop")
	}
	eventually(t, "child gone", func() bool { return !alive(child) || zombie(child) })
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && strings.Fields(string(b[i+1:]))[0] == "Z"
}

func TestProcessRestartsThenGivesUp(t *testing.T) {
	var mu sync.Mutex
	changes := 0
	d := newProcess(t, ProcessOptions{MaxFastCrashes: 3, OnChange: func(string) { mu.Lock(); changes++; mu.Unlock() }})
	app := script(t, "echo run >> \"$EDGEWARDEN_DATA_DIR/runs\"\nexit 3\n")
	ctx := context.Background()
	if err := d.Start(ctx, app); err != nil {
		t.Fatal(err)
	}
	eventually(t, "failed state", func() bool { return d.Status(ctx, "demo").State == protocol.AppFailed })
	st := d.Status(ctx, "demo")
	if !strings.Contains(st.Reason, "exited 3 times") || !strings.Contains(st.Reason, "exit status 3") {
		t.Fatalf("reason: %q", st.Reason)
	}
	b, _ := os.ReadFile(filepath.Join(app.DataDir, "runs"))
	if n := strings.Count(string(b), "run"); n != 3 {
		t.Fatalf("ran %d times, want 3", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if changes < 3 {
		t.Fatalf("OnChange called %d times", changes)
	}
	// A new Start brings it back (and it fails again the same way).
	if err := d.Start(ctx, app); err != nil {
		t.Fatal(err)
	}
}

func TestProcessStartRefusesMissingOrNonExecutable(t *testing.T) {
	d := newProcess(t, ProcessOptions{})
	app := script(t, "sleep 1\n")
	os.Chmod(filepath.Join(app.Dir, "run.sh"), 0o644)
	if err := d.Start(context.Background(), app); err == nil || !strings.Contains(err.Error(), "not an executable") {
		t.Fatalf("non-executable: %v", err)
	}
	app.Exec.Command = "missing"
	if err := d.Start(context.Background(), app); err == nil {
		t.Fatal("missing command started")
	}
	if st := d.Status(context.Background(), "demo"); st.State != "" {
		t.Fatalf("a refused start left a record: %+v", st)
	}
}

func TestProcessLogRotation(t *testing.T) {
	logDir := t.TempDir()
	d := newProcess(t, ProcessOptions{LogDir: logDir, LogMaxBytes: 4096})
	app := script(t, "i=0; while [ $i -lt 2000 ]; do echo \"line $i\"; i=$((i+1)); done; touch \"$EDGEWARDEN_DATA_DIR/done\"; sleep 100\n")
	ctx := context.Background()
	if err := d.Start(ctx, app); err != nil {
		t.Fatal(err)
	}
	eventually(t, "script done", func() bool {
		_, err := os.Stat(filepath.Join(app.DataDir, "done"))
		l, _ := d.Logs(ctx, "demo", 1)
		return err == nil && slices.Equal(l, []string{"line 1999"})
	})
	for _, f := range []string{"demo.log", "demo.log.1"} {
		fi, err := os.Stat(filepath.Join(logDir, f))
		if err != nil || fi.Size() > 4096 {
			t.Fatalf("%s: %v size %d, want ≤ 4096", f, err, fi.Size())
		}
	}
	if _, err := os.Stat(filepath.Join(logDir, "demo.log.2")); err == nil {
		t.Fatal("more than one rotated log kept")
	}
}

// TestProcessKillsStaleGroup: an app left running by a dead agent (pid file
// present) is killed when the next driver starts, but only if it runs from
// the apps root.
func TestProcessKillsStaleGroup(t *testing.T) {
	logDir := t.TempDir()
	app := script(t, "sleep 100\n")
	start := func() *exec.Cmd {
		cmd := exec.Command(filepath.Join(app.Dir, "run.sh"))
		cmd.Dir = app.Dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
		os.WriteFile(filepath.Join(logDir, "demo.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
		return cmd
	}
	// Not under AppsRoot: left alone.
	cmd := start()
	newProcess(t, ProcessOptions{LogDir: logDir, AppsRoot: t.TempDir()})
	if !alive(cmd.Process.Pid) {
		t.Fatal("killed a process group outside the apps root")
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	// Under AppsRoot: killed.
	cmd = start()
	newProcess(t, ProcessOptions{LogDir: logDir, AppsRoot: filepath.Dir(app.Dir)})
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stale app group not killed")
	}
}

// fakeSystemctl records calls; systemd is not PID 1 in tests.
type fakeSystemctl struct {
	mu    sync.Mutex
	calls []string
	state string
}

func (f *fakeSystemctl) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	call := name + " " + strings.Join(args, " ")
	f.calls = append(f.calls, call)
	switch {
	case len(args) > 0 && args[0] == "show":
		return []byte(f.state + "\n"), nil
	case len(args) > 1 && args[0] == "enable":
		f.state = "active"
	case len(args) > 0 && (args[0] == "stop" || args[0] == "disable"):
		f.state = "inactive"
	case name == "journalctl":
		return []byte("l1\nl2\n"), nil
	}
	return nil, nil
}

func TestSystemdUnitVerifiesAndIsDriven(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed")
	}
	unitDir := t.TempDir()
	fake := &fakeSystemctl{}
	d := NewSystemd(SystemdOptions{UnitDir: unitDir, User: "daemon", Commander: fake})
	app := script(t, "sleep 100\n")
	app.Exec.Args = []string{"--name", "a b", `quote"and\back`, "$HOME", "50%"}
	ctx := context.Background()
	if err := d.Start(ctx, app); err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile(d.UnitPath("demo"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ExecStart=\"" + filepath.Join(app.Dir, "run.sh") + `" "--name" "a b" "quote\"and\\back" "$$HOME" "50%%"`,
		"User=daemon", "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes",
		"ReadWritePaths=" + app.DataDir, "CapabilityBoundingSet=\n",
	} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	if n := strings.Count(string(unit), "ReadWritePaths="); n != 1 {
		t.Errorf("%d ReadWritePaths lines, want only the data dir", n)
	}
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", d.UnitPath("demo")).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s\n%s", err, out, unit)
	}
	if st := d.Status(ctx, "demo"); st.State != protocol.AppRunning || st.Version != "1.0.0" {
		t.Fatalf("status: %+v", st)
	}
	if l, err := d.Logs(ctx, "demo", 2); err != nil || !slices.Equal(l, []string{"l1", "l2"}) {
		t.Fatalf("logs: %v %v", l, err)
	}
	if err := d.Stop(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.UnitPath("demo")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("unit left after Remove")
	}
	u := UnitName("demo")
	want := []string{
		"systemctl daemon-reload", "systemctl enable --now " + u,
		"systemctl show --property=ActiveState --value " + u,
		"journalctl --unit " + u + " --lines 2 --no-pager --output short-iso",
		"systemctl stop " + u, "systemctl disable --now " + u, "systemctl daemon-reload",
	}
	if !slices.Equal(fake.calls, want) {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(fake.calls, "\n"), strings.Join(want, "\n"))
	}
}

// A command line that tries to inject a second setting or a specifier stays
// one quoted word, and the unit still verifies.
func TestSystemdUnitQuotingResistsInjection(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed")
	}
	d := NewSystemd(SystemdOptions{UnitDir: t.TempDir(), User: "daemon", Commander: &fakeSystemctl{}})
	app := script(t, "sleep 100\n")
	app.Exec.Args = []string{"x\nUser=root\nExecStartPre=/bin/sh -c 'rm -rf /'", "%h"}
	unit, err := d.Unit(app)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(unit, "\nUser=root") || strings.Contains(unit, "\nExecStartPre") {
		t.Fatalf("argument broke out of ExecStart:\n%s", unit)
	}
	if err := d.Start(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", d.UnitPath("demo")).CombinedOutput()
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}
