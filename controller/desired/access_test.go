package desired

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/access"
)

func grantOf(id, user, role string, scope access.Scope) store.Grant {
	return store.Grant{Grant: access.Grant{ID: id, Subject: access.UserSubject(user), Role: role, Scope: scope}}
}

func TestCompileAccess(t *testing.T) {
	clk := &clock{t0}
	tokenKey := protocol.PublicKey{KeyID: "tok-1", Algorithm: "Ed25519", PEM: "pem"}
	c := New(Options{Key: testKey(1), TTL: 24 * time.Hour, Now: clk.now, TokenKeys: []protocol.PublicKey{tokenKey}})
	snap := fleetSnapshot()
	snap.Users = []store.User{{Name: "admin", State: store.UserActive}, {Name: "bob", State: store.UserActive}, {Name: "eve", State: store.UserDisabled}}
	snap.Grants = []store.Grant{
		grantOf("g-admin", "admin", access.RoleAdmin, access.Global()),
		grantOf("g-1", "bob", access.RoleOperator, access.GroupScope("berlin")),
		grantOf("g-2", "eve", access.RoleOperator, access.GroupScope("plant")),
	}
	snap.RevokedTokens = []store.OperatorToken{
		{ID: "live", ExpiresAt: t0.Add(time.Hour)},
		{ID: "dead", ExpiresAt: t0.Add(-time.Hour)},
	}
	recs, err := c.Compile(snap)
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]*protocol.DesiredState{}
	for _, r := range recs {
		docs[r.DeviceID] = decode(t, r)
	}
	p1, p2 := docs["press-01"], docs["press-02"]
	if !slices.Equal(grantIDs(p1.Access), []string{"g-1", "g-admin"}) {
		t.Errorf("press-01 grants = %v, want g-1 (berlin) and g-admin", grantIDs(p1.Access))
	}
	if !slices.Equal(grantIDs(p2.Access), []string{"g-admin"}) {
		t.Errorf("press-02 grants = %v, want g-admin only (eve is disabled)", grantIDs(p2.Access))
	}
	e, err := p1.Access.Evaluator()
	if err != nil {
		t.Fatal(err)
	}
	if !e.Allowed("bob", access.DeviceAppOperate, p1.Access.Device("press-01")) || e.Allowed("eve", access.DeviceView, p1.Access.Device("press-01")) {
		t.Error("press-01's policy decides wrongly")
	}
	if len(p1.TokenKeys) != 1 || p1.TokenKeys[0] != tokenKey || !slices.Equal(p1.RevokedTokens, []string{"live"}) {
		t.Errorf("token keys %v, revoked %v", p1.TokenKeys, p1.RevokedTokens)
	}

	// A grant on a group that holds only press-02 changes only its document.
	apply(snap, recs)
	snap.Grants = append(snap.Grants, grantOf("g-3", "bob", access.RoleViewer, access.GroupScope("special")))
	recs, err = c.Compile(snap)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].DeviceID != "press-02" || recs[0].Revision != 2 {
		t.Fatalf("after a grant on special: %d records %+v", len(recs), recs)
	}
	// Nothing changed: nothing recompiled.
	apply(snap, recs)
	if recs, _ = c.Compile(snap); len(recs) != 0 {
		t.Fatalf("%d records without a change", len(recs))
	}
}

func grantIDs(p access.Policy) []string {
	var ids []string
	for _, g := range p.Grants {
		ids = append(ids, g.ID)
	}
	return ids
}

// accessBenchSnapshot is benchSnapshot with 200 users, 50 grants to one of
// them on groups and devices, and the admin's global grant.
func accessBenchSnapshot(n int) *store.Snapshot {
	snap := benchSnapshot(n)
	snap.Users = append(snap.Users, store.User{Name: "admin", State: store.UserActive})
	snap.Grants = append(snap.Grants, grantOf("g-admin", "admin", access.RoleAdmin, access.Global()))
	for u := range 200 {
		snap.Users = append(snap.Users, store.User{Name: fmt.Sprintf("user-%03d", u), State: store.UserActive})
	}
	for k := range 50 {
		scope := access.GroupScope(fmt.Sprintf("group-%03d", k*9))
		if k%5 == 0 {
			scope = access.DeviceScope(fmt.Sprintf("dev-%05d", k*97))
		}
		snap.Grants = append(snap.Grants, grantOf(fmt.Sprintf("g-%02d", k), "user-000", access.RoleOperator, scope))
	}
	return snap
}

// BenchmarkCompileAfterGrantChange compiles a 10k-device fleet after one
// new grant on one group (group-100: 20 direct members) and reports how
// many documents changed; the rest keep their revision.
//
//	go test ./controller/desired -run '^$' -bench CompileAfterGrantChange -cpu 1
func BenchmarkCompileAfterGrantChange(b *testing.B) {
	snap := accessBenchSnapshot(10000)
	c := New(Options{Key: testKey(1)})
	recs, err := c.Compile(snap)
	if err != nil {
		b.Fatal(err)
	}
	apply(snap, recs)
	snap.Grants = append(snap.Grants, grantOf("g-new", "user-001", access.RoleViewer, access.GroupScope("group-100")))
	changed := 0
	for b.Loop() {
		recs, err := c.Compile(snap)
		if err != nil {
			b.Fatal(err)
		}
		changed = len(recs)
	}
	if changed == 0 || changed > 100 {
		b.Fatalf("%d documents changed after one grant on a 20-device group", changed)
	}
	b.ReportMetric(float64(changed), "changed-docs")
}
