// Command demo is `make demo`: it runs a whole Edgewarden plant on this
// machine from the built binaries in ./bin — a controller with its embedded
// broker and three agents as local processes in a temporary directory — makes
// two device groups, moves a device between them, prints the fleet
// converging, and shuts everything down. Every command it runs is printed as
// a user would type it.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

func main() {
	binDir := flag.String("bin", "bin", "directory holding the built binaries")
	keep := flag.Bool("keep", false, "keep the temporary directory")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *binDir, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type demo struct {
	bin    string
	dir    string
	procs  []*exec.Cmd
	config string
}

func run(ctx context.Context, binDir string, keep bool) error {
	bin, err := filepath.Abs(binDir)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "edgewarden-demo-")
	if err != nil {
		return err
	}
	d := &demo{bin: bin, dir: dir, config: filepath.Join(dir, "cli.json")}
	defer func() {
		d.shutdown()
		if keep {
			fmt.Println("# kept", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	fmt.Println("# Edgewarden demo in", dir)

	ctl := filepath.Join(dir, "controller")
	pw := filepath.Join(dir, "admin-password")
	if err := os.WriteFile(pw, []byte("demo-password-change-me\n"), 0o600); err != nil {
		return err
	}
	if _, err := d.cmd("edgewarden-controller", "init", "--data", ctl, "--admin-password-file", pw); err != nil {
		return err
	}
	fp, err := d.cmd("edgewarden-controller", "ca-fingerprint", "--data", ctl)
	if err != nil {
		return err
	}
	fp = strings.TrimSpace(fp)

	// Port 0: the controller picks free ports and tells enrolling agents.
	logs, err := d.start(ctx, "controller", "edgewarden-controller", "serve", "--data", ctl, "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0")
	if err != nil {
		return err
	}
	line, err := waitLine(ctx, logs, regexp.MustCompile(`msg=ready`), 20*time.Second)
	if err != nil {
		return fmt.Errorf("controller did not become ready: %w", err)
	}
	httpAddr := regexp.MustCompile(`http=(\S+)`).FindStringSubmatch(line)
	if httpAddr == nil {
		return fmt.Errorf("no http address in %q", line)
	}
	url := "https://" + httpAddr[1]

	if _, err := d.cmdIn(strings.NewReader("demo-password-change-me\n"), "edgewarden", "login", "--controller", url, "--ca", filepath.Join(ctl, "ca.pem"), "--user", "admin", "--password-stdin"); err != nil {
		return err
	}
	for _, g := range []string{"line-1", "line-2"} {
		if _, err := d.cmd("edgewarden", "groups", "create", g); err != nil {
			return err
		}
	}
	tokOut, err := d.cmd("edgewarden", "enroll-tokens", "create", "--groups", "line-1", "--uses", "3", "--ttl", "1h", "-o", "json")
	if err != nil {
		return err
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(tokOut), &tok); err != nil {
		return fmt.Errorf("enroll-tokens create -o json: %w", err)
	}
	devices := []string{"press-1", "press-2", "robot-1"}
	for _, id := range devices {
		state := filepath.Join(dir, "agents", id)
		if _, err := d.cmd("edgewarden-agent", "enroll", "--controller", url, "--token", tok.Token, "--ca-fingerprint", fp, "--state", state, "--device-id", id); err != nil {
			return err
		}
		// Each agent's local API socket lives in the demo directory
		// (the system default is /run/edgewarden/agent.sock).
		cfg := filepath.Join(dir, id+"-agent.yaml")
		if err := os.WriteFile(cfg, []byte("socket: "+filepath.Join(dir, id+".sock")+"\n"), 0o600); err != nil {
			return err
		}
		if _, err := d.start(ctx, "agent "+id, "edgewarden-agent", "run", "--state", state, "--config", cfg); err != nil {
			return err
		}
	}
	if err := d.waitConverged(ctx, map[string]string{"press-1": "line-1", "press-2": "line-1", "robot-1": "line-1"}); err != nil {
		return err
	}

	fmt.Println("\n# Move robot-1 from line-1 to line-2")
	if _, err := d.cmd("edgewarden", "groups", "add", "line-2", "robot-1"); err != nil {
		return err
	}
	if _, err := d.cmd("edgewarden", "groups", "remove", "line-1", "robot-1"); err != nil {
		return err
	}
	if err := d.waitConverged(ctx, map[string]string{"press-1": "line-1", "press-2": "line-1", "robot-1": "line-2"}); err != nil {
		return err
	}
	if _, err := d.cmd("edgewarden", "status"); err != nil {
		return err
	}
	fmt.Println("\n# Done: every device verified and applied its signed document. Shutting down.")
	return nil
}

// cmd runs one of the binaries, printing the command line and its output.
func (d *demo) cmd(name string, args ...string) (string, error) { return d.cmdIn(nil, name, args...) }

func (d *demo) cmdIn(stdin io.Reader, name string, args ...string) (string, error) {
	fmt.Printf("\n$ %s %s\n", name, strings.Join(args, " "))
	c := exec.Command(filepath.Join(d.bin, name), args...)
	c.Env = append(os.Environ(), "EDGEWARDEN_CONFIG="+d.config)
	c.Stdin = stdin
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = io.MultiWriter(&out, os.Stdout), io.MultiWriter(&errb, os.Stderr)
	if err := c.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// start runs a long-lived binary with its output sent to a log file; it
// returns the log path.
func (d *demo) start(ctx context.Context, label, name string, args ...string) (string, error) {
	fmt.Printf("\n$ %s %s &\n", name, strings.Join(args, " "))
	logPath := filepath.Join(d.dir, strings.ReplaceAll(label, " ", "-")+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	c := exec.Command(filepath.Join(d.bin, name), args...)
	c.Stdout, c.Stderr = f, f
	if err := c.Start(); err != nil {
		f.Close()
		return "", fmt.Errorf("start %s: %w", label, err)
	}
	d.procs = append(d.procs, c)
	fmt.Printf("# %s running (pid %d), log %s\n", label, c.Process.Pid, logPath)
	return logPath, nil
}

func (d *demo) shutdown() {
	// Agents first, then the controller (started first).
	for i := len(d.procs) - 1; i >= 0; i-- {
		p := d.procs[i]
		p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.Process.Kill()
			<-done
		}
	}
}

type deviceView struct {
	ID              string   `json:"id"`
	Online          bool     `json:"online"`
	Groups          []string `json:"groups"`
	DesiredRevision uint64   `json:"desired_revision"`
	AppliedRevision uint64   `json:"applied_revision"`
}

// waitConverged polls `edgewarden devices ls -o json` until every device is
// online, in the wanted group and has applied the desired revision.
func (d *demo) waitConverged(ctx context.Context, want map[string]string) error {
	fmt.Println("\n# waiting for the fleet to converge")
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	var last string
	for {
		c := exec.Command(filepath.Join(d.bin, "edgewarden"), "devices", "ls", "-o", "json")
		c.Env = append(os.Environ(), "EDGEWARDEN_CONFIG="+d.config)
		out, err := c.Output()
		if err != nil {
			return fmt.Errorf("devices ls: %w", err)
		}
		var devs []deviceView
		if err := json.Unmarshal(out, &devs); err != nil {
			return err
		}
		ok, lines := len(devs) == len(want), []string{}
		for _, dv := range devs {
			inSync := dv.Online && dv.DesiredRevision > 0 && dv.AppliedRevision == dv.DesiredRevision && strings.Join(dv.Groups, ",") == want[dv.ID]
			ok = ok && inSync
			lines = append(lines, fmt.Sprintf("  %-8s online=%-5v groups=%-8s desired=r%d applied=r%d in_sync=%v", dv.ID, dv.Online, strings.Join(dv.Groups, ","), dv.DesiredRevision, dv.AppliedRevision, inSync))
		}
		if s := strings.Join(lines, "\n"); s != last {
			fmt.Printf("[+%4dms]\n%s\n", time.Since(start).Milliseconds(), s)
			last = s
		}
		if ok {
			fmt.Printf("# converged in %d ms\n", time.Since(start).Milliseconds())
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("fleet did not converge within 60s; see the logs in the demo directory (run with -keep)")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitLine waits until a line of the log file matches re.
func waitLine(ctx context.Context, path string, re *regexp.Regexp, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if f, err := os.Open(path); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if re.MatchString(sc.Text()) {
					f.Close()
					return sc.Text(), nil
				}
			}
			f.Close()
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	b, _ := os.ReadFile(path)
	return "", fmt.Errorf("no line matching %s within %s:\n%s", re, timeout, b)
}
