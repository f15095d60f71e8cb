package api_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol/access"
)

// customRole stores a custom role with actions.
func (e *accessEnv) customRole(name string, actions ...access.Action) {
	e.t.Helper()
	if _, err := e.db.CreateRole(context.Background(), access.Role{Name: name, Actions: actions}); err != nil {
		e.t.Fatal(err)
	}
}

// TestLastAdminManageUsers: a user holding only controller:manage-users
// tries to disable and delete every admin; each attempt is refused and
// changes nothing. The admin cannot take away the last admin either.
func TestLastAdminManageUsers(t *testing.T) {
	e := newAccessEnv(t)
	ctx := context.Background()
	e.addUser("admin2", store.UserActive)
	e.grant(access.UserSubject("admin2"), access.RoleAdmin, access.Global())
	e.addUser("mallory", store.UserActive)
	e.customRole("user-manager", access.ControllerManageUsers)
	e.grant(access.UserSubject("mallory"), "user-manager", access.Global())
	e.addUser("plain", store.UserActive)

	m := e.login("mallory")
	for _, victim := range []string{"admin", "admin2"} {
		e.refused(http.StatusForbidden, "may not disable, delete or take rights from "+victim, func() error {
			_, err := m.DisableUser(ctx, victim)
			return err
		})
		e.refused(http.StatusForbidden, "may not disable, delete or take rights from "+victim, func() error {
			return m.DeleteUser(ctx, victim)
		})
	}
	// A user with no more rights than mallory can be disabled by her.
	if _, err := m.DisableUser(ctx, "plain"); err != nil {
		t.Fatalf("mallory disables a plain user: %v", err)
	}

	a := e.login("admin")
	if _, err := a.DisableUser(ctx, "admin2"); err != nil {
		t.Fatalf("an admin disables another while one remains: %v", err)
	}
	// admin is the last: its own admin grant cannot go.
	e.refused(http.StatusConflict, "no active user who can administer", func() error {
		return a.DeleteGrant(ctx, "g-admin")
	})
}

// TestLastAdminManageRoles: a user holding controller:manage-roles tries
// to delete every admin grant and to strip the role an admin holds.
func TestLastAdminManageRoles(t *testing.T) {
	e := newAccessEnv(t)
	ctx := context.Background()
	e.addUser("root2", store.UserActive)
	var all []access.Action
	for _, a := range access.Actions() {
		all = append(all, a.Name)
	}
	e.customRole("everything", all...)
	e.grant(access.UserSubject("root2"), "everything", access.Global())
	e.addUser("mallory", store.UserActive)
	e.customRole("role-manager", access.ControllerManageRoles)
	e.grant(access.UserSubject("mallory"), "role-manager", access.Global())

	m := e.login("mallory")
	e.refused(http.StatusForbidden, "may not disable, delete or take rights from admin", func() error {
		return m.DeleteGrant(ctx, "g-admin")
	})
	for _, g := range e.state().Grants {
		if g.Subject.Name == "root2" {
			e.refused(http.StatusForbidden, "take rights from root2", func() error {
				return m.DeleteGrant(ctx, g.ID)
			})
		}
	}
	// Narrowing the custom role root2 holds to what mallory holds passes
	// the granting check, and is refused by the taking-away rule.
	e.refused(http.StatusForbidden, "take rights from root2", func() error {
		_, err := m.UpdateRole(ctx, "everything", apiv1.RoleRequest{Actions: []string{string(access.ControllerManageRoles)}})
		return err
	})
	// The built-in admin role cannot be edited at all.
	e.refused(http.StatusForbidden, "built in", func() error {
		_, err := m.UpdateRole(ctx, access.RoleAdmin, apiv1.RoleRequest{Actions: []string{string(access.ControllerAudit)}})
		return err
	})

	// Once root2 is the only administrator, not even root2 may narrow the
	// role it administers through.
	r := e.login("root2")
	if err := r.DeleteGrant(ctx, "g-admin"); err != nil {
		t.Fatalf("root2 takes admin's grant (root2 holds every right admin has): %v", err)
	}
	e.refused(http.StatusConflict, "no active user who can administer", func() error {
		_, err := r.UpdateRole(ctx, "everything", apiv1.RoleRequest{Actions: []string{string(access.ControllerAudit)}})
		return err
	})
}

// TestLastAdminThroughTeam: the last admin holds its rights through a
// team; deleting the team, removing the member, deleting the team's grant
// or deleting the user is refused.
func TestLastAdminThroughTeam(t *testing.T) {
	e := newAccessEnv(t)
	ctx := context.Background()
	e.addUser("ops", store.UserActive)
	if _, err := e.db.CreateTeam(ctx, "admins"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.AddTeamMembers(ctx, "admins", []string{"ops"}); err != nil {
		t.Fatal(err)
	}
	teamGrant := e.grant(access.TeamSubject("admins"), access.RoleAdmin, access.Global())
	o := e.login("ops")
	if err := o.DeleteGrant(ctx, "g-admin"); err != nil {
		t.Fatalf("ops removes admin's grant while ops administers through the team: %v", err)
	}
	const want = "no active user who can administer"
	e.refused(http.StatusConflict, want, func() error { return o.DeleteTeam(ctx, "admins") })
	e.refused(http.StatusConflict, want, func() error {
		_, err := o.RemoveTeamMembers(ctx, "admins", []string{"ops"})
		return err
	})
	e.refused(http.StatusConflict, want, func() error { return o.DeleteGrant(ctx, teamGrant) })
	// ops is the last admin: not even ops may delete itself, by any path.
	e.refused(http.StatusConflict, want, func() error {
		_, err := e.db.Change(ctx, store.AuditEntry{Actor: "ops", Action: "user.delete", Kind: store.AuditChange}, func(ctx context.Context, c *store.Change) error {
			return e.db.DeleteUser(ctx, "ops")
		})
		return asClientError(err)
	})
}

// TestLastAdminStoreLevel: the rule holds for any change made through the
// executor, not only the API's endpoints.
func TestLastAdminStoreLevel(t *testing.T) {
	e := newAccessEnv(t)
	ctx := context.Background()
	before := e.state()
	_, err := e.db.Change(ctx, store.AuditEntry{Actor: "admin", Action: "user.disable", Kind: store.AuditChange}, func(ctx context.Context, c *store.Change) error {
		_, err := e.db.SetUserState(ctx, "admin", store.UserDisabled)
		return err
	})
	if err == nil || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("disabling the last admin through the executor: %v, want a conflict", err)
	}
	if after := e.state(); len(after.Users) != len(before.Users) || after.Users[0].State != store.UserActive {
		t.Fatalf("state changed: %+v", after.Users)
	}
	var re *store.RuleError
	if !errors.As(err, &re) || re.Rule != "last-admin" {
		t.Fatalf("error %v is not the last-admin rule", err)
	}
}

// asClientError maps a store error to the API's status, for refused():
// store-level changes get the same treatment as API calls.
func asClientError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrConflict):
		return &client.Error{Status: http.StatusConflict, Message: err.Error()}
	case errors.Is(err, store.ErrForbidden):
		return &client.Error{Status: http.StatusForbidden, Message: err.Error()}
	}
	return err
}
