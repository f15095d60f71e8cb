package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bin holds the paths of the binaries built once for the whole run.
var bin struct{ controller, agent, cli string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "edgewarden-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The agent is built as the Makefile and the packages build it
	// (static, without HTTP/2: AGENT_TAGS), so the tests run what ships.
	for i, args := range [][]string{
		{"build", "-o", dir + "/", "./cmd/edgewarden", "./cmd/edgewarden-controller"},
		{"build", "-tags", "nethttpomithttp2", "-o", dir + "/", "./cmd/edgewarden-agent"},
	} {
		build := exec.Command("go", args...)
		build.Dir = ".."
		if i == 1 {
			build.Env = append(os.Environ(), "CGO_ENABLED=0")
		}
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build binaries:", err)
			os.Exit(1)
		}
	}
	bin.controller = filepath.Join(dir, "edgewarden-controller")
	bin.agent = filepath.Join(dir, "edgewarden-agent")
	bin.cli = filepath.Join(dir, "edgewarden")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// logBuffer collects a process's output for the test to search.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// proc is a running binary.
type proc struct {
	name string
	cmd  *exec.Cmd
	logs *logBuffer
	done chan struct{}
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, logs: &logBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(args[0], args[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- %s output:\n%s", name, p.logs.String())
		}
	})
	return p
}

// stop asks the process to shut down (SIGTERM) and waits for it.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not stop within 15s of SIGTERM", p.name)
	}
}

// kill stops the process with SIGKILL, as a crash or power cut would.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// eventually polls cond until it holds, failing the test after timeout with
// the last message cond gave.
func eventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var msg string
	for {
		var ok bool
		if ok, msg = cond(); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, msg)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not a wait for a result
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// plant is a controller with its data dir, an admin session and agents.
type plant struct {
	t          *testing.T
	dir        string
	ctlDir     string
	httpAddr   string
	mqttAddr   string
	config     string // EDGEWARDEN_CONFIG of the admin session
	ctl        *proc
	agents     map[string]*proc
	fingerprnt string
	serveArgs  []string // extra flags for `serve`
}

func newPlant(t *testing.T) *plant { return newPlantWith(t, nil) }

// newPlantWith is newPlant with a hook that runs after init and before the
// controller starts; it returns extra flags for `serve`.
func newPlantWith(t *testing.T, beforeServe func(*plant) []string) *plant {
	t.Helper()
	dir := t.TempDir()
	p := &plant{t: t, dir: dir, ctlDir: filepath.Join(dir, "ctl"), httpAddr: freeAddr(t), mqttAddr: freeAddr(t),
		config: filepath.Join(dir, "cli.json"), agents: map[string]*proc{}}
	pw := filepath.Join(dir, "admin.pw")
	if err := os.WriteFile(pw, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := run(t, nil, nil, bin.controller, "init", "--data", p.ctlDir, "--admin-password-file", pw)
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, out)
	}
	fp, code := run(t, nil, nil, bin.controller, "ca-fingerprint", "--data", p.ctlDir)
	if code != 0 {
		t.Fatalf("ca-fingerprint: %s", fp)
	}
	p.fingerprnt = strings.TrimSpace(fp)
	if beforeServe != nil {
		p.serveArgs = beforeServe(p)
	}
	p.startController()
	p.login("admin", "correct horse battery staple")
	return p
}

func (p *plant) startController() {
	p.t.Helper()
	args := append([]string{bin.controller, "serve", "--data", p.ctlDir, "--http", p.httpAddr, "--mqtt", p.mqttAddr}, p.serveArgs...)
	p.ctl = start(p.t, "controller", args...)
	eventually(p.t, 20*time.Second, func() (bool, string) {
		if p.ctl.exited() {
			p.t.Fatalf("controller exited:\n%s", p.ctl.logs.String())
		}
		return strings.Contains(p.ctl.logs.String(), "msg=ready"), "controller never logged ready"
	})
}

func (p *plant) url() string { return "https://" + p.httpAddr }

func (p *plant) login(user, password string) {
	p.t.Helper()
	out, code := run(p.t, strings.NewReader(password+"\n"), p.env(), bin.cli, "login", "--controller", p.url(),
		"--ca", filepath.Join(p.ctlDir, "ca.pem"), "--user", user, "--password-stdin")
	if code != 0 {
		p.t.Fatalf("login: exit %d: %s", code, out)
	}
}

// cli runs the admin CLI with this plant's session; it returns stdout+stderr
// and the exit status.
func (p *plant) cli(args ...string) (string, int) {
	p.t.Helper()
	return run(p.t, nil, p.env(), bin.cli, args...)
}

// env is the environment of the admin CLI: its own session file.
func (p *plant) env() []string { return []string{"EDGEWARDEN_CONFIG=" + p.config} }

// mustCLI runs the admin CLI and fails the test unless it exits 0.
func (p *plant) mustCLI(args ...string) string {
	p.t.Helper()
	out, code := p.cli(args...)
	if code != 0 {
		p.t.Fatalf("edgewarden %s: exit %d: %s", strings.Join(args, " "), code, out)
	}
	return out
}

// cliJSON runs a CLI command with -o json and decodes its output into v.
func (p *plant) cliJSON(v any, args ...string) {
	p.t.Helper()
	out := p.mustCLI(append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		p.t.Fatalf("edgewarden %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func run(t *testing.T, stdin *strings.Reader, env []string, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return out.String(), ee.ExitCode()
		}
		t.Fatalf("run %s: %v", name, err)
	}
	return out.String(), 0
}

// enrollToken creates an enrollment token with the given CLI flags.
func (p *plant) enrollToken(flags ...string) string {
	p.t.Helper()
	var tok struct {
		Token string `json:"token"`
	}
	p.cliJSON(&tok, append([]string{"enroll-tokens", "create"}, flags...)...)
	if tok.Token == "" {
		p.t.Fatal("enroll-tokens create returned no token")
	}
	return tok.Token
}

func (p *plant) stateDir(id string) string { return filepath.Join(p.dir, "agents", id) }

// enroll enrolls a device; it returns the CLI output and exit status.
func (p *plant) enroll(id, token string, extra ...string) (string, int) {
	p.t.Helper()
	args := []string{"enroll", "--controller", p.url(), "--token", token, "--ca-fingerprint", p.fingerprnt,
		"--state", p.stateDir(id), "--device-id", id}
	return run(p.t, nil, nil, bin.agent, append(args, extra...)...)
}

func (p *plant) mustEnroll(id, token string, extra ...string) {
	p.t.Helper()
	if out, code := p.enroll(id, token, extra...); code != 0 {
		p.t.Fatalf("enroll %s: exit %d: %s", id, code, out)
	}
}

// startAgent runs an enrolled agent with its local API socket in the test's
// directory (see socket), never the system path.
func (p *plant) startAgent(id string) *proc {
	p.t.Helper()
	a := start(p.t, "agent "+id, bin.agent, "run", "--state", p.stateDir(id), "--config", p.agentConfig(id))
	p.agents[id] = a
	return a
}

// agentConfig writes an agent config file for the test and returns its path.
func (p *plant) agentConfig(id string) string {
	p.t.Helper()
	cfg := filepath.Join(p.dir, id+"-agent.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("socket: %s\noutbox_interval: 1s\n", p.socket(id))), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return cfg
}

// socket is the path of an agent's local API socket.
func (p *plant) socket(id string) string { return filepath.Join(p.dir, "sock", id+".sock") }

// device is the part of `devices show -o json` the tests read.
type device struct {
	ID              string            `json:"id"`
	State           string            `json:"state"`
	Online          bool              `json:"online"`
	Groups          []string          `json:"groups"`
	Labels          map[string]string `json:"labels"`
	DesiredRevision uint64            `json:"desired_revision"`
	AppliedRevision uint64            `json:"applied_revision"`
	LastRejected    *struct {
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"last_rejected"`
}

func (p *plant) device(id string) device {
	p.t.Helper()
	var d device
	p.cliJSON(&d, "devices", "show", id)
	return d
}

// converged waits until every named device is online and has applied the
// revision the controller wants, and checks each device's groups.
func (p *plant) converged(groups map[string][]string) {
	p.t.Helper()
	eventually(p.t, 30*time.Second, func() (bool, string) {
		for id, want := range groups {
			d := p.device(id)
			if !d.Online || d.DesiredRevision == 0 || d.AppliedRevision != d.DesiredRevision {
				return false, fmt.Sprintf("%s: online=%v desired=%d applied=%d", id, d.Online, d.DesiredRevision, d.AppliedRevision)
			}
			if strings.Join(d.Groups, ",") != strings.Join(want, ",") {
				return false, fmt.Sprintf("%s: groups %v, want %v", id, d.Groups, want)
			}
		}
		return true, ""
	})
}

// agentStatus is the part of `edgewarden-agent status -o json` tests read.
type agentStatus struct {
	DeviceID        string    `json:"device_id"`
	AppliedRevision uint64    `json:"applied_revision"`
	PolicyExpiresAt time.Time `json:"policy_expires_at"`
	Socket          string    `json:"socket"`
	AppsDir         string    `json:"apps_dir"`
}

func (p *plant) agentStatus(id string) agentStatus {
	p.t.Helper()
	out, code := run(p.t, nil, nil, bin.agent, "status", "--state", p.stateDir(id), "-o", "json")
	if code != 0 {
		p.t.Fatalf("agent status %s: exit %d: %s", id, code, out)
	}
	var s agentStatus
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		p.t.Fatalf("agent status -o json: %v\n%s", err, out)
	}
	return s
}
