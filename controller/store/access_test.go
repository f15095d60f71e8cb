package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/protocol/access"
)

func mustUser(t *testing.T, db *DB, name, state string) {
	t.Helper()
	if _, err := db.CreateUser(context.Background(), User{Name: name, PasswordHash: "x", State: state, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
}

func TestMigrationGrantsFirstAdmin(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	// Replay migration 2 on a database whose users exist, as an upgrade does.
	mustUser(t, db, "root", UserActive)
	mustUser(t, db, "later", UserActive)
	if _, err := db.write.ExecContext(ctx, `DROP TRIGGER users_delete_grants; DROP TRIGGER teams_delete_grants; DROP TRIGGER device_groups_delete_grants; DROP TRIGGER devices_delete_grants;
		DROP TABLE invitations; DROP TABLE operator_tokens; DROP TABLE grants; DROP TABLE roles; DROP TABLE team_members; DROP TABLE teams;`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.ExecContext(ctx, `UPDATE users SET created_at = created_at + 1 WHERE name = 'later'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.ExecContext(ctx, accessMigration); err != nil {
		t.Fatal(err)
	}
	// And the later steps that change those tables, as the upgrade would.
	if _, err := db.write.ExecContext(ctx, subjectIDsSchema); err != nil {
		t.Fatal(err)
	}
	gs, err := db.ListGrants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 1 || gs[0].Subject != access.UserSubject("root") || gs[0].Role != access.RoleAdmin || gs[0].Scope != access.Global() {
		t.Fatalf("grants after migration = %+v, want one global admin grant to root", gs)
	}
	if root, _ := db.GetUser(ctx, "root"); gs[0].SubjectID != root.ID {
		t.Fatalf("the admin grant names subject id %q, want root's %q", gs[0].SubjectID, root.ID)
	}
}

func TestFirstUserIsAdmin(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustUser(t, db, "root", UserActive)
	mustUser(t, db, "second", UserActive)
	gs, err := db.ListGrants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 1 || gs[0].Subject != access.UserSubject("root") || gs[0].Role != access.RoleAdmin || gs[0].Scope != access.Global() {
		t.Fatalf("grants = %+v, want one global admin grant to root", gs)
	}
	// An invited first user is not the admin.
	db2 := openTest(t)
	mustUser(t, db2, "pending", UserInvited)
	if gs, _ := db2.ListGrants(ctx); len(gs) != 0 {
		t.Fatalf("invited first user got grants %+v", gs)
	}
}

func TestTeams(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustUser(t, db, "alice", UserActive)
	mustUser(t, db, "bob", UserActive)
	if _, err := db.CreateTeam(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	tm, err := db.AddTeamMembers(ctx, "ops", []string{"bob", "alice", "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tm.Members, []string{"alice", "bob"}) {
		t.Fatalf("members = %v", tm.Members)
	}
	unchanged(t, db, ErrConflict, func() error { _, err := db.CreateTeam(ctx, "ops"); return err }, "ops")
	unchanged(t, db, ErrInvalid, func() error { _, err := db.CreateTeam(ctx, "Bad Name"); return err })
	unchanged(t, db, ErrNotFound, func() error { _, err := db.AddTeamMembers(ctx, "ops", []string{"carol"}); return err }, "carol")
	unchanged(t, db, ErrNotFound, func() error { _, err := db.AddTeamMembers(ctx, "nope", []string{"alice"}); return err }, "nope")
	// All or nothing: bob is removed only if carol is too.
	unchanged(t, db, ErrNotFound, func() error {
		_, err := db.RemoveTeamMembers(ctx, "ops", []string{"bob", "carol"})
		return err
	}, "carol")
	if tm, err = db.RemoveTeamMembers(ctx, "ops", []string{"bob"}); err != nil || !slices.Equal(tm.Members, []string{"alice"}) {
		t.Fatalf("remove: %v %v", tm.Members, err)
	}
	if _, err := db.CreateGrant(ctx, Grant{Grant: access.Grant{Subject: access.TeamSubject("ops"), Role: "viewer", Scope: access.Global()}, CreatedBy: "alice"}); err != nil {
		t.Fatal(err)
	}
	// Deleting a user drops its memberships; deleting a team its grants.
	if err := db.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if tm, _ = db.GetTeam(ctx, "ops"); len(tm.Members) != 0 {
		t.Fatalf("members after user deletion = %v", tm.Members)
	}
	if err := db.DeleteTeam(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	if gs, _ := db.ListGrants(ctx); len(gs) != 0 {
		t.Fatalf("grants after team deletion = %v", gs)
	}
}

func TestRoles(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	r, err := db.CreateRole(ctx, access.Role{Name: "line-lead", Actions: []access.Action{access.DeviceLogs, access.DeviceView, access.DeviceView}, Shareable: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Actions, []access.Action{access.DeviceView, access.DeviceLogs}) || !r.Shareable || r.Builtin {
		t.Fatalf("role = %+v", r)
	}
	unchanged(t, db, ErrInvalid, func() error {
		_, err := db.CreateRole(ctx, access.Role{Name: "x", Actions: []access.Action{"device:fly"}})
		return err
	}, "device:fly", "actions ls")
	unchanged(t, db, ErrInvalid, func() error { _, err := db.CreateRole(ctx, access.Role{Name: "empty"}); return err })
	unchanged(t, db, ErrForbidden, func() error {
		_, err := db.CreateRole(ctx, access.Role{Name: "admin", Actions: []access.Action{access.DeviceView}})
		return err
	}, "built in")
	unchanged(t, db, ErrForbidden, func() error {
		_, err := db.UpdateRole(ctx, access.Role{Name: "viewer", Actions: []access.Action{access.DeviceManage}})
		return err
	})
	unchanged(t, db, ErrForbidden, func() error { return db.DeleteRole(ctx, "operator") })
	unchanged(t, db, ErrConflict, func() error {
		_, err := db.CreateRole(ctx, access.Role{Name: "line-lead", Actions: []access.Action{access.DeviceView}})
		return err
	})
	unchanged(t, db, ErrNotFound, func() error {
		_, err := db.UpdateRole(ctx, access.Role{Name: "ghost", Actions: []access.Action{access.DeviceView}})
		return err
	})
	if r, err = db.UpdateRole(ctx, access.Role{Name: "line-lead", Actions: []access.Action{access.DeviceAppOperate}}); err != nil || r.Shareable {
		t.Fatalf("update: %+v %v", r, err)
	}
	roles, err := db.ListRoles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(roles) != len(access.BuiltinRoles())+1 || roles[0].Name != access.RoleAdmin || !roles[0].Builtin || roles[len(roles)-1].Name != "line-lead" {
		t.Fatalf("roles = %+v", roles)
	}
	mustUser(t, db, "bob", UserActive)
	g, err := db.CreateGrant(ctx, Grant{Grant: access.Grant{Subject: access.UserSubject("bob"), Role: "line-lead", Scope: access.Global()}, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	unchanged(t, db, ErrConflict, func() error { return db.DeleteRole(ctx, "line-lead") }, g.ID)
	if err := db.DeleteGrant(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteRole(ctx, "line-lead"); err != nil {
		t.Fatal(err)
	}
}

func TestGrants(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustUser(t, db, "root", UserActive) // the admin
	mustUser(t, db, "bob", UserActive)
	mustGroup(t, db, "line-1", "")
	mustEnroll(t, db, "dev-1", nil)
	grant := func(subject access.Subject, role string, scope access.Scope) Grant {
		return Grant{Grant: access.Grant{Subject: subject, Role: role, Scope: scope}, CreatedBy: "admin"}
	}
	g, err := db.CreateGrant(ctx, grant(access.UserSubject("bob"), "viewer", access.GroupScope("line-1")))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := db.GetGrant(ctx, g.ID); err != nil || got != g {
		t.Fatalf("get = %+v, %v; want %+v", got, err, g)
	}
	cases := []struct {
		name string
		g    Grant
		want error
	}{
		{"missing group", grant(access.UserSubject("bob"), "viewer", access.GroupScope("line-9")), ErrNotFound},
		{"missing device", grant(access.UserSubject("bob"), "viewer", access.DeviceScope("dev-9")), ErrNotFound},
		{"missing app", grant(access.UserSubject("bob"), "viewer", access.AppScope("hmi")), ErrNotFound},
		{"missing user", grant(access.UserSubject("carol"), "viewer", access.Global()), ErrNotFound},
		{"missing team", grant(access.TeamSubject("ops"), "viewer", access.Global()), ErrNotFound},
		{"missing role", grant(access.UserSubject("bob"), "ghost", access.Global()), ErrNotFound},
		{"bad scope", grant(access.UserSubject("bob"), "viewer", access.Scope{Kind: "planet", Name: "x"}), ErrInvalid},
		{"global with name", grant(access.UserSubject("bob"), "viewer", access.Scope{Kind: access.ScopeGlobal, Name: "x"}), ErrInvalid},
		{"no creator", Grant{Grant: access.Grant{Subject: access.UserSubject("bob"), Role: "viewer", Scope: access.Global()}}, ErrInvalid},
		{"duplicate", grant(access.UserSubject("bob"), "viewer", access.GroupScope("line-1")), ErrConflict},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			unchanged(t, db, c.want, func() error { _, err := db.CreateGrant(ctx, c.g); return err })
		})
	}
	if _, err := db.CreateGrant(ctx, grant(access.UserSubject("bob"), "operator", access.DeviceScope("dev-1"))); err != nil {
		t.Fatal(err)
	}
	// Deleting the scope's object deletes its grants.
	if err := db.DeleteDevice(ctx, "dev-1"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteGroup(ctx, "line-1"); err != nil {
		t.Fatal(err)
	}
	if gs, _ := db.ListGrants(ctx); len(gs) != 1 || gs[0].ID != "g-admin" {
		t.Fatalf("grants left = %+v, want only the admin's", gs)
	}
	unchanged(t, db, ErrNotFound, func() error { return db.DeleteGrant(ctx, "g-nope") })
}

func TestInviteActivate(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	inv := Invitation{User: "bob", TokenHash: hashOf("act-1"), ExpiresAt: t0.Add(time.Hour), CreatedBy: "admin"}
	u, err := db.InviteUser(ctx, inv)
	if err != nil || u.State != UserInvited {
		t.Fatalf("invite: %+v %v", u, err)
	}
	unchanged(t, db, ErrConflict, func() error { _, err := db.InviteUser(ctx, inv); return err })
	unchanged(t, db, ErrInvalid, func() error {
		_, err := db.InviteUser(ctx, Invitation{User: "Bob@x", TokenHash: hashOf("a"), ExpiresAt: t0.Add(time.Hour), CreatedBy: "admin"})
		return err
	})
	unchanged(t, db, ErrForbidden, func() error { _, err := db.ActivateUser(ctx, hashOf("wrong"), "h"); return err })
	// Expired.
	db.now = func() time.Time { return t0.Add(2 * time.Hour) }
	unchanged(t, db, ErrForbidden, func() error { _, err := db.ActivateUser(ctx, hashOf("act-1"), "h"); return err }, "expired")
	db.now = func() time.Time { return t0 }
	// Disabled meanwhile: refused.
	if _, err := db.SetUserState(ctx, "bob", UserDisabled); err != nil {
		t.Fatal(err)
	}
	unchanged(t, db, ErrForbidden, func() error { _, err := db.ActivateUser(ctx, hashOf("act-1"), "h"); return err })
	if _, err := db.SetUserState(ctx, "bob", UserInvited); err != nil {
		t.Fatal(err)
	}
	if u, err = db.ActivateUser(ctx, hashOf("act-1"), "hash"); err != nil || u.State != UserActive || u.PasswordHash != "hash" {
		t.Fatalf("activate: %+v %v", u, err)
	}
	// Single use.
	unchanged(t, db, ErrForbidden, func() error { _, err := db.ActivateUser(ctx, hashOf("act-1"), "h2"); return err })
}

func TestOperatorTokens(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustUser(t, db, "bob", UserActive)
	mustUser(t, db, "eve", UserDisabled)
	tok := OperatorToken{ID: "jti-1", User: "bob", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if err := db.RecordToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	before, _ := db.ListTokens(ctx, "")
	for name, bad := range map[string]OperatorToken{
		"disabled user": {ID: "jti-2", User: "eve", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)},
		"unknown user":  {ID: "jti-3", User: "zed", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)},
		"no expiry":     {ID: "jti-4", User: "bob", IssuedAt: t0},
		"duplicate":     tok,
	} {
		if err := db.RecordToken(ctx, bad); err == nil {
			t.Errorf("%s: recorded", name)
		}
	}
	if after, _ := db.ListTokens(ctx, ""); len(after) != len(before) {
		t.Fatalf("tokens changed after refused records: %v", after)
	}
	snap, _ := db.Snapshot(ctx)
	if len(snap.RevokedTokens) != 0 {
		t.Fatal("revoked before revocation")
	}
	got, err := db.RevokeToken(ctx, "jti-1", "admin")
	if err != nil || !got.Revoked() || got.RevokedBy != "admin" {
		t.Fatalf("revoke: %+v %v", got, err)
	}
	unchanged(t, db, ErrConflict, func() error { _, err := db.RevokeToken(ctx, "jti-1", "admin"); return err })
	unchanged(t, db, ErrNotFound, func() error { _, err := db.RevokeToken(ctx, "jti-9", "admin"); return err })
	snap, _ = db.Snapshot(ctx)
	if len(snap.RevokedTokens) != 1 || snap.RevokedTokens[0].ID != "jti-1" {
		t.Fatalf("revoked = %+v", snap.RevokedTokens)
	}
	// Expired revocations drop out of the snapshot.
	db.now = func() time.Time { return t0.Add(2 * time.Hour) }
	snap, _ = db.Snapshot(ctx)
	if len(snap.RevokedTokens) != 0 {
		t.Fatalf("expired revocation still listed: %+v", snap.RevokedTokens)
	}
}

func TestAccessInput(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustUser(t, db, "root", UserActive)
	mustUser(t, db, "alice", UserActive)
	mustUser(t, db, "eve", UserDisabled)
	mustUser(t, db, "Legacy@x", UserActive)
	if _, err := db.CreateTeam(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddTeamMembers(ctx, "ops", []string{"alice", "eve"}); err != nil {
		t.Fatal(err)
	}
	mustGroup(t, db, "line-1", "")
	for _, s := range []access.Subject{access.TeamSubject("ops"), access.UserSubject("eve"), access.UserSubject("Legacy@x")} {
		db.CreateGrant(ctx, Grant{Grant: access.Grant{Subject: s, Role: "operator", Scope: access.GroupScope("line-1")}, CreatedBy: "admin"})
	}
	snap, err := db.AccessSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e, err := access.Compile(snap.AccessInput())
	if err != nil {
		t.Fatal(err)
	}
	grp := access.GroupResource("line-1", nil)
	if !e.Allowed("alice", access.DeviceGroupView, grp) {
		t.Error("alice (team ops) denied")
	}
	if e.Allowed("eve", access.DeviceGroupView, grp) {
		t.Error("disabled eve allowed")
	}
	if e.Allowed("Legacy@x", access.DeviceGroupView, grp) {
		t.Error("user with a name the access model refuses allowed")
	}
}
