package test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// accessUser is a second CLI session (its own EDGEWARDEN_CONFIG) on a plant.
type accessUser struct {
	p      *plant
	name   string
	config string
}

// invitedUser invites name as the admin, activates it with its token and logs
// it in with its own config file.
func (p *plant) invitedUser(name, password string) *accessUser {
	p.t.Helper()
	var inv struct {
		User  string `json:"user"`
		Token string `json:"token"`
	}
	p.cliJSON(&inv, "users", "invite", name)
	if inv.User != name || !strings.HasPrefix(inv.Token, "ewa_") {
		p.t.Fatalf("invite %s: %+v", name, inv)
	}
	u := &accessUser{p: p, name: name, config: filepath.Join(p.dir, name+"-cli.json")}
	// Activation needs no session.
	out, code := u.runIn(password+"\n", "users", "activate", inv.Token, "--password-stdin",
		"--controller", p.url(), "--ca", filepath.Join(p.ctlDir, "ca.pem"))
	if code != 0 {
		p.t.Fatalf("activate %s: exit %d: %s", name, code, out)
	}
	// The token is single use.
	if out, code := u.runIn("another-password-1\n", "users", "activate", inv.Token, "--password-stdin",
		"--controller", p.url(), "--ca", filepath.Join(p.ctlDir, "ca.pem")); code == 0 || !strings.Contains(out, "not valid") {
		p.t.Fatalf("activation token reused: exit %d: %s", code, out)
	}
	out, code = u.runIn(password+"\n", "login", "--controller", p.url(), "--ca", filepath.Join(p.ctlDir, "ca.pem"),
		"--user", name, "--password-stdin")
	if code != 0 {
		p.t.Fatalf("login %s: exit %d: %s", name, code, out)
	}
	return u
}

// runIn runs the CLI with this user's session and stdin.
func (u *accessUser) runIn(stdin string, args ...string) (string, int) {
	u.p.t.Helper()
	return run(u.p.t, strings.NewReader(stdin), []string{"EDGEWARDEN_CONFIG=" + u.config}, bin.cli, args...)
}

func (u *accessUser) cli(args ...string) (string, int) { u.p.t.Helper(); return u.runIn("", args...) }

func (u *accessUser) cliJSON(v any, args ...string) {
	u.p.t.Helper()
	out, code := u.cli(append(args, "-o", "json")...)
	if code != 0 {
		u.p.t.Fatalf("%s: edgewarden %s: exit %d: %s", u.name, strings.Join(args, " "), code, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		u.p.t.Fatalf("%s: edgewarden %s -o json: %v\n%s", u.name, strings.Join(args, " "), err, out)
	}
}

// refused runs a command that must fail with exit 1 and mention want.
func (u *accessUser) refused(want string, args ...string) {
	u.p.t.Helper()
	out, code := u.cli(args...)
	if code != 1 || !strings.Contains(out, want) {
		u.p.t.Fatalf("%s: edgewarden %s: exit %d, want 1 mentioning %q: %s", u.name, strings.Join(args, " "), code, want, out)
	}
}

func (u *accessUser) deviceIDs() []string {
	u.p.t.Helper()
	var ds []device
	u.cliJSON(&ds, "devices", "ls")
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	return ids
}

// TestAccess: the admin invites bob; bob activates and logs in, sees nothing
// until granted viewer on a group, then exactly that group's devices; check
// and explain give the grant chain; the grant reaches the affected device's
// document (and only it); bob cannot grant himself more, create roles, or
// share; tokens and audit work; a disabled bob is locked out.
func TestAccess(t *testing.T) {
	p := newPlant(t)
	p.mustCLI("groups", "create", "line-1")
	p.mustCLI("groups", "create", "line-2")
	p.mustEnroll("dev-1", p.enrollToken("--groups", "line-1"))
	p.mustEnroll("dev-2", p.enrollToken("--groups", "line-2"))
	p.startAgent("dev-1")
	p.startAgent("dev-2")
	p.converged(map[string][]string{"dev-1": {"line-1"}, "dev-2": {"line-2"}})

	bob := p.invitedUser("bob", "bobs-password-1")
	if ids := bob.deviceIDs(); len(ids) != 0 {
		t.Fatalf("bob without grants sees devices %v", ids)
	}
	out, code := p.cli("access", "check", "--user", "bob", "--action", "device:view", "--device", "dev-1")
	if code != 3 || !strings.Contains(out, "denied") || !strings.Contains(out, "no grant gives device:view") {
		t.Fatalf("access check before the grant: exit %d: %s", code, out)
	}

	rev1, rev2 := p.device("dev-1").DesiredRevision, p.device("dev-2").DesiredRevision
	var g struct {
		ID string `json:"id"`
	}
	p.cliJSON(&g, "grants", "create", "--role", "viewer", "--user", "bob", "--group", "line-1")
	if !strings.HasPrefix(g.ID, "g-") {
		t.Fatalf("grant id %q", g.ID)
	}
	if ids := bob.deviceIDs(); !slices.Equal(ids, []string{"dev-1"}) {
		t.Fatalf("bob with viewer on line-1 sees devices %v, want [dev-1]", ids)
	}
	var groups []struct {
		Name string `json:"name"`
	}
	bob.cliJSON(&groups, "groups", "ls")
	if len(groups) != 1 || groups[0].Name != "line-1" {
		t.Fatalf("bob sees groups %+v, want line-1 only", groups)
	}
	bob.refused("may not device:view on device dev-2", "devices", "show", "dev-2")

	// check and explain.
	p.mustCLI("access", "check", "--user", "bob", "--action", "device:view", "--device", "dev-1")
	out = p.mustCLI("access", "explain", "--user", "bob", "--action", "device:view", "--device", "dev-1")
	for _, want := range []string{"allowed: grant " + g.ID, "to user bob", "role viewer", "scope device-group line-1", "device dev-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain does not mention %q:\n%s", want, out)
		}
	}
	var dec struct {
		Allowed bool `json:"allowed"`
		Chain   []struct {
			Kind, Name string
		} `json:"chain"`
	}
	p.cliJSON(&dec, "access", "explain", "--user", "bob", "--action", "device:view", "--device", "dev-1")
	if !dec.Allowed || len(dec.Chain) < 4 || dec.Chain[0].Kind != "grant" || dec.Chain[0].Name != g.ID {
		t.Fatalf("explain -o json = %+v", dec)
	}
	if out, code := p.cli("access", "check", "--user", "bob", "--action", "device:logs", "--device", "dev-1"); code != 3 {
		t.Fatalf("viewer may read logs? exit %d: %s", code, out)
	}

	// The grant reaches dev-1's document; dev-2's document is unchanged.
	eventually(t, 30*time.Second, func() (bool, string) {
		d := p.device("dev-1")
		return d.DesiredRevision > rev1 && d.AppliedRevision == d.DesiredRevision, "dev-1 has not applied the document with bob's grant"
	})
	if got := p.device("dev-2").DesiredRevision; got != rev2 {
		t.Fatalf("dev-2's revision moved from %d to %d on a grant that does not concern it", rev2, got)
	}
	if st := p.agentStatus("dev-1"); st.AppliedRevision <= rev1 {
		t.Fatalf("agent dev-1 applied revision %d, want > %d", st.AppliedRevision, rev1)
	}

	// Attacks by bob: nothing changes.
	bob.refused("may not change their own grants", "grants", "create", "--role", "admin", "--user", "bob")
	bob.refused("controller:manage-roles", "roles", "create", "sneaky", "--actions", "device:view")
	bob.refused("may not share", "share", "--group", "line-1", "--user", "admin", "--role", "viewer")
	bob.refused("controller:manage-users", "users", "invite", "mallory")
	bob.refused("controller:audit", "audit", "ls")
	var grants []struct {
		ID string `json:"id"`
	}
	p.cliJSON(&grants, "grants", "ls")
	if len(grants) != 2 { // the admin's and bob's viewer grant
		t.Fatalf("grants after refused attempts: %+v", grants)
	}

	// Operator tokens: bob issues and revokes his own.
	var tok struct {
		ID    string `json:"id"`
		Token string `json:"token"`
		User  string `json:"user"`
	}
	bob.cliJSON(&tok, "tokens", "issue", "--ttl", "1h")
	if tok.User != "bob" || strings.Count(tok.Token, ".") != 2 {
		t.Fatalf("tokens issue: %+v", tok)
	}
	bob.cliJSON(&tok, "tokens", "revoke", tok.ID)
	eventually(t, 30*time.Second, func() (bool, string) {
		d := p.device("dev-2")
		return d.DesiredRevision > rev2 && d.AppliedRevision == d.DesiredRevision, "the revocation has not reached dev-2"
	})

	// Audit: who did what, from where.
	var audit []struct {
		Actor, Action, Target, Source string
	}
	p.cliJSON(&audit, "audit", "ls", "--since", "1h")
	seen := map[string]bool{}
	for _, e := range audit {
		seen[e.Actor+" "+e.Action] = true
		if e.Action == "grant.create" && e.Source == "" {
			t.Errorf("audit entry without its source: %+v", e)
		}
	}
	for _, want := range []string{"admin user.invite", "bob user.activate", "admin grant.create", "bob access.denied", "bob token.issue", "bob token.revoke"} {
		if !seen[want] {
			t.Errorf("audit log lacks %q", want)
		}
	}

	// Settings: banner.
	p.mustCLI("settings", "banner", "set", "Authorized use only")
	var s struct {
		Banner, Sideload string
	}
	bob.cliJSON(&s, "settings", "show")
	if s.Banner != "Authorized use only" || s.Sideload != "deny" {
		t.Fatalf("settings = %+v", s)
	}

	// Disabled: bob is locked out at once.
	p.mustCLI("users", "disable", "bob")
	bob.refused("disabled", "devices", "ls")
	if out, code := p.cli("access", "check", "--user", "bob", "--action", "device:view", "--device", "dev-1"); code != 3 || !strings.Contains(out, "disabled") {
		t.Fatalf("check for disabled bob: exit %d: %s", code, out)
	}
}
