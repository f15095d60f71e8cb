package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startAgentWithSocket starts an agent whose local API listens on a socket
// in the test's directory (not the system default); it returns the socket.
func (p *plant) startAgentWithSocket(id string) string {
	p.t.Helper()
	p.startAgent(id)
	socket := p.socket(id)
	eventually(p.t, 20*time.Second, func() (bool, string) {
		fi, err := os.Stat(socket)
		if err != nil {
			return false, fmt.Sprintf("agent %s local API socket: %v", id, err)
		}
		if fi.Mode().Perm() != 0o660 || fi.Mode().Type() != os.ModeSocket {
			p.t.Fatalf("socket %s has mode %v, want a socket with 0660", socket, fi.Mode())
		}
		return true, ""
	})
	return socket
}

// local runs `edgewarden local --socket S --token T args...` on the device.
func (p *plant) local(socket, token string, args ...string) (string, int) {
	p.t.Helper()
	return run(p.t, nil, nil, bin.cli, append([]string{"local", "--socket", socket, "--token", token}, args...)...)
}

// waitLocal polls `local authorize` until it exits with want.
func (p *plant) waitLocal(socket, token, action string, want int) {
	p.t.Helper()
	eventually(p.t, 30*time.Second, func() (bool, string) {
		out, code := p.local(socket, token, "authorize", action)
		return code == want, fmt.Sprintf("local authorize %s: exit %d, want %d: %s", action, code, want, out)
	})
}

// TestLocalAccess: an operator granted on a group gets a token from the
// controller and is authorized on a device of that group by its agent,
// offline; removing the grant takes effect with the next document; with
// the controller gone the agent still decides.
func TestLocalAccess(t *testing.T) {
	p := newPlant(t)
	p.mustCLI("groups", "create", "line-1")
	p.mustEnroll("press-1", p.enrollToken("--groups", "line-1"))
	socket := p.startAgentWithSocket("press-1")
	p.converged(map[string][]string{"press-1": {"line-1"}})

	// No valid token: refused, with a clear message.
	out, code := p.local(socket, "not-a-token", "authorize", "device:view")
	if code != 1 || !strings.Contains(out, "malformed operator token") {
		t.Fatalf("garbage token: exit %d: %s", code, out)
	}

	// An operator user with a grant on line-1 and a token.
	op := p.newUser("olga")
	var grant struct {
		ID string `json:"id"`
	}
	p.cliJSON(&grant, "grants", "create", "--role", "operator", "--user", "olga", "--group", "line-1")
	grantID := grant.ID
	token, tokenID := op.issueToken()

	p.waitLocal(socket, token, "device:app-operate", 0)
	out, code = p.local(socket, token, "authorize", "device:sideload")
	if code != 3 || !strings.Contains(out, "denied") {
		t.Fatalf("authorize beyond the grant: exit %d: %s", code, out)
	}
	out, code = p.local(socket, token, "status")
	if code != 0 || !strings.Contains(out, "press-1") || !strings.Contains(out, "olga") {
		t.Fatalf("local status: exit %d: %s", code, out)
	}

	// The denial was queued as a security event and delivered.
	eventually(t, 20*time.Second, func() (bool, string) {
		var st struct {
			PendingEvents int `json:"pending_events"`
		}
		out, code := run(t, nil, nil, bin.agent, "status", "--state", p.stateDir("press-1"), "-o", "json")
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			return false, "agent status: " + out
		}
		return st.PendingEvents == 0, fmt.Sprintf("%d events still in the outbox", st.PendingEvents)
	})

	// Grant removed: denied with the next document, the token still valid.
	p.mustCLI("grants", "delete", grantID)
	p.waitLocal(socket, token, "device:app-operate", 3)

	// Granted again, then the controller goes away: still decided offline.
	p.mustCLI("grants", "create", "--role", "operator", "--user", "olga", "--group", "line-1")
	p.waitLocal(socket, token, "device:app-operate", 0)
	// A second token of the same user, then the first is revoked: refused
	// with the next document although cached and unexpired.
	token2, _ := op.issueToken()
	p.waitLocal(socket, token2, "device:app-operate", 0)
	p.mustCLI("tokens", "revoke", tokenID)
	eventually(t, 30*time.Second, func() (bool, string) {
		out, code := p.local(socket, token, "authorize", "device:app-operate")
		return code == 1 && strings.Contains(out, "revoked"), fmt.Sprintf("revoked token: exit %d: %s", code, out)
	})

	// The system-use notification is shown before every local command.
	p.mustCLI("settings", "banner", "set", "AUTHORIZED USE ONLY - activity is logged")
	eventually(t, 30*time.Second, func() (bool, string) {
		out, code := p.local(socket, token2, "status")
		return code == 0 && strings.HasPrefix(out, "AUTHORIZED USE ONLY"), "local status without the banner first: " + out
	})

	p.ctl.kill()
	out, code = p.local(socket, token2, "authorize", "device:app-operate")
	if code != 0 {
		t.Fatalf("authorize with the controller down: exit %d: %s", code, out)
	}
	out, code = p.local(socket, token2, "authorize", "device:sideload")
	if code != 3 {
		t.Fatalf("denied with the controller down: exit %d: %s", code, out)
	}
	out, code = p.local(socket, token, "authorize", "device:app-operate")
	if code != 1 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoked token with the controller down: exit %d: %s", code, out)
	}
}

// opUser is a non-admin user with its own CLI session.
type opUser struct {
	p      *plant
	name   string
	config string
}

// newUser invites and activates a user and logs them in to their own
// session.
func (p *plant) newUser(name string) *opUser {
	p.t.Helper()
	var inv struct {
		Token string `json:"token"`
	}
	p.cliJSON(&inv, "users", "invite", name)
	if inv.Token == "" {
		p.t.Fatal("users invite printed no activation token")
	}
	u := &opUser{p: p, name: name, config: filepath.Join(p.dir, name+"-cli.json")}
	pw := name + " has a long password"
	ca := filepath.Join(p.ctlDir, "ca.pem")
	out, code := run(p.t, strings.NewReader(pw+"\n"), u.env(), bin.cli, "users", "activate", inv.Token,
		"--password-stdin", "--controller", p.url(), "--ca", ca)
	if code != 0 {
		p.t.Fatalf("users activate: exit %d: %s", code, out)
	}
	out, code = run(p.t, strings.NewReader(pw+"\n"), u.env(), bin.cli, "login", "--controller", p.url(),
		"--ca", ca, "--user", name, "--password-stdin")
	if code != 0 {
		p.t.Fatalf("login %s: exit %d: %s", name, code, out)
	}
	return u
}

func (u *opUser) env() []string { return []string{"EDGEWARDEN_CONFIG=" + u.config} }

// issueToken runs `tokens issue` as the user and returns the token and
// its id.
func (u *opUser) issueToken() (string, string) {
	u.p.t.Helper()
	out, code := run(u.p.t, nil, u.env(), bin.cli, "tokens", "issue", "-o", "json")
	if code != 0 {
		u.p.t.Fatalf("tokens issue as %s: exit %d: %s", u.name, code, out)
	}
	var tok struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.Token == "" {
		u.p.t.Fatalf("tokens issue -o json: %v: %s", err, out)
	}
	return tok.Token, tok.ID
}
