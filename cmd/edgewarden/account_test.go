package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgewarden/edgewarden/controller/api/apitest"
	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol/access"
)

const bobPassword = "bob has a long password"

// copyOf returns a CLI using a copy of c's config: someone who copied the
// session token.
func (c *cli) copyOf() *cli {
	c.t.Helper()
	raw, err := os.ReadFile(c.config)
	if err != nil {
		c.t.Fatal(err)
	}
	d := newCLI(c.t)
	if err := os.MkdirAll(strings.TrimSuffix(d.config, "/config.json"), 0o700); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(d.config, raw, 0o600); err != nil {
		c.t.Fatal(err)
	}
	return d
}

func (c *cli) config_() config {
	c.t.Helper()
	raw, err := os.ReadFile(c.config)
	if err != nil {
		c.t.Fatal(err)
	}
	var cfg config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		c.t.Fatal(err)
	}
	return cfg
}

// TestAccountCommands: whoami, passwd, users enable and reset-password,
// logout and a login that reuses the saved config, through the CLI.
func TestAccountCommands(t *testing.T) {
	s := apitest.NewServer(t, nil)
	admin := login(t, s)
	s.AddUser(t, "bob", bobPassword, store.UserActive)
	s.Grant(t, access.UserSubject("bob"), access.RoleViewer, access.Global())
	bob := newCLI(t)
	if r := bob.runIn(bobPassword+"\n", "login", "--controller", s.URL, "--ca", s.CAFile, "--user", "bob", "--password-stdin"); r.code != 0 {
		t.Fatalf("bob login: %s", r.stderr)
	}

	var me apiv1.WhoAmI
	bob.jsonOf(&me, "whoami")
	if me.Name != "bob" || !strings.HasPrefix(me.ID, "u-") || len(me.Grants) != 1 || me.Grants[0].Role != access.RoleViewer {
		t.Fatalf("whoami: %+v", me)
	}
	if out := bob.ok("whoami"); !strings.Contains(out, "User:") || !strings.Contains(out, me.ID) || !strings.Contains(out, "viewer") {
		t.Fatalf("whoami table:\n%s", out)
	}

	// passwd from a script: the old and the new password on two lines.
	stolen := bob.copyOf()
	bob.fails(2, "line 1 is empty or missing", "passwd") // nothing on stdin
	if r := bob.runIn(bobPassword+"\n", "passwd"); r.code != 2 || !strings.Contains(r.stderr, "line 2 is empty or missing") {
		t.Fatalf("passwd with one line: %d %q", r.code, r.stderr)
	}
	if r := bob.runIn("wrong old password\nanother long password\n", "passwd"); r.code != 1 || !strings.Contains(r.stderr, "old password is wrong") {
		t.Fatalf("passwd with a wrong old password: %d %q", r.code, r.stderr)
	}
	if r := bob.runIn(bobPassword+"\nshort\n", "passwd"); r.code != 1 || !strings.Contains(r.stderr, "too short") {
		t.Fatalf("passwd with a short new password: %d %q", r.code, r.stderr)
	}
	const newPassword = "bob chose another long one"
	before := bob.config_().Token
	if r := bob.runIn(bobPassword+"\n"+newPassword+"\n", "passwd"); r.code != 0 || !strings.Contains(r.stdout, "renewed") {
		t.Fatalf("passwd: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if bob.config_().Token == before {
		t.Fatal("passwd did not keep the renewed session")
	}
	bob.ok("devices", "ls")
	stolen.fails(1, "session ended", "devices", "ls")

	// disable, enable.
	admin.ok("users", "disable", "bob")
	bob.fails(1, "disabled", "devices", "ls")
	admin.ok("users", "enable", "bob")
	admin.fails(1, "already active", "users", "enable", "bob")
	admin.fails(1, "does not exist", "users", "enable", "nobody")
	bob.fails(1, "session ended", "devices", "ls")
	if r := bob.runIn(newPassword+"\n", "login", "--password-stdin"); r.code != 0 {
		t.Fatalf("login reusing the saved config: %d %q", r.code, r.stderr)
	}

	// reset-password: a token, as invite gives; sessions die, the old
	// password stops working.
	admin.fails(2, "accepts 1 arg", "users", "reset-password")
	token := strings.TrimSpace(admin.ok("users", "reset-password", "bob"))
	if !strings.HasPrefix(token, "ewa_") {
		t.Fatalf("reset-password printed %q", token)
	}
	bob.fails(1, "waiting for activation", "devices", "ls")
	if r := bob.runIn(newPassword+"\n", "login", "--password-stdin"); r.code != 1 || !strings.Contains(r.stderr, "wrong user name or password") {
		t.Fatalf("login with the password before the reset: %d %q", r.code, r.stderr)
	}
	const third = "a third long password for bob"
	if r := bob.runIn(third+"\n", "users", "activate", token, "--password-stdin"); r.code != 0 {
		t.Fatalf("activate after reset: %q", r.stderr)
	}
	if r := bob.runIn(third+"\n", "login", "--password-stdin"); r.code != 0 {
		t.Fatalf("login after reset: %q", r.stderr)
	}

	// logout: the token dies on the controller, also in a copy; the config
	// keeps controller, CA and user for the next login.
	stolen = bob.copyOf()
	out := bob.ok("logout")
	if !strings.Contains(out, "ended on the controller") {
		t.Fatalf("logout: %q", out)
	}
	stolen.fails(1, "logged out", "devices", "ls")
	bob.fails(1, "holds no session", "devices", "ls")
	bob.fails(1, "holds no session", "logout")
	if cfg := bob.config_(); cfg.Token != "" || cfg.Controller != s.URL || cfg.User != "bob" || cfg.CA == "" {
		t.Fatalf("config after logout: %+v", cfg)
	}
	if r := bob.runIn(third+"\n", "login", "--password-stdin"); r.code != 0 {
		t.Fatalf("login after logout: %q", r.stderr)
	}
	bob.ok("devices", "ls")

	var es []apiv1.AuditEntry
	admin.jsonOf(&es, "audit", "ls")
	seen := map[string]bool{}
	for _, e := range es {
		seen[e.Action] = true
	}
	for _, a := range []string{"user.password-change", "user.enable", "user.reset-password", "user.logout"} {
		if !seen[a] {
			t.Errorf("no audit entry %s", a)
		}
	}
}

// openPTY returns a new pseudo-terminal's master and slave ends.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty slave: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// typeSecret waits for the k-th password prompt (counted on stderr) to
// turn the terminal's echo off, then types line on it.
func typeSecret(t *testing.T, master, slave *os.File, stderr *syncBuffer, k int, line string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
		if err != nil {
			t.Errorf("termios: %v", err)
			return
		}
		// The k-th prompt is printed after the previous one restored echo.
		if strings.Count(stderr.String(), "assword") >= k && tio.Lflag&unix.ECHO == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the CLI never asked for secret %d with echo off (stderr %q)", k, stderr.String())
			return
		}
		time.Sleep(5 * time.Millisecond) // polling the terminal's state
	}
	if _, err := master.Write([]byte(line + "\n")); err != nil {
		t.Errorf("type on the terminal: %v", err)
	}
}

// TestPromptsWithoutEcho: on a terminal, login and passwd ask for
// passwords with echo off; the terminal never shows them.
func TestPromptsWithoutEcho(t *testing.T) {
	s := apitest.NewServer(t, nil)
	s.AddUser(t, "bob", bobPassword, store.UserActive)
	c := newCLI(t)
	if r := c.runIn(bobPassword+"\n", "login", "--controller", s.URL, "--ca", s.CAFile, "--user", "bob", "--password-stdin"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := c.runIn("", "logout"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	master, slave := openPTY(t)
	runOnTTY := func(secrets []string, argv ...string) result {
		var out bytes.Buffer
		var errb syncBuffer
		done := make(chan int)
		go func() {
			done <- run(context.Background(), argv, env{stdin: slave, stdout: &out, stderr: &errb, getenv: func(k string) string {
				if k == "EDGEWARDEN_CONFIG" {
					return c.config
				}
				return ""
			}})
		}()
		for i, s := range secrets {
			typeSecret(t, master, slave, &errb, i+1, s)
		}
		code := <-done
		return result{code, out.String(), errb.String()}
	}

	// login with no flags: controller, CA and user from the saved config.
	if r := runOnTTY([]string{bobPassword}, "login"); r.code != 0 || !strings.Contains(r.stderr, "Password for bob at "+s.URL) {
		t.Fatalf("login on a terminal: %d %q %q", r.code, r.stdout, r.stderr)
	}
	const newPassword = "typed on a terminal, long"
	if r := runOnTTY([]string{bobPassword, newPassword, newPassword + "x"}, "passwd"); r.code != 1 || !strings.Contains(r.stderr, "differ") {
		t.Fatalf("passwd with two different new passwords: %d %q", r.code, r.stderr)
	}
	if r := runOnTTY([]string{bobPassword, newPassword, newPassword}, "passwd"); r.code != 0 {
		t.Fatalf("passwd on a terminal: %d %q", r.code, r.stderr)
	}

	// What the terminal showed: echo is on again now, so a marker typed
	// now comes back; nothing typed before it may have.
	if _, err := master.Write([]byte("MARK\n")); err != nil {
		t.Fatal(err)
	}
	var shown []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(shown, []byte("MARK")) {
		n, err := master.Read(buf)
		if err != nil {
			t.Fatalf("read the terminal: %v", err)
		}
		shown = append(shown, buf[:n]...)
	}
	for _, secret := range []string{bobPassword, newPassword} {
		if bytes.Contains(shown, []byte(secret)) {
			t.Fatalf("the terminal echoed a password: %q", shown)
		}
	}
	c.ok("devices", "ls")
}
