package access

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func roleNamed(t *testing.T, in Input, name string) Role {
	t.Helper()
	for _, r := range in.Roles {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no role %s", name)
	return Role{}
}

func TestCanShare(t *testing.T) {
	in := testInput()
	e := mustCompile(t, in)
	tests := []struct {
		name   string
		sharer string
		role   string
		group  Resource
		target Subject
		want   error // nil: allowed
		msg    string
	}{
		{"owner shares a template within their rights", "alice", RoleOperator, testHier.Group("line-1"), UserSubject("bob"), nil, ""},
		{"owner shares on an included group", "alice", RoleViewer, testHier.Group("cell-3"), TeamSubject("night-shift"), nil, ""},
		{"owner re-shares the owner template", "alice", RoleGroupOwner, testHier.Group("line-1"), UserSubject("dave"), nil, ""},
		{"share on another group", "alice", RoleOperator, testHier.Group("line-2"), UserSubject("bob"), ErrForbidden, "needs device-group:share"},
		{"share on the parent group", "alice", RoleViewer, testHier.Group("plant"), UserSubject("bob"), ErrForbidden, "device-group:share"},
		{"share of a non-template", "alice", "installer", testHier.Group("line-1"), UserSubject("bob"), ErrForbidden, "role installer is not a template"},
		{"share of admin", "alice", RoleAdmin, testHier.Group("line-1"), UserSubject("bob"), ErrForbidden, "not a template"},
		{"share beyond own rights", "alice", "super-op", testHier.Group("line-1"), UserSubject("bob"), ErrEscalation, "device:sideload"},
		{"no grant at all", "mallory", RoleViewer, testHier.Group("line-1"), UserSubject("mallory"), ErrForbidden, "no grant gives device-group:share"},
		{"disabled sharer", "carol", RoleViewer, testHier.Group("line-1"), UserSubject("bob"), ErrForbidden, "disabled"},
		{"disabled target", "alice", RoleViewer, testHier.Group("line-1"), UserSubject("carol"), ErrInvalid, "not an active user"},
		{"unknown target", "alice", RoleViewer, testHier.Group("line-1"), UserSubject("zed"), ErrInvalid, "not an active user"},
		{"bad target", "alice", RoleViewer, testHier.Group("line-1"), Subject{Kind: "robot", Name: "r"}, ErrInvalid, "subject kind"},
		{"share on a device", "alice", RoleViewer, d7, UserSubject("bob"), ErrInvalid, "on a device group"},
		{"plant-admin shares operator on its group", "bob", RoleOperator, testHier.Group("line-2"), UserSubject("dave"), nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CanShare(e, tt.sharer, roleNamed(t, in, tt.role), tt.group, tt.target)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("CanShare: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("CanShare = %v, want %v containing %q", err, tt.want, tt.msg)
			}
		})
	}
	if err := CanShare(nil, "alice", roleNamed(t, in, RoleViewer), testHier.Group("line-1"), TeamSubject("ops")); !errors.Is(err, ErrForbidden) {
		t.Errorf("nil evaluator: %v", err)
	}
}

// The share check and the evaluator agree: after a successful share, the
// target holds exactly what the sharer could give, and no more.
func TestShareGivesOnlyTheTemplate(t *testing.T) {
	in := testInput()
	e := mustCompile(t, in)
	line1 := testHier.Group("line-1")
	if err := CanShare(e, "alice", roleNamed(t, in, RoleGroupOwner), line1, UserSubject("mallory")); err != nil {
		t.Fatal(err)
	}
	in.Grants = append(in.Grants, Grant{ID: "g-50", Subject: UserSubject("mallory"), Role: RoleGroupOwner, Scope: GroupScope("line-1")})
	e = mustCompile(t, in)
	got := e.Permissions("mallory", line1)
	if strings.Join(toStrings(got), ",") != "device-group:view,device-group:manage-members,device-group:share,device-group:delete" {
		t.Errorf("mallory on line-1 after share: %v", got)
	}
	if e.Allowed("mallory", DeviceGroupShare, testHier.Group("line-2")) || e.Allowed("mallory", DeviceView, d7) {
		t.Error("the shared template reaches beyond the group or beyond its actions")
	}
}

func TestCheckNoEscalation(t *testing.T) {
	e := mustCompile(t, testInput())
	tests := []struct {
		name    string
		user    string
		actions []Action
		scope   Resource
		want    error
		msg     string
	}{
		{"admin creates any role", "root", allActions.actions(), ControllerResource(), nil, ""},
		{"role manager creates a role within their rights", "rolemgr", []Action{DeviceView, DeviceGroupView}, ControllerResource(), nil, ""},
		{"role with an action the creator lacks", "rolemgr", []Action{DeviceView, DeviceSideload}, ControllerResource(), ErrEscalation, "device:sideload everywhere"},
		{"role with an action held only on a group", "rolemgr", []Action{DeviceAppOperate}, ControllerResource(), ErrEscalation, "device:app-operate"},
		{"grant on the group where it is held", "rolemgr", []Action{DeviceAppOperate, DeviceLogs}, testHier.Group("line-1"), nil, ""},
		{"grant on a nested group", "rolemgr", []Action{DeviceAppOperate}, testHier.Group("cell-3"), nil, ""},
		{"grant on a device in the group", "rolemgr", []Action{DeviceAppOperate}, d7, nil, ""},
		{"grant on another group", "rolemgr", []Action{DeviceAppOperate}, testHier.Group("line-2"), ErrEscalation, "on device-group line-2"},
		{"app-scoped grant needs the app actions", "rolemgr", []Action{DeviceView, AppView}, AppResource("historian"), ErrEscalation, "app:view"},
		{"inert actions are not handed out", "rolemgr", []Action{DeviceView, ControllerSettings}, testHier.Group("line-1"), nil, ""},
		{"no manage-roles, even for own grants", "alice", []Action{DeviceView}, testHier.Group("line-1"), ErrForbidden, "controller:manage-roles"},
		{"manage-roles through a group grant does not count", "frank", []Action{DeviceView}, testHier.Group("line-1"), ErrForbidden, "controller:manage-roles"},
		{"disabled admin", "carol", []Action{DeviceView}, ControllerResource(), ErrForbidden, "disabled"},
		{"unknown action", "root", []Action{"device:teleport"}, ControllerResource(), ErrUnknownAction, "edgewarden actions ls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckNoEscalation(e, tt.user, tt.actions, tt.scope)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("CheckNoEscalation: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("CheckNoEscalation = %v, want %v containing %q", err, tt.want, tt.msg)
			}
		})
	}
}

func TestAdministratorsAndTakingAway(t *testing.T) {
	e := mustCompile(t, testInput())
	admins := e.Administrators()
	if !slices.Equal(admins, []string{"root"}) {
		t.Fatalf("administrators %v: want root only (carol is disabled, frank is admin of a group, team ghosts has no members)", admins)
	}
	res := func(s Scope) Resource {
		switch s.Kind {
		case ScopeDeviceGroup:
			return GroupResource(s.Name, nil)
		case ScopeDevice:
			return DeviceResource(s.Name, nil)
		case ScopeApp:
			return AppResource(s.Name)
		}
		return ControllerResource()
	}
	// frank (admin on line-1 only) may take nothing from root (global
	// admin), nor from carol: a disabled user's grants come back with it.
	for _, target := range []string{"root", "carol"} {
		err := CheckNoEscalationByRemoval(e, "frank", target, e.Holdings(target), res)
		if !errors.Is(err, ErrEscalation) || !strings.Contains(err.Error(), "grant g-") {
			t.Fatalf("frank strips %s: %v, want an escalation error naming the grant", target, err)
		}
	}
	// root holds everything frank holds.
	if err := CheckNoEscalationByRemoval(e, "root", "frank", e.Holdings("frank"), res); err != nil {
		t.Fatalf("root strips frank: %v", err)
	}
	if len(e.Holdings("nobody")) != 0 {
		t.Fatal("an unknown user holds something")
	}
}
