package optoken

import (
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/access"
)

// TestLocalAccessFlow is the agent's wiring: a token proves who the user is,
// the device policy decides. A valid token does not help a user whose grant
// was removed or who was disabled, once the next document arrives.
func TestLocalAccessFlow(t *testing.T) {
	f := newFixture(t)
	h := access.NewHierarchy(map[string][]string{"line-1": {"cell-3"}})
	dev := h.Device("d-7", []string{"cell-3"})
	in := access.Input{
		Roles: access.BuiltinRoles(),
		Users: []access.User{{Name: "alice", Teams: []string{"ops"}}, {Name: "carol"}},
		Grants: []access.Grant{
			{ID: "g-1", Subject: access.TeamSubject("ops"), Role: access.RoleOperator, Scope: access.GroupScope("line-1")},
			{ID: "g-2", Subject: access.UserSubject("carol"), Role: access.RoleOperator, Scope: access.DeviceScope("d-7")},
		},
	}
	type doc struct {
		v  *Verifier
		ev *access.Evaluator
		p  access.Policy
	}
	compile := func(in access.Input, revoked ...string) doc {
		p, err := access.CompileForDevice(in, dev)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := p.Evaluator()
		if err != nil {
			t.Fatal(err)
		}
		v, err := NewVerifier(VerifierOptions{Keys: []protocol.PublicKey{f.ed.PublicKey()}, Revoked: revoked})
		if err != nil {
			t.Fatal(err)
		}
		return doc{v, ev, p}
	}
	authorize := func(d doc, tok string, a access.Action) bool {
		c, err := d.v.Verify(tok, t0.Add(time.Minute))
		if err != nil {
			return false
		}
		return d.ev.Allowed(c.Subject, a, d.p.Device("d-7"))
	}
	alice := f.issue(t, f.ed, IssueOptions{Subject: "alice", ID: "tok-a", TTL: time.Hour})
	carol := f.issue(t, f.ed, IssueOptions{Subject: "carol", ID: "tok-c", TTL: time.Hour})

	d := compile(in)
	if !authorize(d, alice, access.DeviceAppOperate) || !authorize(d, carol, access.DeviceLogs) {
		t.Fatal("precondition: alice and carol may work on d-7")
	}
	if authorize(d, alice, access.DeviceSideload) {
		t.Error("alice may sideload without a grant")
	}

	// Next document: carol disabled, alice's team grant removed.
	next := in
	next.Users = []access.User{{Name: "alice", Teams: []string{"ops"}}, {Name: "carol", Disabled: true}}
	next.Grants = in.Grants[1:]
	d = compile(next)
	if authorize(d, carol, access.DeviceLogs) {
		t.Error("disabled carol is still allowed with her valid token")
	}
	if authorize(d, alice, access.DeviceAppOperate) {
		t.Error("alice is still allowed after her grant was removed")
	}

	// Revoked token: refused though the grant stands.
	d = compile(in, "tok-a")
	if authorize(d, alice, access.DeviceAppOperate) {
		t.Error("revoked token still works")
	}
}
