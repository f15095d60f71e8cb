package store

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/protocol/access"
)

// TestReusedNameInheritsNothing: bob holds a grant and an operator token
// and is deleted. A grant and a token naming "bob" are then left behind
// by name, as a path that forgot to clean up would leave them (or an old
// backup restored beside a new user). A new bob is created: he holds none
// of those rights, the tokens are in the revoked list devices receive,
// and grants made to him apply to him by his id.
func TestReusedNameInheritsNothing(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	now := db.now()
	if _, err := db.CreateUser(ctx, User{Name: "admin", PasswordHash: "x", State: UserActive}); err != nil {
		t.Fatal(err)
	}
	old, err := db.CreateUser(ctx, User{Name: "bob", PasswordHash: "x", State: UserActive})
	if err != nil {
		t.Fatal(err)
	}
	g, err := db.CreateGrant(ctx, Grant{Grant: access.Grant{Subject: access.UserSubject("bob"), Role: access.RoleAdmin, Scope: access.Global()}, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if g2, _ := db.GetGrant(ctx, g.ID); g2.SubjectID != old.ID {
		t.Fatalf("bob's grant names subject id %q, want bob's id %q", g2.SubjectID, old.ID)
	}
	if err := db.RecordToken(ctx, OperatorToken{ID: "tok-old", User: "bob", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	// Left behind by name, with no user of that name.
	if _, err := db.write.ExecContext(ctx, `INSERT INTO grants (id, subject_kind, subject_name, role, scope_kind, scope_name, created_by, created_at)
		VALUES ('g-left', 'user', 'bob', 'admin', 'global', '', 'restore', ?)`, unixNano(now)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.ExecContext(ctx, `INSERT INTO operator_tokens (id, user_name, issued_at, expires_at) VALUES ('tok-left', 'bob', ?, ?)`,
		unixNano(now), unixNano(now.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}

	fresh, err := db.CreateUser(ctx, User{Name: "bob", PasswordHash: "x", State: UserActive})
	if err != nil {
		t.Fatal(err)
	}
	if fresh.ID == old.ID {
		t.Fatal("the new bob got the old bob's id")
	}
	snap, err := db.AccessSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	in := snap.AccessInput()
	for _, g := range in.Grants {
		if g.Subject == access.UserSubject("bob") {
			t.Fatalf("the new bob holds grant %s left behind by name", g.ID)
		}
	}
	ev, err := access.Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	if d := ev.Decide("bob", access.ControllerManageUsers, access.ControllerResource()); d.Allowed {
		t.Fatalf("the new bob may manage users: %s", d)
	}
	var revoked []string
	for _, tok := range snap.RevokedTokens {
		revoked = append(revoked, tok.ID)
	}
	for _, id := range []string{"tok-old", "tok-left"} {
		if !slices.Contains(revoked, id) {
			t.Errorf("token %s of a user no longer there is not in the revoked list devices receive: %v", id, revoked)
		}
	}

	// The new bob's own grant and token apply to him, by his id.
	if _, err := db.CreateGrant(ctx, Grant{Grant: access.Grant{Subject: access.UserSubject("bob"), Role: access.RoleViewer, Scope: access.Global()}, CreatedBy: "admin"}); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordToken(ctx, OperatorToken{ID: "tok-new", User: "bob", UserID: fresh.ID, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// A token recorded for the old bob's id is refused: that user is gone.
	if err := db.RecordToken(ctx, OperatorToken{ID: "tok-stale", User: "bob", UserID: old.ID, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}); err == nil {
		t.Fatal("a token for the deleted bob's id was recorded")
	}
	snap, _ = db.AccessSnapshot(ctx)
	ev, _ = access.Compile(snap.AccessInput())
	if d := ev.Decide("bob", access.DeviceView, access.ControllerResource()); !d.Allowed {
		t.Fatalf("the new bob's own grant does not apply: %s", d)
	}
	if slices.ContainsFunc(snap.RevokedTokens, func(o OperatorToken) bool { return o.ID == "tok-new" }) {
		t.Fatal("the new bob's own token is in the revoked list")
	}
	toks, _ := db.ListTokens(ctx, "bob")
	for _, tok := range toks {
		if want := tok.ID == "tok-new"; (tok.UserID == fresh.ID) != want {
			t.Errorf("token %s has user id %q (new bob %q)", tok.ID, tok.UserID, fresh.ID)
		}
	}
}

// TestMigrationNamesSubjectsByID: grants and tokens stored before
// migration 11 get the id of the user holding the name; those whose user
// is gone get none, so they never apply.
func TestMigrationNamesSubjectsByID(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "controller.db")
	all := migrations
	i := slices.Index(all, subjectIDsSchema)
	migrations = all[:i] // the schema as the controller before it left it
	db, err := Open(ctx, path)
	migrations = all
	if err != nil {
		t.Fatal(err)
	}
	u, err := db.CreateUser(ctx, User{Name: "carol", PasswordHash: "x", State: UserActive})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO grants (id, subject_kind, subject_name, role, scope_kind, scope_name, created_by, created_at) VALUES ('g-carol', 'user', 'carol', 'viewer', 'global', '', 'x', 1)`,
		`INSERT INTO grants (id, subject_kind, subject_name, role, scope_kind, scope_name, created_by, created_at) VALUES ('g-gone', 'user', 'gone', 'viewer', 'global', '', 'x', 1)`,
		`INSERT INTO grants (id, subject_kind, subject_name, role, scope_kind, scope_name, created_by, created_at) VALUES ('g-team', 'team', 'carol', 'viewer', 'global', '', 'x', 1)`,
		`INSERT INTO operator_tokens (id, user_name, issued_at, expires_at) VALUES ('t-carol', 'carol', 1, 2)`,
		`INSERT INTO operator_tokens (id, user_name, issued_at, expires_at) VALUES ('t-gone', 'gone', 1, 2)`,
	} {
		if _, err := db.write.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	db = openAt(t, path) // applies migration 11
	want := map[string]string{"g-carol": u.ID, "g-gone": "", "g-team": ""}
	for id, sid := range want {
		if g, err := db.GetGrant(ctx, id); err != nil || g.SubjectID != sid {
			t.Errorf("grant %s after the migration: subject id %q (%v), want %q", id, g.SubjectID, err, sid)
		}
	}
	for id, uid := range map[string]string{"t-carol": u.ID, "t-gone": ""} {
		if tok, err := db.GetToken(ctx, id); err != nil || tok.UserID != uid {
			t.Errorf("token %s after the migration: user id %q (%v), want %q", id, tok.UserID, err, uid)
		}
	}
}
