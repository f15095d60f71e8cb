package api_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol/access"
)

// TestReusedNameIsAnotherUser: bob is deleted and a new bob is invited.
// Old bob's session is refused, and old bob's operator token is revoked
// (in every document's revoked list until it expires), whoever has the
// name now; the new bob has none of old bob's grants.
func TestReusedNameIsAnotherUser(t *testing.T) {
	e := newAccessEnv(t)
	ctx := context.Background()
	e.addUser("bob", store.UserActive)
	e.grant(access.UserSubject("bob"), access.RoleViewer, access.Global())
	oldBob := e.login("bob")
	tok, err := oldBob.IssueToken(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := e.db.GetUser(ctx, "bob")

	admin := e.login("admin")
	if err := admin.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	inv, err := admin.InviteUser(ctx, apiv1.InviteRequest{Name: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.anon().ActivateUser(ctx, inv.Token, testPassword); err != nil {
		t.Fatal(err)
	}
	now, _ := e.db.GetUser(ctx, "bob")
	if now.ID == "" || now.ID == old.ID {
		t.Fatalf("new bob has id %q, old bob had %q: want a new, non-empty id", now.ID, old.ID)
	}

	_, err = oldBob.ListDevices(ctx)
	wantStatus(t, err, http.StatusUnauthorized, "no longer exists")

	toks, err := e.db.ListTokens(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(toks, func(o store.OperatorToken) bool { return o.ID == tok.ID })
	if i < 0 || !toks[i].Revoked() {
		t.Fatalf("old bob's operator token %s is not revoked: %+v", tok.ID, toks)
	}
	snap, err := e.db.AccessSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(snap.RevokedTokens, func(o store.OperatorToken) bool { return o.ID == tok.ID }) {
		t.Fatalf("old bob's token is not in the revoked list devices receive: %+v", snap.RevokedTokens)
	}
	for _, g := range snap.Grants {
		if g.Subject == access.UserSubject("bob") {
			t.Fatalf("new bob inherited old bob's grant %s", g.ID)
		}
	}
	// The new bob's own session works; old bob's tokens are not his: he
	// neither sees nor revokes them, and whoami shows him no grant.
	newBob := e.login("bob")
	mine, err := newBob.ListTokens(ctx)
	if err != nil {
		t.Fatalf("new bob: %v", err)
	}
	if len(mine) != 0 {
		t.Fatalf("new bob lists old bob's tokens: %+v", mine)
	}
	wantStatus(t, newBob.RevokeToken(ctx, tok.ID), http.StatusForbidden)
	me, err := newBob.WhoAmI(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if me.ID != now.ID || len(me.Grants) != 0 {
		t.Fatalf("new bob's whoami: %+v, want his own id and no grant", me)
	}
}

// TestSessionsEnd: disabling (and enabling again), a password change and
// ending sessions each refuse every session issued before.
func TestSessionsEnd(t *testing.T) {
	e := newAccessEnv(t)
	ctx := context.Background()
	e.addUser("carol", store.UserActive)
	e.grant(access.UserSubject("carol"), access.RoleViewer, access.Global())
	for _, tc := range []struct {
		name string
		end  func() error
	}{
		{"disable and enable", func() error {
			if _, err := e.db.SetUserState(ctx, "carol", store.UserDisabled); err != nil {
				return err
			}
			_, err := e.db.SetUserState(ctx, "carol", store.UserActive)
			return err
		}},
		{"password change", func() error {
			u, _ := e.db.GetUser(ctx, "carol")
			_, err := e.db.SetUserPassword(ctx, "carol", u.PasswordHash)
			return err
		}},
		{"end sessions", func() error { _, err := e.db.EndSessions(ctx, "carol"); return err }},
	} {
		c := e.login("carol")
		if _, err := c.ListDevices(ctx); err != nil {
			t.Fatalf("%s: fresh session: %v", tc.name, err)
		}
		if err := tc.end(); err != nil {
			t.Fatal(err)
		}
		_, err := c.ListDevices(ctx)
		wantStatus(t, err, http.StatusUnauthorized, "session ended")
	}
}
