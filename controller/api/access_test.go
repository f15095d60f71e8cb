package api_test

import (
	"context"
	"crypto/x509"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/controller/api/apitest"
	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/auth"
	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol/access"
)

// accessEnv is the API test server (apitest, on the real SQLite store),
// with helpers to make users and log them in.
type accessEnv struct {
	t       *testing.T
	srv     *apitest.Server
	db      *store.DB
	url     string
	pool    *x509.CertPool
	changes *atomic.Int64
}

func newAccessEnv(t *testing.T) *accessEnv {
	t.Helper()
	// The admin shares every other user's password here.
	s := apitest.Start(t, apitest.Options{AdminPassword: testPassword})
	return &accessEnv{t: t, srv: s, db: s.SQLite(t), url: s.URL, pool: s.ServerPool(), changes: &s.Changes}
}

const testPassword = "a long password 1"

func (e *accessEnv) addUser(name, state string) {
	e.t.Helper()
	hash, err := auth.HashPassword(testPassword)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.db.CreateUser(context.Background(), store.User{Name: name, PasswordHash: hash, State: state}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *accessEnv) anon() *client.Client {
	c, err := client.New(client.Options{BaseURL: e.url, CAPool: e.pool})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *accessEnv) login(name string) *client.Client {
	e.t.Helper()
	resp, err := e.anon().Login(context.Background(), name, testPassword)
	if err != nil {
		e.t.Fatalf("login %s: %v", name, err)
	}
	c, _ := client.New(client.Options{BaseURL: e.url, CAPool: e.pool, Token: resp.Token})
	return c
}

func (e *accessEnv) grant(subject access.Subject, role string, scope access.Scope) string {
	e.t.Helper()
	g, err := e.db.CreateGrant(context.Background(), store.Grant{Grant: access.Grant{Subject: subject, Role: role, Scope: scope}, CreatedBy: "admin"})
	if err != nil {
		e.t.Fatal(err)
	}
	return g.ID
}

// accessState is what a refused call must leave unchanged.
type accessState struct {
	Users  []store.User
	Teams  []store.Team
	Roles  []store.Role
	Grants []store.Grant
	Tokens []store.OperatorToken
}

func (e *accessEnv) state() accessState {
	e.t.Helper()
	ctx := context.Background()
	var s accessState
	var err error
	if s.Users, err = e.db.ListUsers(ctx); err != nil {
		e.t.Fatal(err)
	}
	s.Teams, _ = e.db.ListTeams(ctx)
	s.Roles, _ = e.db.ListRoles(ctx)
	s.Grants, _ = e.db.ListGrants(ctx)
	s.Tokens, _ = e.db.ListTokens(ctx, "")
	return s
}

// refused checks that fn fails with status and a message containing want,
// and that nothing in the access store changed.
func (e *accessEnv) refused(status int, want string, fn func() error) {
	e.t.Helper()
	before := e.state()
	err := fn()
	if !client.IsStatus(err, status) || !strings.Contains(err.Error(), want) {
		e.t.Fatalf("got %v, want status %d mentioning %q", err, status, want)
	}
	if after := e.state(); !reflect.DeepEqual(before, after) {
		e.t.Fatalf("store changed after a refused call (%v)", err)
	}
}

func TestAccessAttacks(t *testing.T) {
	ctx := context.Background()
	e := newAccessEnv(t)
	admin := e.login("admin")
	for _, g := range []string{"line-1", "line-2"} {
		if _, err := admin.CreateGroup(ctx, g, ""); err != nil {
			t.Fatal(err)
		}
	}
	e.addUser("alice", store.UserActive) // plant admin of line-1 with share
	e.addUser("bob", store.UserActive)
	e.addUser("mgr", store.UserActive) // manages roles, holds little
	e.grant(access.UserSubject("alice"), access.RolePlantAdmin, access.GroupScope("line-1"))
	e.grant(access.UserSubject("mgr"), "viewer", access.Global())
	if _, err := admin.CreateRole(ctx, apiv1.RoleRequest{Name: "role-admin", Actions: []string{"controller:manage-roles"}}); err != nil {
		t.Fatal(err)
	}
	e.grant(access.UserSubject("mgr"), "role-admin", access.Global())
	if _, err := admin.CreateRole(ctx, apiv1.RoleRequest{Name: "fixer", Actions: []string{"device:view", "device:manage"}}); err != nil {
		t.Fatal(err)
	}
	alice, bob, mgr := e.login("alice"), e.login("bob"), e.login("mgr")

	t.Run("role with an unknown action", func(t *testing.T) {
		e.refused(http.StatusBadRequest, "device:fly", func() error {
			_, err := admin.CreateRole(ctx, apiv1.RoleRequest{Name: "x", Actions: []string{"device:view", "device:fly"}})
			return err
		})
	})
	t.Run("built-in roles are immutable", func(t *testing.T) {
		e.refused(http.StatusForbidden, "built in", func() error {
			_, err := admin.UpdateRole(ctx, "viewer", apiv1.RoleRequest{Actions: []string{"device:manage"}})
			return err
		})
		e.refused(http.StatusForbidden, "built in", func() error { return admin.DeleteRole(ctx, "admin") })
	})
	t.Run("escalation by creating a role", func(t *testing.T) {
		e.refused(http.StatusForbidden, "controller:trust", func() error {
			_, err := mgr.CreateRole(ctx, apiv1.RoleRequest{Name: "trusty", Actions: []string{"device:view", "controller:trust"}})
			return err
		})
		if _, err := mgr.CreateRole(ctx, apiv1.RoleRequest{Name: "looker", Actions: []string{"device:view"}}); err != nil {
			t.Fatalf("within one's rights: %v", err)
		}
	})
	t.Run("escalation by a grant", func(t *testing.T) {
		e.refused(http.StatusForbidden, "device:manage", func() error {
			_, err := mgr.CreateGrant(ctx, apiv1.CreateGrantRequest{Role: "fixer", User: "bob", Group: "line-1"})
			return err
		})
	})
	t.Run("grant without manage-roles", func(t *testing.T) {
		e.refused(http.StatusForbidden, "controller:manage-roles", func() error {
			_, err := alice.CreateGrant(ctx, apiv1.CreateGrantRequest{Role: "viewer", User: "bob", Group: "line-1"})
			return err
		})
	})
	t.Run("own grants without manage-roles", func(t *testing.T) {
		e.refused(http.StatusForbidden, "own grants", func() error {
			_, err := alice.CreateGrant(ctx, apiv1.CreateGrantRequest{Role: "admin", User: "alice"})
			return err
		})
		e.refused(http.StatusForbidden, "themselves", func() error {
			_, err := alice.Share(ctx, apiv1.ShareRequest{Group: "line-1", Role: "viewer", User: "alice"})
			return err
		})
	})
	t.Run("grant on a missing scope", func(t *testing.T) {
		for _, req := range []apiv1.CreateGrantRequest{
			{Role: "viewer", User: "bob", Group: "line-9"},
			{Role: "viewer", User: "bob", Device: "dev-9"},
			{Role: "viewer", User: "bob", App: "hmi"},
			{Role: "viewer", User: "nobody"},
			{Role: "ghost", User: "bob"},
		} {
			e.refused(http.StatusNotFound, "does not exist", func() error { _, err := admin.CreateGrant(ctx, req); return err })
		}
		e.refused(http.StatusBadRequest, "at most one", func() error {
			_, err := admin.CreateGrant(ctx, apiv1.CreateGrantRequest{Role: "viewer", User: "bob", Group: "line-1", Device: "d"})
			return err
		})
	})
	t.Run("share a non-template role", func(t *testing.T) {
		e.refused(http.StatusForbidden, "not a template", func() error {
			_, err := alice.Share(ctx, apiv1.ShareRequest{Group: "line-1", Role: access.RolePlantAdmin, User: "bob"})
			return err
		})
	})
	t.Run("share on another group", func(t *testing.T) {
		e.refused(http.StatusForbidden, "device-group:share", func() error {
			_, err := alice.Share(ctx, apiv1.ShareRequest{Group: "line-2", Role: "viewer", User: "bob"})
			return err
		})
	})
	t.Run("share beyond one's rights", func(t *testing.T) {
		if _, err := admin.CreateRole(ctx, apiv1.RoleRequest{Name: "side", Actions: []string{"device:view", "device:sideload"}, Shareable: true}); err != nil {
			t.Fatal(err)
		}
		e.refused(http.StatusForbidden, "device:sideload", func() error {
			_, err := alice.Share(ctx, apiv1.ShareRequest{Group: "line-1", Role: "side", User: "bob"})
			return err
		})
	})
	t.Run("share within one's rights", func(t *testing.T) {
		g, err := alice.Share(ctx, apiv1.ShareRequest{Group: "line-1", Role: "operator", User: "bob"})
		if err != nil {
			t.Fatal(err)
		}
		d, err := admin.CheckAccess(ctx, apiv1.AccessCheckRequest{User: "bob", Action: "device-group:view", Group: "line-1"})
		if err != nil || !d.Allowed || d.Chain[0].Name != g.ID {
			t.Fatalf("after the share: %+v %v", d, err)
		}
		// alice can see and undo her share, not others' grants.
		gs, _ := alice.ListGrants(ctx)
		if !slices.ContainsFunc(gs, func(x apiv1.Grant) bool { return x.ID == g.ID }) {
			t.Fatalf("alice does not see her share: %+v", gs)
		}
		if err := alice.DeleteGrant(ctx, g.ID); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("disabled user gets no token and no session", func(t *testing.T) {
		if _, err := bob.IssueToken(ctx, time.Hour); err != nil {
			t.Fatalf("active bob: %v", err)
		}
		if _, err := admin.DisableUser(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
		e.refused(http.StatusUnauthorized, "disabled", func() error { _, err := bob.IssueToken(ctx, time.Hour); return err })
	})
	t.Run("the admin cannot lock themselves out", func(t *testing.T) {
		e.refused(http.StatusBadRequest, "yourself", func() error { _, err := admin.DisableUser(ctx, "admin"); return err })
		e.refused(http.StatusBadRequest, "yourself", func() error { return admin.DeleteUser(ctx, "admin") })
	})
}

func TestAccessTeamsAndListing(t *testing.T) {
	ctx := context.Background()
	e := newAccessEnv(t)
	admin := e.login("admin")
	for _, g := range []string{"line-1", "line-2", "plant"} {
		if _, err := admin.CreateGroup(ctx, g, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.IncludeGroup(ctx, "plant", "line-1"); err != nil {
		t.Fatal(err)
	}
	e.addUser("umgr", store.UserActive)
	e.addUser("carol", store.UserActive)
	if _, err := admin.CreateRole(ctx, apiv1.RoleRequest{Name: "user-admin", Actions: []string{"controller:manage-users"}}); err != nil {
		t.Fatal(err)
	}
	e.grant(access.UserSubject("umgr"), "user-admin", access.Global())
	umgr, carol := e.login("umgr"), e.login("carol")

	// Nothing listed without grants.
	if gs, err := carol.ListGroups(ctx); err != nil || len(gs) != 0 {
		t.Fatalf("carol sees groups %v (%v)", gs, err)
	}
	// Through a team: viewer on plant reaches line-1 (included), not line-2.
	if _, err := admin.CreateTeam(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	e.grant(access.TeamSubject("ops"), "viewer", access.GroupScope("plant"))
	if _, err := umgr.AddTeamMembers(ctx, "ops", []string{"carol"}); err == nil {
		t.Fatal("umgr handed out the team's viewer grant without manage-roles")
	}
	if _, err := admin.AddTeamMembers(ctx, "ops", []string{"carol"}); err != nil {
		t.Fatal(err)
	}
	gs, err := carol.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range gs {
		names = append(names, g.Name)
	}
	if !slices.Equal(names, []string{"line-1", "plant"}) {
		t.Fatalf("carol sees %v, want [line-1 plant]", names)
	}
	d, err := admin.CheckAccess(ctx, apiv1.AccessCheckRequest{User: "carol", Action: "device-group:view", Group: "line-1"})
	if err != nil || !d.Allowed || !strings.Contains(d.Explanation, "to team ops") || !strings.Contains(d.Explanation, "scope device-group plant") {
		t.Fatalf("explain = %+v %v", d, err)
	}
	// Others' decisions are private without manage-roles or audit.
	if _, err := carol.CheckAccess(ctx, apiv1.AccessCheckRequest{User: "admin", Action: "device:view"}); !client.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("carol checked the admin: %v", err)
	}

	// A non-admin allowed to create groups becomes the group's owner.
	if _, err := admin.CreateRole(ctx, apiv1.RoleRequest{Name: "grouper", Actions: []string{"controller:create-device-group"}}); err != nil {
		t.Fatal(err)
	}
	e.grant(access.UserSubject("carol"), "grouper", access.Global())
	if _, err := carol.CreateGroup(ctx, "carols", ""); err != nil {
		t.Fatal(err)
	}
	d, err = admin.CheckAccess(ctx, apiv1.AccessCheckRequest{User: "carol", Action: "device-group:share", Group: "carols"})
	if err != nil || !d.Allowed || d.Chain[2].Name != access.RoleGroupOwner {
		t.Fatalf("carol on her group: %+v %v", d, err)
	}
	if d, _ := admin.CheckAccess(ctx, apiv1.AccessCheckRequest{User: "carol", Action: "device-group:delete", Group: "carols"}); !d.Allowed {
		t.Fatal("the owner template does not let the owner delete (or rename) her group")
	}
	if d, _ := admin.CheckAccess(ctx, apiv1.AccessCheckRequest{User: "carol", Action: "device:view", Group: "carols"}); d.Allowed {
		t.Fatal("the owner template gives rights on the group's devices")
	}
	// The admin creating a group gets no extra grant.
	before, _ := e.db.ListGrants(ctx)
	if _, err := admin.CreateGroup(ctx, "admins-group", ""); err != nil {
		t.Fatal(err)
	}
	if after, _ := e.db.ListGrants(ctx); len(after) != len(before) {
		t.Fatalf("admin got an owner grant: %d → %d grants", len(before), len(after))
	}
	// carol may not include line-2 (no share there) into her group.
	if _, err := carol.IncludeGroup(ctx, "carols", "line-2"); !client.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("include without share on the child: %v", err)
	}
}

func TestInviteActivateAPI(t *testing.T) {
	ctx := context.Background()
	e := newAccessEnv(t)
	admin := e.login("admin")
	inv, err := admin.InviteUser(ctx, apiv1.InviteRequest{Name: "dave"})
	if err != nil {
		t.Fatal(err)
	}
	// Invited: cannot log in.
	if _, err := e.anon().Login(ctx, "dave", testPassword); err == nil {
		t.Fatal("invited user logged in")
	}
	e.refused(http.StatusForbidden, "not valid", func() error { _, err := e.anon().ActivateUser(ctx, "ewa_wrong", testPassword); return err })
	e.refused(http.StatusBadRequest, "too short", func() error { _, err := e.anon().ActivateUser(ctx, inv.Token, "short"); return err })
	if _, err := e.anon().ActivateUser(ctx, inv.Token, testPassword); err != nil {
		t.Fatal(err)
	}
	dave := e.login("dave")
	if ds, err := dave.ListDevices(ctx); err != nil || len(ds) != 0 {
		t.Fatalf("dave: %v %v", ds, err)
	}
	e.refused(http.StatusBadRequest, "Bad", func() error { _, err := admin.InviteUser(ctx, apiv1.InviteRequest{Name: "Bad Name"}); return err })
	// Every change is audited with its source.
	es, err := admin.ListAudit(ctx, client.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var acts []string
	for _, x := range es {
		acts = append(acts, x.Actor+" "+x.Action)
		if x.Source == "" {
			t.Errorf("audit entry without source: %+v", x)
		}
	}
	for _, want := range []string{"admin user.invite", "dave user.activate", "anonymous user.activate-failed"} {
		if !slices.Contains(acts, want) {
			t.Errorf("audit lacks %q: %v", want, acts)
		}
	}
}
