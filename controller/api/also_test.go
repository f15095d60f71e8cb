package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/edgewarden/edgewarden/controller/api"
	"github.com/edgewarden/edgewarden/controller/api/apitest"
	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/edgewarden/edgewarden/controller/store"
)

// alsoCase is one route that declares Also: setup builds the world and
// gives the user "partial" the route's own Action on the resource the call
// names, and nothing of what Also asks; call is the request partial makes;
// also gives partial what Also asks, after which call must succeed (so the
// refusal was Also's, not the route's own check).
type alsoCase struct {
	setup func(t *testing.T, s *apitest.Server, adm *client.Client)
	call  func(c *client.Client) error
	also  func(t *testing.T, adm *client.Client)
}

// role makes a custom role of actions and grants it to partial on the
// scope req names (Group, App, or global when neither).
func role(t *testing.T, adm *client.Client, name string, req apiv1.CreateGrantRequest, actions ...string) {
	t.Helper()
	if _, err := adm.CreateRole(ctx, apiv1.RoleRequest{Name: name, Actions: actions}); err != nil {
		t.Fatal(err)
	}
	req.Role, req.User = name, "partial"
	if _, err := adm.CreateGrant(ctx, req); err != nil {
		t.Fatal(err)
	}
}

func mustDo[T any](t *testing.T) func(T, error) {
	return func(_ T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// twoGroupsAndADevice: groups g1 and g2, device d1 (label line=1) in
// neither.
func twoGroupsAndADevice(t *testing.T, s *apitest.Server, adm *client.Client) {
	t.Helper()
	mustDo[*apiv1.Group](t)(adm.CreateGroup(ctx, "g1", ""))
	mustDo[*apiv1.Group](t)(adm.CreateGroup(ctx, "g2", ""))
	enroll(t, s, adm, "d1")
	mustDo[*apiv1.Device](t)(adm.SetDeviceLabels(ctx, "d1", map[string]string{"line": "1"}))
}

var alsoCases = map[string]alsoCase{
	"POST /api/v1/groups": {
		setup: func(t *testing.T, s *apitest.Server, adm *client.Client) {
			twoGroupsAndADevice(t, s, adm)
			role(t, adm, "group-maker", apiv1.CreateGrantRequest{}, "controller:create-device-group")
		},
		call: func(c *client.Client) error { _, err := c.CreateGroup(ctx, "line-1", "line=1"); return err },
		also: func(t *testing.T, adm *client.Client) {
			role(t, adm, "d1-manager", apiv1.CreateGrantRequest{Device: "d1"}, "device:manage")
		},
	},
	"DELETE /api/v1/groups/{name}": {
		setup: func(t *testing.T, s *apitest.Server, adm *client.Client) {
			twoGroupsAndADevice(t, s, adm)
			mustDo[*apiv1.Group](t)(adm.IncludeGroup(ctx, "g1", "g2"))
			role(t, adm, "g2-deleter", apiv1.CreateGrantRequest{Group: "g2"}, "device-group:delete")
		},
		call: func(c *client.Client) error { return c.DeleteGroup(ctx, "g2", true) },
		also: func(t *testing.T, adm *client.Client) {
			role(t, adm, "g1-members", apiv1.CreateGrantRequest{Group: "g1"}, "device-group:manage-members")
		},
	},
	"POST /api/v1/groups/{name}/rename": {
		setup: func(t *testing.T, s *apitest.Server, adm *client.Client) {
			twoGroupsAndADevice(t, s, adm)
			// A token still assigns the name "held" after its group went.
			mustDo[*apiv1.Group](t)(adm.CreateGroup(ctx, "held", ""))
			mustDo[*apiv1.EnrollToken](t)(adm.CreateEnrollToken(ctx, apiv1.CreateEnrollTokenRequest{Groups: []string{"held"}}))
			if err := adm.DeleteGroup(ctx, "held", false); err != nil {
				t.Fatal(err)
			}
			role(t, adm, "g1-renamer", apiv1.CreateGrantRequest{Group: "g1"}, "device-group:delete")
		},
		call: func(c *client.Client) error { _, err := c.RenameGroup(ctx, "g1", "held"); return err },
		also: func(t *testing.T, adm *client.Client) {
			role(t, adm, "enroller", apiv1.CreateGrantRequest{}, "controller:enroll")
		},
	},
	"PUT /api/v1/groups/{name}/selector": {
		setup: func(t *testing.T, s *apitest.Server, adm *client.Client) {
			twoGroupsAndADevice(t, s, adm)
			role(t, adm, "g1-members", apiv1.CreateGrantRequest{Group: "g1"}, "device-group:manage-members")
		},
		call: func(c *client.Client) error { _, err := c.SetGroupSelector(ctx, "g1", "line=1", false); return err },
		also: func(t *testing.T, adm *client.Client) {
			role(t, adm, "d1-manager", apiv1.CreateGrantRequest{Device: "d1"}, "device:manage")
		},
	},
	"POST /api/v1/groups/{name}/devices": {
		setup: func(t *testing.T, s *apitest.Server, adm *client.Client) {
			twoGroupsAndADevice(t, s, adm)
			role(t, adm, "g1-members", apiv1.CreateGrantRequest{Group: "g1"}, "device-group:manage-members")
		},
		call: func(c *client.Client) error { _, err := c.AddGroupDevices(ctx, "g1", []string{"d1"}); return err },
		also: func(t *testing.T, adm *client.Client) {
			role(t, adm, "d1-manager", apiv1.CreateGrantRequest{Device: "d1"}, "device:manage")
		},
	},
	"POST /api/v1/groups/{name}/includes": {
		setup: func(t *testing.T, s *apitest.Server, adm *client.Client) {
			twoGroupsAndADevice(t, s, adm)
			role(t, adm, "g1-members", apiv1.CreateGrantRequest{Group: "g1"}, "device-group:manage-members")
		},
		call: func(c *client.Client) error { _, err := c.IncludeGroup(ctx, "g1", "g2"); return err },
		also: func(t *testing.T, adm *client.Client) {
			role(t, adm, "g2-sharer", apiv1.CreateGrantRequest{Group: "g2"}, "device-group:share")
		},
	},
	"POST /api/v1/apps/{name}/assignments": {
		setup: func(t *testing.T, s *apitest.Server, adm *client.Client) {
			twoGroupsAndADevice(t, s, adm)
			acme := newSigner(t)
			mustDo[*apiv1.Publisher](t)(adm.AddPublisherKey(ctx, "acme", acme.pub))
			arts := []testArtifact{{"run.sh", []byte("x")}}
			raw := makeManifest(t, "web", "1.0.0", "acme", arts...)
			mustDo[*apiv1.AppVersion](t)(push(ctx, adm, raw, acme.sign(raw), arts...))
			role(t, adm, "web-deployer", apiv1.CreateGrantRequest{App: "web"}, "app:deploy", "app:view")
		},
		call: func(c *client.Client) error {
			_, err := c.AssignApp(ctx, "web", apiv1.AssignRequest{Version: "1.0.0", Group: "g1", Force: true})
			return err
		},
		also: func(t *testing.T, adm *client.Client) {
			role(t, adm, "g1-installer", apiv1.CreateGrantRequest{Group: "g1"}, "device:app-install")
		},
	},
	"POST /api/v1/teams/{name}/members": {
		setup: func(t *testing.T, s *apitest.Server, adm *client.Client) {
			s.AddUser(t, "bob", "bob-password-1", store.UserActive)
			mustDo[*apiv1.Team](t)(adm.CreateTeam(ctx, "ops"))
			mustDo[*apiv1.Grant](t)(adm.CreateGrant(ctx, apiv1.CreateGrantRequest{Role: "admin", Team: "ops"}))
			role(t, adm, "user-manager", apiv1.CreateGrantRequest{}, "controller:manage-users")
		},
		call: func(c *client.Client) error { _, err := c.AddTeamMembers(ctx, "ops", []string{"bob"}); return err },
		also: func(t *testing.T, adm *client.Client) {
			mustDo[*apiv1.Grant](t)(adm.CreateGrant(ctx, apiv1.CreateGrantRequest{Role: "admin", User: "partial"}))
		},
	},
	"POST /api/v1/roles": {
		setup: func(t *testing.T, s *apitest.Server, adm *client.Client) {
			role(t, adm, "role-manager", apiv1.CreateGrantRequest{}, "controller:manage-roles")
		},
		call: func(c *client.Client) error {
			_, err := c.CreateRole(ctx, apiv1.RoleRequest{Name: "wide", Actions: []string{"device:manage"}})
			return err
		},
		also: func(t *testing.T, adm *client.Client) {
			role(t, adm, "manager", apiv1.CreateGrantRequest{}, "device:manage")
		},
	},
	"PUT /api/v1/roles/{name}": {
		setup: func(t *testing.T, s *apitest.Server, adm *client.Client) {
			mustDo[*apiv1.Role](t)(adm.CreateRole(ctx, apiv1.RoleRequest{Name: "narrow", Actions: []string{"device:view"}}))
			role(t, adm, "role-manager", apiv1.CreateGrantRequest{}, "controller:manage-roles", "device:view")
		},
		call: func(c *client.Client) error {
			_, err := c.UpdateRole(ctx, "narrow", apiv1.RoleRequest{Actions: []string{"device:view", "device:manage"}})
			return err
		},
		also: func(t *testing.T, adm *client.Client) {
			role(t, adm, "manager", apiv1.CreateGrantRequest{}, "device:manage")
		},
	},
}

// TestAlsoChecked: for every route that declares Also, a user who holds
// the route's own Action but not what Also asks is refused with 403 and
// nothing changes (no change committed, every listing as before); given
// what Also asks, the same request succeeds. A route that gains an Also
// fails here until it has a case.
func TestAlsoChecked(t *testing.T) {
	declared := 0
	for _, rt := range api.Routes() {
		if len(rt.Also) == 0 {
			continue
		}
		declared++
		tc, ok := alsoCases[rt.Pattern()]
		if !ok {
			t.Errorf("%s declares Also %v but has no case in alsoCases (also_test.go): add one", rt.Pattern(), rt.Also)
			continue
		}
		t.Run(rt.Pattern(), func(t *testing.T) {
			s := apitest.NewServer(t, nil)
			adm := admin(t, s)
			s.AddUser(t, "partial", "partial-password", store.UserActive)
			tc.setup(t, s, adm)
			c := loginAs(t, s, "partial", "partial-password")

			before := visibleState(t, s, adm)
			err := tc.call(c)
			if !client.IsStatus(err, http.StatusForbidden) {
				t.Fatalf("with %s but not %v: %v, want 403", rt.Action, rt.Also, err)
			}
			if after := visibleState(t, s, adm); after != before {
				t.Fatalf("a refused request changed the controller:\nbefore %s\nafter  %s", before, after)
			}

			tc.also(t, adm)
			if err := tc.call(c); err != nil {
				t.Fatalf("with %s and what Also asks: %v, want success", rt.Action, err)
			}
		})
	}
	if declared != len(alsoCases) {
		t.Errorf("%d routes declare Also, alsoCases has %d cases: remove the cases of routes that no longer do", declared, len(alsoCases))
	}
}

// visibleState is what a refused request must leave alone: the change sequence
// and what the admin sees of groups, devices, apps, teams, roles and
// grants.
func visibleState(t *testing.T, s *apitest.Server, adm *client.Client) string {
	t.Helper()
	var parts []any
	add := func(v any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, v)
	}
	add(s.Store.ChangeSeq(ctx))
	add(adm.ListGroups(ctx))
	add(adm.ListDevices(ctx))
	add(adm.ListApps(ctx))
	add(adm.ListTeams(ctx))
	add(adm.ListRoles(ctx))
	add(adm.ListGrants(ctx))
	b, err := json.Marshal(parts)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
