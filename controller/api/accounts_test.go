package api_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol/access"
)

// session logs name in with password and returns the session token.
func (e *accessEnv) session(name, password string) string {
	e.t.Helper()
	resp, err := e.anon().Login(context.Background(), name, password)
	if err != nil {
		e.t.Fatalf("login %s: %v", name, err)
	}
	return resp.Token
}

// as returns a client presenting token, e.g. a copy of someone's session.
func (e *accessEnv) as(token string) *client.Client {
	c, err := client.New(client.Options{BaseURL: e.url, CAPool: e.pool, Token: token})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *accessEnv) userID(name string) string {
	e.t.Helper()
	u, err := e.db.GetUser(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	return u.ID
}

// TestEnableUser: only a disabled user can be enabled, only with
// controller:manage-users; sessions ended by the disable stay ended.
func TestEnableUser(t *testing.T) {
	e := newAccessEnv(t)
	ctx := context.Background()
	e.addUser("bob", store.UserActive)
	e.grant(access.UserSubject("bob"), access.RoleViewer, access.Global())
	e.addUser("viewer", store.UserActive)
	e.grant(access.UserSubject("viewer"), access.RoleViewer, access.Global())
	admin, viewer := e.login("admin"), e.login("viewer")
	bob := e.login("bob")
	if _, err := admin.InviteUser(ctx, apiv1.InviteRequest{Name: "newbie"}); err != nil {
		t.Fatal(err)
	}

	e.refused(http.StatusConflict, "already active", func() error { _, err := admin.EnableUser(ctx, "bob"); return err })
	e.refused(http.StatusConflict, "waiting for activation", func() error { _, err := admin.EnableUser(ctx, "newbie"); return err })
	e.refused(http.StatusNotFound, "does not exist", func() error { _, err := admin.EnableUser(ctx, "ghost"); return err })

	if _, err := admin.DisableUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	e.refused(http.StatusForbidden, "controller:manage-users", func() error { _, err := viewer.EnableUser(ctx, "bob"); return err })

	u, err := admin.EnableUser(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if u.State != store.UserActive {
		t.Fatalf("enabled bob is %s", u.State)
	}
	_, err = bob.ListDevices(ctx)
	wantStatus(t, err, http.StatusUnauthorized, "session ended")
	if _, err := e.login("bob").ListDevices(ctx); err != nil {
		t.Fatalf("bob logging in again after enable: %v", err)
	}
	a := e.lastAudit("user.enable")
	if a.Kind != store.AuditSecurity || a.Target != "bob" || a.ActorID != e.userID("admin") || !strings.Contains(a.After, "active") {
		t.Fatalf("audit entry of the enable: %+v", a)
	}
}

// TestResetPassword: an admin resets bob's password. Bob's sessions die at
// once, his old password stops working, the token the admin got activates
// him with a new one, once. Resets of oneself, of a disabled user, of a
// user with more rights than the caller, and by a user without
// controller:manage-users are refused and change nothing.
func TestResetPassword(t *testing.T) {
	e := newAccessEnv(t)
	ctx := context.Background()
	e.addUser("bob", store.UserActive)
	e.grant(access.UserSubject("bob"), access.RoleViewer, access.Global())
	e.addUser("mallory", store.UserActive) // manages users, holds nothing else
	e.customRole("user-manager", access.ControllerManageUsers)
	e.grant(access.UserSubject("mallory"), "user-manager", access.Global())
	e.addUser("plain", store.UserActive)
	e.addUser("off", store.UserActive)
	e.addUser("admin2", store.UserActive) // so that no-escalation, not last-admin, is what refuses mallory
	e.grant(access.UserSubject("admin2"), access.RoleAdmin, access.Global())
	admin, mallory, plain := e.login("admin"), e.login("mallory"), e.login("plain")
	if _, err := admin.DisableUser(ctx, "off"); err != nil {
		t.Fatal(err)
	}

	e.refused(http.StatusBadRequest, "edgewarden passwd", func() error { _, err := admin.ResetPassword(ctx, "admin", 0); return err })
	e.refused(http.StatusConflict, "enable it first", func() error { _, err := admin.ResetPassword(ctx, "off", 0); return err })
	e.refused(http.StatusNotFound, "does not exist", func() error { _, err := admin.ResetPassword(ctx, "ghost", 0); return err })
	e.refused(http.StatusBadRequest, "longer than the limit", func() error { _, err := admin.ResetPassword(ctx, "bob", 31*24*time.Hour); return err })
	e.refused(http.StatusForbidden, "controller:manage-users", func() error { _, err := plain.ResetPassword(ctx, "bob", 0); return err })
	// Mallory would read the admin's activation token and become the admin.
	e.refused(http.StatusForbidden, "may not disable, delete or take rights from admin", func() error {
		_, err := mallory.ResetPassword(ctx, "admin", 0)
		return err
	})

	bob := e.login("bob")
	tok, err := bob.IssueToken(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := admin.ResetPassword(ctx, "bob", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if inv.User != "bob" || !strings.HasPrefix(inv.Token, "ewa_") {
		t.Fatalf("reset answer %+v: want bob's activation token", inv)
	}
	_, err = bob.ListDevices(ctx)
	wantStatus(t, err, http.StatusUnauthorized)
	_, err = e.anon().Login(ctx, "bob", testPassword)
	wantStatus(t, err, http.StatusUnauthorized, "wrong user name or password")

	// The policy holds at activation; a refused activation keeps the token.
	_, err = e.anon().ActivateUser(ctx, inv.Token, "short")
	wantStatus(t, err, http.StatusBadRequest, "too short")
	const newPassword = "the river runs north at dawn"
	if _, err := e.anon().ActivateUser(ctx, inv.Token, newPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := e.as(e.session("bob", newPassword)).ListDevices(ctx); err != nil {
		t.Fatalf("bob with his new password: %v", err)
	}
	_, err = e.anon().ActivateUser(ctx, inv.Token, "another long password 2")
	wantStatus(t, err, http.StatusForbidden, "not valid")
	_, err = e.anon().Login(ctx, "bob", testPassword)
	wantStatus(t, err, http.StatusUnauthorized)

	// The operator token taken before the reset stays dead after it.
	if rec, err := e.db.GetToken(ctx, tok.ID); err != nil || !rec.Revoked() || rec.RevokedBy != "password reset" {
		t.Fatalf("bob's operator token after the reset: %+v, %v; want revoked by the reset", rec, err)
	}
	a := e.lastAudit("user.reset-password")
	if a.Kind != store.AuditSecurity || a.Target != "bob" || a.ActorID != e.userID("admin") || strings.Contains(a.Detail, inv.Token) {
		t.Fatalf("audit entry of the reset: %+v", a)
	}
}

// TestPasswd: carol changes her password. A wrong old password, a weak or
// unchanged new one are refused and change nothing; repeated wrong old
// passwords are throttled. On success every session of carol ends, a
// copy of the session that made the change included, and the answer is
// her new session.
func TestPasswd(t *testing.T) {
	e := newAccessEnv(t)
	ctx := context.Background()
	e.addUser("carol", store.UserActive)
	e.grant(access.UserSubject("carol"), access.RoleViewer, access.Global())
	tok := e.session("carol", testPassword)
	c, other := e.as(tok), e.login("carol")

	e.refused(http.StatusForbidden, "old password is wrong", func() error {
		_, err := c.ChangePassword(ctx, "not my password at all", "a brand new long password")
		return err
	})
	e.refused(http.StatusBadRequest, "too short", func() error { _, err := c.ChangePassword(ctx, testPassword, "short"); return err })
	e.refused(http.StatusBadRequest, "common passwords", func() error { _, err := c.ChangePassword(ctx, testPassword, "password123456"); return err })
	e.refused(http.StatusBadRequest, "the old one", func() error { _, err := c.ChangePassword(ctx, testPassword, testPassword); return err })
	e.refused(http.StatusBadRequest, "required", func() error { _, err := c.ChangePassword(ctx, "", "a brand new long password"); return err })

	const newPassword = "a brand new long password"
	resp, err := c.ChangePassword(ctx, testPassword, newPassword)
	if err != nil {
		t.Fatal(err)
	}
	for name, cl := range map[string]*client.Client{"the changing session": c, "a copy of it": e.as(tok), "another session": other} {
		_, err := cl.ListDevices(ctx)
		if !client.IsStatus(err, http.StatusUnauthorized) {
			t.Errorf("%s after passwd: %v, want 401", name, err)
		}
	}
	if _, err := e.as(resp.Token).ListDevices(ctx); err != nil {
		t.Fatalf("the renewed session: %v", err)
	}
	_, err = e.anon().Login(ctx, "carol", testPassword)
	wantStatus(t, err, http.StatusUnauthorized)
	e.session("carol", newPassword)
	a := e.lastAudit("user.password-change")
	if a.Kind != store.AuditSecurity || a.ActorID != e.userID("carol") || strings.Contains(a.Detail, newPassword) {
		t.Fatalf("audit entry of passwd: %+v", a)
	}

	// Guessing the old password through a stolen session is throttled like
	// logins are.
	s := e.as(resp.Token)
	before, _ := e.db.GetUser(ctx, "carol")
	throttled := false
	for range 8 {
		_, err := s.ChangePassword(ctx, "guess guess guess", "a third long password")
		if client.IsStatus(err, http.StatusTooManyRequests) {
			throttled = true
			break
		}
		wantStatus(t, err, http.StatusForbidden, "old password is wrong")
	}
	if !throttled {
		t.Fatal("8 wrong old passwords from one address were not throttled")
	}
	if after, _ := e.db.GetUser(ctx, "carol"); after.PasswordHash != before.PasswordHash || after.SessionGen != before.SessionGen {
		t.Fatal("wrong old passwords changed carol's password or sessions")
	}
}

// TestLogout: logging out ends that session on the controller, for anyone
// holding a copy of its token; the user's other sessions go on. Logging
// out with all=true ends them all.
func TestLogout(t *testing.T) {
	e := newAccessEnv(t)
	ctx := context.Background()
	e.addUser("dave", store.UserActive)
	e.grant(access.UserSubject("dave"), access.RoleViewer, access.Global())
	tok := e.session("dave", testPassword)
	mine, stolen := e.as(tok), e.as(tok)
	other, third := e.login("dave"), e.login("dave")
	if _, err := stolen.ListDevices(ctx); err != nil {
		t.Fatal(err)
	}

	if err := mine.Logout(ctx, false); err != nil {
		t.Fatal(err)
	}
	_, err := stolen.ListDevices(ctx)
	wantStatus(t, err, http.StatusUnauthorized, "logged out")
	_, err = mine.WhoAmI(ctx)
	wantStatus(t, err, http.StatusUnauthorized, "logged out")
	if err := mine.Logout(ctx, false); !client.IsStatus(err, http.StatusUnauthorized) {
		t.Fatalf("logging out twice: %v, want 401", err)
	}
	if _, err := other.ListDevices(ctx); err != nil {
		t.Fatalf("dave's other session after one logout: %v", err)
	}
	a := e.lastAudit("user.logout")
	if a.Actor != "dave" || a.ActorID != e.userID("dave") || a.Detail != "this session ended" {
		t.Fatalf("audit entry of the logout: %+v", a)
	}

	// A bad parameter changes nothing.
	status, _, body := rawRequest(t, e, "POST", "/api/v1/logout?all=maybe", e.session("dave", testPassword))
	if status != http.StatusBadRequest || !strings.Contains(body, "want true or false") {
		t.Fatalf("logout?all=maybe: %d %s", status, body)
	}
	if _, err := other.ListDevices(ctx); err != nil {
		t.Fatalf("after a refused logout: %v", err)
	}

	if err := other.Logout(ctx, true); err != nil {
		t.Fatal(err)
	}
	_, err = third.ListDevices(ctx)
	wantStatus(t, err, http.StatusUnauthorized, "session ended")
	if _, err := e.login("dave").ListDevices(ctx); err != nil {
		t.Fatalf("logging in after logout: %v", err)
	}
}

// TestWhoAmI: the session's user, its id, teams and the grants to it or
// its teams, and nobody else's.
func TestWhoAmI(t *testing.T) {
	e := newAccessEnv(t)
	ctx := context.Background()
	admin := e.login("admin")
	if _, err := admin.CreateGroup(ctx, "line-1", ""); err != nil {
		t.Fatal(err)
	}
	e.addUser("eve", store.UserActive)
	e.addUser("frank", store.UserActive)
	if _, err := admin.CreateTeam(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddTeamMembers(ctx, "ops", []string{"eve"}); err != nil {
		t.Fatal(err)
	}
	g1 := e.grant(access.TeamSubject("ops"), access.RoleViewer, access.Global())
	g2 := e.grant(access.UserSubject("eve"), access.RoleOperator, access.GroupScope("line-1"))
	e.grant(access.UserSubject("frank"), access.RoleOperator, access.GroupScope("line-1"))

	me, err := e.login("eve").WhoAmI(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, g := range me.Grants {
		ids = append(ids, g.ID)
	}
	slices.Sort(ids)
	want := []string{g1, g2}
	slices.Sort(want)
	if me.Name != "eve" || me.ID != e.userID("eve") || !slices.Equal(me.Teams, []string{"ops"}) || !slices.Equal(ids, want) || me.SessionExpiresAt.IsZero() {
		t.Fatalf("whoami: %+v, want eve, her id, team ops, grants %v", me, want)
	}
	none, err := e.login("frank").WhoAmI(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(none.Teams) != 0 || len(none.Grants) != 1 {
		t.Fatalf("frank's whoami: %+v", none)
	}
}

// rawRequest sends method path without a body, with token.
func rawRequest(t *testing.T, e *accessEnv, method, path, token string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.pool}}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestAuditEntriesCarryActorID: every audit entry a user's request wrote
// (changes, logins, failed and throttled logins, refusals, logouts) names
// the user's immutable id beside its name.
func TestAuditEntriesCarryActorID(t *testing.T) {
	e := newAccessEnv(t)
	ctx := context.Background()
	e.addUser("gina", store.UserActive)
	admin, gina := e.login("admin"), e.login("gina")
	if _, err := admin.CreateGroup(ctx, "line-1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := gina.CreateGroup(ctx, "mine", ""); err == nil { // refused: no grant
		t.Fatal("gina created a group without a grant")
	}
	for range 7 { // wrong passwords, then throttled
		_, _ = e.anon().Login(ctx, "gina", "not the password at all")
	}
	_, _ = e.anon().Login(ctx, "nobody-here", "not the password at all")
	if err := gina.Logout(ctx, false); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{"admin": e.userID("admin"), "gina": e.userID("gina")}
	es, err := e.db.ListAudit(ctx, store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range es {
		id, isUser := ids[a.Actor]
		if !isUser {
			continue
		}
		seen[a.Action] = true
		if a.ActorID != id {
			t.Errorf("audit entry %s by %s has actor id %q, want %q", a.Action, a.Actor, a.ActorID, id)
		}
	}
	for _, action := range []string{"user.login", "user.login-failed", "access.denied", "group.create", "user.logout"} {
		if !seen[action] {
			t.Errorf("no %s entry by a user: %v", action, seen)
		}
	}
	// The API shows the ids too, in the audit log and the user list.
	listed, err := admin.ListAudit(ctx, client.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(listed, func(a apiv1.AuditEntry) bool { return a.Action == "group.create" }); i < 0 || listed[i].ActorID != ids["admin"] {
		t.Errorf("audit ls does not show the actor id of group.create: %+v", listed)
	}
	us, err := admin.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range us {
		if u.ID != e.userID(u.Name) {
			t.Errorf("users ls: %s has id %q, want %q", u.Name, u.ID, e.userID(u.Name))
		}
	}
}
