package test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestGroupDeleteNeedsForce: with sideloading allowed globally and banned
// on line-1, `groups delete line-1` is refused with one line naming the
// deny override and --force; nothing changes (the device's document still
// bans sideloading, its revision stays). `--force` deletes it: the audit
// log has a security entry naming the override and the device on which the
// ban is lifted, and the device's document then allows sideloading.
func TestGroupDeleteNeedsForce(t *testing.T) {
	p := newPlant(t)
	p.mustCLI("groups", "create", "line-1")
	p.mustEnroll("press-1", p.enrollToken("--groups", "line-1"))
	socket := p.startAgentWithSocket("press-1")
	p.mustCLI("settings", "sideload", "allow")
	p.mustCLI("settings", "sideload", "deny", "--group", "line-1")
	p.converged(map[string][]string{"press-1": {"line-1"}})
	out, code := p.cli("tokens", "issue", "-o", "json")
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(out), &tok); code != 0 || err != nil {
		t.Fatalf("tokens issue: exit %d: %v: %s", code, err, out)
	}
	sideloadAllowed := func() (bool, string) {
		out, code := p.local(socket, tok.Token, "status", "-o", "json")
		var ls struct {
			SideloadAllowed bool `json:"sideload_allowed"`
		}
		if i := strings.Index(out, "{"); code != 0 || i < 0 || json.Unmarshal([]byte(out[i:]), &ls) != nil {
			t.Fatalf("local status: exit %d: %s", code, out)
		}
		return ls.SideloadAllowed, out
	}
	if allowed, out := sideloadAllowed(); allowed {
		t.Fatalf("setup: press-1 may sideload: %s", out)
	}
	before := p.device("press-1")

	out, code = p.cli("groups", "delete", "line-1")
	if code != 1 || !strings.Contains(out, "sideload override deny") || !strings.Contains(out, "--force") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("delete without --force: exit %d, want 1 and one line naming the override and --force:\n%s", code, out)
	}
	if d := p.device("press-1"); d.DesiredRevision != before.DesiredRevision || strings.Join(d.Groups, ",") != "line-1" {
		t.Fatalf("a refused delete changed press-1: desired %d -> %d, groups %v", before.DesiredRevision, d.DesiredRevision, d.Groups)
	}
	if allowed, out := sideloadAllowed(); allowed {
		t.Fatalf("a refused delete lifted the ban: %s", out)
	}
	if out := p.mustCLI("settings", "show"); !strings.Contains(out, "line-1") {
		t.Fatalf("the override is gone after a refused delete:\n%s", out)
	}

	p.mustCLI("groups", "delete", "line-1", "--force")
	var found string
	for _, r := range p.securityAudit() {
		if r.Action == "group.delete" && r.Target == "line-1" {
			found = r.Detail
		}
	}
	for _, want := range []string{"forced", "sideload override deny", "sideload ban lifted on 1 device(s): press-1"} {
		if !strings.Contains(found, want) {
			t.Fatalf("security audit entry of the forced delete %q lacks %q", found, want)
		}
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		allowed, out := sideloadAllowed()
		return allowed, fmt.Sprintf("press-1 still banned after its denying group went: %s", out)
	})
}

// TestGroupOwnerCLI: a plant user allowed to create groups runs the owner's
// commands through the CLI: set-selector --dry-run previews, rename, looks
// up a colleague and shares, and a refusal points at access explain.
func TestGroupOwnerCLI(t *testing.T) {
	p := newPlant(t)
	p.mustEnroll("press-1", p.enrollToken("--labels", "line=1"))
	p.mustEnroll("press-2", p.enrollToken("--labels", "line=2"))
	p.mustCLI("roles", "create", "grouper", "--actions", "controller:create-device-group")
	p.mustCLI("roles", "create", "fixer", "--actions", "device:view,device:manage")
	olga, bob := p.newUser("olga"), p.newUser("bob")
	p.mustCLI("grants", "create", "--role", "grouper", "--user", "olga")
	p.mustCLI("grants", "create", "--role", "fixer", "--user", "olga", "--device", "press-1")
	as := func(u *opUser, args ...string) (string, int) { return run(t, nil, u.env(), bin.cli, args...) }
	must := func(u *opUser, args ...string) string {
		t.Helper()
		out, code := as(u, args...)
		if code != 0 {
			t.Fatalf("%s: edgewarden %s: exit %d: %s", u.name, strings.Join(args, " "), code, out)
		}
		return out
	}

	must(olga, "groups", "create", "presses")
	out := must(olga, "groups", "set-selector", "presses", "line=1", "--dry-run")
	if !strings.Contains(out, "dry run") || !strings.Contains(out, "press-1") {
		t.Fatalf("dry run:\n%s", out)
	}
	var g struct {
		Selector string   `json:"selector"`
		Members  []string `json:"members"`
	}
	p.cliJSON(&g, "groups", "show", "presses")
	if g.Selector != "" || len(g.Members) != 0 {
		t.Fatalf("a dry run changed the group: %+v", g)
	}
	out, code := as(olga, "groups", "set-selector", "presses", "line=2")
	if code != 1 || !strings.Contains(out, "device:manage") || !strings.Contains(out, "edgewarden access explain") || strings.Contains(out, "press-2") {
		t.Fatalf("selector pulling in a device olga cannot see: exit %d:\n%s", code, out)
	}
	out, code = as(olga, "access", "explain", "--action", "device:manage", "--device", "press-2")
	if code != 3 || !strings.Contains(out, "no grant") {
		t.Fatalf("access explain on herself: exit %d:\n%s", code, out)
	}
	must(olga, "groups", "set-selector", "presses", "line=1")
	must(olga, "groups", "rename", "presses", "line-1-presses")
	p.cliJSON(&g, "groups", "show", "line-1-presses")
	if g.Selector != "line=1" || strings.Join(g.Members, ",") != "press-1" {
		t.Fatalf("after set-selector and rename: %+v", g)
	}
	if out := must(olga, "users", "lookup", "bob"); !strings.Contains(out, "bob is an active user") {
		t.Fatalf("lookup:\n%s", out)
	}
	must(olga, "share", "--group", "line-1-presses", "--user", "bob", "--role", "group-owner")
	if out := must(bob, "groups", "show", "line-1-presses"); !strings.Contains(out, "press-1") {
		t.Fatalf("bob after the share:\n%s", out)
	}
	out, code = as(olga, "groups", "delete", "line-1-presses")
	if code != 1 || !strings.Contains(out, "user bob") || !strings.Contains(out, "--force") {
		t.Fatalf("delete with bob's share: exit %d:\n%s", code, out)
	}
	must(olga, "groups", "delete", "line-1-presses", "--force")
}
