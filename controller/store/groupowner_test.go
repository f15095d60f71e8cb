package store

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/protocol/access"
)

// richGroup makes group "line" carry everything a deletion can take: a deny
// sideload override, grants (one to its creator bob, one to team ops), an
// app assignment, a parent that includes it and a child it includes. d1 is
// a direct member; an enrollment token assigns the group.
func richGroup(t *testing.T, db *DB) {
	t.Helper()
	ctx := context.Background()
	for _, g := range []string{"line", "plant", "cell"} {
		mustGroup(t, db, g, "")
	}
	mustEnroll(t, db, "d1", nil)
	if _, err := db.AddGroupDevices(ctx, "line", []string{"d1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.IncludeGroup(ctx, "plant", "line"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.IncludeGroup(ctx, "line", "cell"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetSideloadOverride(ctx, SideloadOverride{Group: "line", Policy: SideloadDeny, SetBy: "sec"}); err != nil {
		t.Fatal(err)
	}
	mustUser(t, db, "bob", UserActive)
	if _, err := db.CreateTeam(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	for _, g := range []access.Grant{access.OwnerGrant("g-owner", "bob", "line"), {ID: "g-ops", Subject: access.TeamSubject("ops"), Role: access.RoleOperator, Scope: access.GroupScope("line")}} {
		if _, err := db.CreateGrant(ctx, Grant{Grant: g, CreatedBy: "admin"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.AddPublisherKey(ctx, "acme", testPubKey(t), "sec", t0); err != nil {
		t.Fatal(err)
	}
	if err := db.PutAppVersion(ctx, testVersion("web", "1.0.0", "acme", digestA)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AssignApp(ctx, Assignment{App: "web", Version: "1.0.0", Group: "line", AssignedAt: t0}); err != nil {
		t.Fatal(err)
	}
	mustToken(t, db, "line-token", func(tk *EnrollToken) { tk.Groups = []string{"cell", "line"} })
}

func TestGroupDependents(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	richGroup(t, db)
	d, err := db.GroupDependents(ctx, "line")
	if err != nil {
		t.Fatal(err)
	}
	if d.Sideload == nil || d.Sideload.Policy != SideloadDeny || len(d.Grants) != 2 || len(d.Assignments) != 1 ||
		!slices.Equal(d.IncludedBy, []string{"plant"}) || !slices.Equal(d.Includes, []string{"cell"}) {
		t.Fatalf("dependents %+v", d)
	}
	// The creator's own grant is theirs to drop; everything else is
	// someone else's and is listed.
	prot := strings.Join(d.Protected("bob"), "\n")
	for _, want := range []string{"sideload override deny", "g-ops", "app assignment web 1.0.0", "inclusion in group plant"} {
		if !strings.Contains(prot, want) {
			t.Errorf("Protected(bob) lacks %q:\n%s", want, prot)
		}
	}
	if strings.Contains(prot, "g-owner") {
		t.Errorf("Protected(bob) lists bob's own grant:\n%s", prot)
	}
	all := strings.Join(d.Removed(), "\n")
	for _, want := range []string{"g-owner", "g-ops", "include of group cell"} {
		if !strings.Contains(all, want) {
			t.Errorf("Removed lacks %q:\n%s", want, all)
		}
	}
	// A bare group carries nothing.
	mustGroup(t, db, "bare", "")
	if d, err := db.GroupDependents(ctx, "bare"); err != nil || len(d.Protected("")) != 0 || len(d.Removed()) != 0 {
		t.Fatalf("bare group: %+v %v", d, err)
	}
	if _, err := db.GroupDependents(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown group: %v", err)
	}
}

// TestRenameGroupMovesEveryReference: after a rename everything that named
// the group names the new one, nobody's rights and no device's groups change
// but for the name, and every foreign key to device_groups in the schema is
// one the rename moves (a table added later without it fails here).
func TestRenameGroupMovesEveryReference(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	richGroup(t, db)
	before := dump(t, db)

	g, err := db.RenameGroup(ctx, "line", "line-1")
	if err != nil {
		t.Fatal(err)
	}
	if g.Name != "line-1" || !slices.Equal(g.Devices, []string{"d1"}) || !slices.Equal(g.Includes, []string{"cell"}) {
		t.Fatalf("renamed group %+v", g)
	}
	after := dump(t, db)
	rename := func(s string) string {
		if s == "line" {
			return "line-1"
		}
		return s
	}
	// Every grant, override, assignment, include and token as before, with
	// the new name.
	for i, gr := range before.Snap.Grants {
		if gr.Scope.Kind == access.ScopeDeviceGroup {
			gr.Scope.Name = rename(gr.Scope.Name)
		}
		if !reflect.DeepEqual(gr, after.Snap.Grants[i]) {
			t.Errorf("grant %d: %+v, want %+v", i, after.Snap.Grants[i], gr)
		}
	}
	if len(after.Snap.SideloadOverrides) != 1 || after.Snap.SideloadOverrides[0].Group != "line-1" || after.Snap.SideloadOverrides[0].Policy != SideloadDeny {
		t.Errorf("overrides %+v", after.Snap.SideloadOverrides)
	}
	as, _ := db.ListAssignments(ctx)
	if len(as) != 1 || as[0].Group != "line-1" {
		t.Errorf("assignments %+v", as)
	}
	plant, _ := db.GetGroup(ctx, "plant")
	if !slices.Equal(plant.Includes, []string{"line-1"}) {
		t.Errorf("plant includes %v", plant.Includes)
	}
	var tok EnrollToken
	for _, tk := range after.Tokens {
		if tk.Hash == hashOf("line-token") {
			tok = tk
		}
	}
	if !slices.Equal(tok.Groups, []string{"cell", "line-1"}) {
		t.Errorf("enrollment token groups %v", tok.Groups)
	}
	m, _ := db.Membership(ctx)
	if !slices.Equal(m.GroupsOf("d1"), []string{"line-1", "plant"}) {
		t.Errorf("d1 groups %v", m.GroupsOf("d1"))
	}
	if _, err := db.GetGroup(ctx, "line"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old name still there: %v", err)
	}

	// Every foreign key to device_groups is moved by groupReferences.
	rows, err := db.read.QueryContext(ctx, `SELECT m.name, f."from" FROM sqlite_master m, pragma_foreign_key_list(m.name) f
		WHERE m.type = 'table' AND f."table" = 'device_groups'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		n++
		want := "UPDATE " + table + " SET " + col + " = ?1"
		if !slices.ContainsFunc(groupReferences, func(q string) bool { return strings.HasPrefix(q, want) }) {
			t.Errorf("%s.%s references device_groups but RenameGroup does not move it (add it to groupReferences)", table, col)
		}
	}
	if n < 5 {
		t.Fatalf("found %d foreign keys to device_groups; the schema query is wrong", n)
	}

	// Bad input: nothing changes.
	unchanged(t, db, ErrInvalid, func() error { _, err := db.RenameGroup(ctx, "line-1", ""); return err }, "group name")
	unchanged(t, db, ErrInvalid, func() error { _, err := db.RenameGroup(ctx, "line-1", "Line 1!"); return err }, "group name")
	unchanged(t, db, ErrInvalid, func() error { _, err := db.RenameGroup(ctx, "line-1", "line-1"); return err }, "already called")
	unchanged(t, db, ErrConflict, func() error { _, err := db.RenameGroup(ctx, "line-1", "plant"); return err }, "already exists")
	unchanged(t, db, ErrNotFound, func() error { _, err := db.RenameGroup(ctx, "nope", "other"); return err }, "does not exist")
}

func TestPreviewSelector(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustEnroll(t, db, "d1", map[string]string{"site": "a"})
	mustEnroll(t, db, "d2", map[string]string{"site": "b"})
	mustEnroll(t, db, "d3", map[string]string{"site": "a", "line": "1"})
	mustGroup(t, db, "g", "site=b")
	before := dump(t, db)
	p, err := db.PreviewSelector(ctx, "g", " site = a ")
	if err != nil {
		t.Fatal(err)
	}
	if p.Selector != "site=a" || !slices.Equal(p.Members, []string{"d1", "d3"}) || !slices.Equal(p.Added, []string{"d1", "d3"}) || !slices.Equal(p.Removed, []string{"d2"}) {
		t.Fatalf("preview %+v", p)
	}
	if after := dump(t, db); !reflect.DeepEqual(before, after) {
		t.Fatal("a preview changed the store")
	}
	// A group that does not exist yet: what creating it would match.
	if p, err = db.PreviewSelector(ctx, "new", "line=1"); err != nil || !slices.Equal(p.Added, []string{"d3"}) || len(p.Removed) != 0 {
		t.Fatalf("preview of a new group %+v %v", p, err)
	}
	if _, err := db.PreviewSelector(ctx, "g", "site=="); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid selector: %v", err)
	}
}

// TestSideloadLiftIsSecurity: whatever path lifts the sideload ban on a
// device (removing it from a denying group, deleting the group or its
// override, adding it to an allowing group, the global policy), the change's
// audit entry is of kind security and names the devices; a change that
// lifts nothing stays a change.
func TestSideloadLiftIsSecurity(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	for _, id := range []string{"d1", "d2", "d3", "d4"} {
		mustEnroll(t, db, id, nil)
	}
	mustGroup(t, db, "locked", "")
	mustGroup(t, db, "open", "")
	mustGroup(t, db, "other", "")
	if _, err := db.AddGroupDevices(ctx, "locked", []string{"d1", "d2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetSideloadOverride(ctx, SideloadOverride{Group: "locked", Policy: SideloadDeny, SetBy: "sec"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetSideloadOverride(ctx, SideloadOverride{Group: "open", Policy: SideloadAllow, SetBy: "sec"}); err != nil {
		t.Fatal(err)
	}
	// Each change marks what it may change, as the API's handlers do: the
	// check compares the marked devices (all of them after DirtyAll).
	change := func(action string, fn func(ctx context.Context, c *Change) error) AuditEntry {
		t.Helper()
		c, err := db.Change(ctx, audit(action), fn)
		if err != nil {
			t.Fatal(err)
		}
		return c.Audit
	}
	// Global deny (unset): d3 joining the allowing group is a lift.
	e := change("group.add-devices", func(ctx context.Context, c *Change) error {
		c.DirtyDevices("d3")
		_, err := db.AddGroupDevices(ctx, "open", []string{"d3"})
		return err
	})
	if e.Kind != AuditSecurity || !strings.Contains(e.Detail, "sideload ban lifted on 1 device(s): d3") {
		t.Fatalf("adding to an allowing group: %+v", e)
	}
	// d1 is in both: deny wins, so joining "open" lifts nothing.
	e = change("group.add-devices", func(ctx context.Context, c *Change) error {
		c.DirtyDevices("d1")
		_, err := db.AddGroupDevices(ctx, "open", []string{"d1"})
		return err
	})
	if e.Kind != AuditChange {
		t.Fatalf("a change that lifts nothing: %+v", e)
	}
	// Removing d1 from the denying group lifts it (it stays in "open").
	e = change("group.remove-devices", func(ctx context.Context, c *Change) error {
		c.DirtyDevices("d1")
		_, err := db.RemoveGroupDevices(ctx, "locked", []string{"d1"})
		return err
	})
	if e.Kind != AuditSecurity || !strings.Contains(e.Detail, ": d1") {
		t.Fatalf("removing from a denying group: %+v", e)
	}
	// Adding to an unrelated group is a plain change.
	e = change("group.add-devices", func(ctx context.Context, c *Change) error {
		c.DirtyDevices("d2")
		_, err := db.AddGroupDevices(ctx, "other", []string{"d2"})
		return err
	})
	if e.Kind != AuditChange {
		t.Fatalf("unrelated change: %+v", e)
	}
	// The global policy lifts d4 (in no group), not d2 (its group denies).
	e = change("settings.sideload", func(ctx context.Context, c *Change) error {
		c.DirtyAll()
		return db.SetSetting(ctx, SettingSideload, SideloadAllow)
	})
	if e.Kind != AuditSecurity || !strings.HasSuffix(e.Detail, "1 device(s): d4") {
		t.Fatalf("global allow while d2 is denied by its group: %+v", e)
	}
	e = change("group.delete", func(ctx context.Context, c *Change) error {
		if err := c.DirtyGroups(ctx, "locked"); err != nil {
			return err
		}
		return db.DeleteGroup(ctx, "locked")
	})
	if e.Kind != AuditSecurity || !strings.Contains(e.Detail, ": d2") {
		t.Fatalf("deleting the denying group: %+v", e)
	}
}

// TestLiveTokensNaming: only tokens that can still enroll hold a name.
func TestLiveTokensNaming(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustGroup(t, db, "g", "")
	mustGroup(t, db, "other-g", "")
	live := mustToken(t, db, "live", func(tk *EnrollToken) { tk.Groups = []string{"g"} })
	revoked := mustToken(t, db, "revoked", func(tk *EnrollToken) { tk.Groups = []string{"g"} })
	if err := db.RevokeEnrollToken(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	mustToken(t, db, "expired", func(tk *EnrollToken) {
		tk.Groups = []string{"g"}
		tk.CreatedAt, tk.ExpiresAt = t0.Add(-time.Hour), t0.Add(-time.Second)
	})
	mustToken(t, db, "other", func(tk *EnrollToken) { tk.Groups = []string{"other-g"} })
	ids, err := db.LiveTokensNaming(ctx, "g")
	if err != nil || !slices.Equal(ids, []string{live.ID}) {
		t.Fatalf("live tokens naming g: %v %v, want [%s]", ids, err, live.ID)
	}
}
