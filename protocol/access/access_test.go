package access

import (
	"errors"
	"strings"
	"testing"
)

// The fixture plant:
//
//	plant ⊃ line-1 ⊃ cell-3 ∋ d-7
//	plant ⊃ line-2 ∋ d-9
//	gpu ∋ d-7 (by label selector)
var testIncludes = map[string][]string{
	"plant":  {"line-1", "line-2"},
	"line-1": {"cell-3"},
}

var (
	testHier = NewHierarchy(testIncludes)
	d7       = testHier.Device("d-7", []string{"cell-3", "gpu"})
	d9       = testHier.Device("d-9", []string{"line-2"})
	d1       = testHier.Device("d-1", nil) // in no group
)

func testInput() Input {
	roles := BuiltinRoles()
	roles = append(roles,
		Role{Name: "installer", Actions: []Action{DeviceView, DeviceAppInstall}},
		Role{Name: "super-op", Actions: []Action{DeviceView, DeviceSideload}, Shareable: true},
		Role{Name: "role-manager", Actions: []Action{ControllerManageRoles, DeviceView, DeviceGroupView}},
		Role{Name: "gpu-op", Actions: []Action{DeviceAppOperate}},
	)
	return Input{
		Roles: roles,
		Users: []User{
			{Name: "alice", Teams: []string{"ops"}},
			{Name: "bob"},
			{Name: "carol", Disabled: true},
			{Name: "dave", Teams: []string{"ops"}},
			{Name: "erin"},
			{Name: "frank"},
			{Name: "mallory"},
			{Name: "root"},
			{Name: "rolemgr"},
			{Name: "gina"},
		},
		Grants: []Grant{
			{ID: "g-1", Subject: TeamSubject("ops"), Role: RoleOperator, Scope: GroupScope("line-1")},
			{ID: "g-2", Subject: UserSubject("bob"), Role: RoleViewer, Scope: DeviceScope("d-9")},
			{ID: "g-3", Subject: UserSubject("carol"), Role: RoleAdmin, Scope: Global()},
			OwnerGrant("g-4", "alice", "line-1"),
			{ID: "g-5", Subject: UserSubject("erin"), Role: RoleSecurityOfficer, Scope: Global()},
			{ID: "g-6", Subject: UserSubject("bob"), Role: RolePlantAdmin, Scope: GroupScope("line-2")},
			{ID: "g-7", Subject: UserSubject("bob"), Role: RoleViewer, Scope: AppScope("historian")},
			{ID: "g-8", Subject: UserSubject("root"), Role: RoleAdmin, Scope: Global()},
			{ID: "g-9", Subject: UserSubject("frank"), Role: RoleAdmin, Scope: GroupScope("line-1")},
			{ID: "g-10", Subject: UserSubject("rolemgr"), Role: "role-manager", Scope: Global()},
			{ID: "g-11", Subject: UserSubject("rolemgr"), Role: RoleOperator, Scope: GroupScope("line-1")},
			{ID: "g-12", Subject: UserSubject("gina"), Role: "gpu-op", Scope: GroupScope("gpu")},
			{ID: "g-13", Subject: TeamSubject("ghosts"), Role: RoleAdmin, Scope: Global()}, // no members
		},
	}
}

func mustCompile(t testing.TB, in Input) *Evaluator {
	t.Helper()
	e, err := Compile(in)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return e
}

func TestDecide(t *testing.T) {
	e := mustCompile(t, testInput())
	cell3 := testHier.Group("cell-3")
	line1 := testHier.Group("line-1")
	line2 := testHier.Group("line-2")
	plant := testHier.Group("plant")
	tests := []struct {
		name   string
		user   string
		action Action
		res    Resource
		want   bool
		// explain is the whole Decision.String, or a substring when it
		// starts with "~".
		explain string
	}{
		{"no grant", "mallory", DeviceView, d7, false,
			"denied: no grant gives device:view on device d-7 (user mallory, teams: none)"},
		{"team grant through nested groups", "alice", DeviceView, d7, true,
			"allowed: grant g-1 to team ops → role operator → scope device-group line-1 → via group line-1 ⊃ group cell-3 ⊃ device d-7"},
		{"other team member", "dave", DeviceAppOperate, d7, true, "~grant g-1 to team ops"},
		{"action outside the role", "alice", DeviceAppInstall, d7, false,
			"denied: no grant gives device:app-install on device d-7 (user alice, teams: ops)"},
		{"grant on another group", "alice", DeviceView, d9, false, "~no grant gives device:view on device d-9"},
		{"device in no group", "alice", DeviceView, d1, false, "~no grant"},
		{"device scope", "bob", DeviceView, d9, true,
			"allowed: grant g-2 to user bob → role viewer → scope device d-9"},
		{"device scope is only that device", "bob", DeviceView, d7, false, "~no grant"},
		{"disabled user with a global admin grant", "carol", DeviceView, d7, false, "~user carol is disabled"},
		{"disabled user, controller action", "carol", ControllerManageUsers, ControllerResource(), false, "~disabled"},
		{"unknown user", "zed", DeviceView, d7, false, "~not an active user"},
		{"controller action through a group grant", "bob", ControllerCreateDeviceGroup, ControllerResource(), false, "~no grant"},
		{"controller action through a group admin grant", "frank", ControllerManageUsers, ControllerResource(), false, "~no grant"},
		{"controller action asked on a group", "frank", ControllerAudit, line1, false, "~does not apply"},
		{"app action through a group admin grant", "frank", AppView, AppResource("historian"), false, "~no grant"},
		{"app action via a group even if the caller adds groups", "frank", AppView,
			Resource{Type: ResourceApp, ID: "historian", Groups: []GroupRef{{Name: "line-1"}}}, false, "~no grant"},
		{"controller action via a group even if the caller adds groups", "frank", ControllerManageUsers,
			Resource{Type: ResourceController, Groups: []GroupRef{{Name: "line-1"}}}, false, "~no grant"},
		{"group admin does device actions", "frank", DeviceSideload, d7, true, "~grant g-9 to user frank → role admin"},
		{"plant-admin on its group's device", "bob", DeviceAppInstall, d9, true, "~grant g-6"},
		{"most specific grant explains", "bob", DeviceView, d9, true, "~grant g-2"},
		{"group action on own group", "bob", DeviceGroupManageMembers, line2, true,
			"allowed: grant g-6 to user bob → role plant-admin → scope device-group line-2"},
		{"grants flow down, not up", "bob", DeviceGroupManageMembers, plant, false, "~no grant"},
		{"group action on an included group", "alice", DeviceGroupManageMembers, cell3, true,
			"allowed: grant g-4 to user alice → role group-owner → scope device-group line-1 → via group line-1 ⊃ device-group cell-3"},
		{"group-owner gives nothing beyond", "alice", DeviceSideload, line1, false, "~no grant"},
		{"group-owner deletes and renames the group", "alice", DeviceGroupDelete, line1, true, "~role group-owner"},
		{"device action on a group", "alice", DeviceAppOperate, cell3, true, "~scope device-group line-1"},
		{"device action on a parent group", "alice", DeviceAppOperate, plant, false, "~no grant"},
		{"group action on a device", "alice", DeviceGroupView, d7, false, "~does not apply"},
		{"app scope", "bob", AppView, AppResource("historian"), true,
			"allowed: grant g-7 to user bob → role viewer → scope app historian"},
		{"app scope is only that app", "bob", AppView, AppResource("scada"), false, "~no grant"},
		{"app action outside the role", "bob", AppDeploy, AppResource("historian"), false, "~no grant"},
		{"global grant, controller action", "erin", ControllerTrust, ControllerResource(), true,
			"allowed: grant g-5 to user erin → role security-officer → scope global"},
		{"global grant, device action", "erin", DeviceSideload, d7, true, "~scope global"},
		{"global grant, app action", "erin", AppDeleteVersion, AppResource("x"), true, "~grant g-5"},
		{"everywhere needs a global grant", "alice", DeviceView, ControllerResource(), false, "~no grant"},
		{"everywhere with a global grant", "erin", DeviceView, ControllerResource(), true, "~grant g-5"},
		{"selector group", "gina", DeviceAppOperate, d7, true,
			"allowed: grant g-12 to user gina → role gpu-op → scope device-group gpu → via group gpu ⊃ device d-7"},
		{"team without members gives nothing", "mallory", ControllerAudit, ControllerResource(), false, "~no grant"},
		{"unknown action", "root", Action("device:format"), d7, false, "~edgewarden actions ls"},
		{"admin everything", "root", ControllerManageRoles, ControllerResource(), true, "~grant g-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.Decide(tt.user, tt.action, tt.res)
			if d.Allowed != tt.want {
				t.Fatalf("Decide = %v, want allowed=%v", d, tt.want)
			}
			if got := e.Allowed(tt.user, tt.action, tt.res); got != tt.want {
				t.Errorf("Allowed = %v, Decide = %v", got, d.Allowed)
			}
			if d.Allowed == (len(d.Chain) == 0) || d.Allowed == (d.Reason != "") {
				t.Errorf("an allowed decision must have a chain and no reason, a denied one the opposite: %+v", d)
			}
			got := d.String()
			if sub, ok := strings.CutPrefix(tt.explain, "~"); ok {
				if !strings.Contains(got, sub) {
					t.Errorf("explanation %q does not contain %q", got, sub)
				}
			} else if got != tt.explain {
				t.Errorf("explanation\n got %q\nwant %q", got, tt.explain)
			}
		})
	}
}

func TestPermissionsAddUp(t *testing.T) {
	e := mustCompile(t, testInput())
	got := e.Permissions("alice", testHier.Group("line-1"))
	want := []Action{DeviceGroupView, DeviceGroupManageMembers, DeviceGroupShare, DeviceGroupDelete,
		DeviceView, DeviceAppOperate, DeviceAppAccess, DeviceLogs}
	if strings.Join(toStrings(got), ",") != strings.Join(toStrings(want), ",") {
		t.Errorf("alice on line-1: %v, want %v (team operator + own group-owner)", got, want)
	}
}

func toStrings(as []Action) []string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = string(a)
	}
	return s
}

func TestRemovedGrantAndTeamMembership(t *testing.T) {
	in := testInput()
	if !mustCompile(t, in).Allowed("alice", DeviceView, d7) {
		t.Fatal("precondition: alice may view d-7")
	}
	removed := in
	removed.Grants = nil
	for _, g := range in.Grants {
		if g.ID != "g-1" {
			removed.Grants = append(removed.Grants, g)
		}
	}
	if mustCompile(t, removed).Allowed("alice", DeviceView, d7) {
		t.Error("alice may still view d-7 after grant g-1 was removed")
	}
	left := testInput()
	left.Users[0].Teams = nil // alice leaves ops
	e := mustCompile(t, left)
	if e.Allowed("alice", DeviceView, d7) {
		t.Error("alice may still view d-7 after leaving team ops")
	}
	if !e.Allowed("dave", DeviceView, d7) {
		t.Error("dave lost access when alice left the team")
	}
	gone := testInput()
	gone.Users = gone.Users[1:] // alice removed
	if mustCompile(t, gone).Allowed("alice", DeviceGroupView, testHier.Group("line-1")) {
		t.Error("a removed user keeps access through their own grant")
	}
}

func TestNilEvaluatorAllowsNothing(t *testing.T) {
	var e *Evaluator
	if e.Allowed("root", DeviceView, d7) {
		t.Error("nil evaluator allowed")
	}
	d := e.Decide("root", DeviceView, d7)
	if d.Allowed || !strings.Contains(d.Reason, "no access policy") {
		t.Errorf("nil evaluator: %v", d)
	}
	if p := e.DevicePolicy(d7); len(p.Grants) != 0 {
		t.Errorf("nil evaluator policy has grants: %+v", p)
	}
}

func TestCompileRefusesBadInput(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Input)
		want   error
		msg    string
	}{
		{"unknown action", func(in *Input) {
			in.Roles = append(in.Roles, Role{Name: "x", Actions: []Action{"device:format"}})
		}, ErrUnknownAction, `"device:format"`},
		{"missing role", func(in *Input) {
			in.Grants = append(in.Grants, Grant{ID: "g-99", Subject: UserSubject("bob"), Role: "nope", Scope: Global()})
		}, ErrInvalid, `grant g-99 names role "nope"`},
		{"duplicate grant", func(in *Input) { in.Grants = append(in.Grants, in.Grants[0]) }, ErrInvalid, "g-1 is used twice"},
		{"duplicate role", func(in *Input) { in.Roles = append(in.Roles, BuiltinRoles()[0]) }, ErrInvalid, "admin is defined twice"},
		{"duplicate user", func(in *Input) { in.Users = append(in.Users, User{Name: "bob"}) }, ErrInvalid, "bob is listed twice"},
		{"bad subject kind", func(in *Input) { in.Grants[0].Subject.Kind = "group" }, ErrInvalid, `subject kind "group"`},
		{"bad scope kind", func(in *Input) { in.Grants[0].Scope = Scope{Kind: "site", Name: "x"} }, ErrInvalid, `scope kind "site"`},
		{"scope without name", func(in *Input) { in.Grants[0].Scope = GroupScope("") }, ErrInvalid, "needs a name"},
		{"global with name", func(in *Input) { in.Grants[0].Scope = Scope{Kind: ScopeGlobal, Name: "x"} }, ErrInvalid, "no name"},
		{"bad user name", func(in *Input) { in.Users[0].Name = "../alice" }, ErrInvalid, "user name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := testInput()
			tt.change(&in)
			e, err := Compile(in)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Compile error = %v, want %v containing %q", err, tt.want, tt.msg)
			}
			if e != nil {
				t.Error("Compile returned an evaluator with an error")
			}
		})
	}
}

func TestValidateRole(t *testing.T) {
	if err := ValidateRole(Role{Name: "ok", Actions: []Action{DeviceView}}); err != nil {
		t.Errorf("valid role: %v", err)
	}
	err := ValidateRole(Role{Name: "bad", Actions: []Action{DeviceView, "device:fly"}})
	if !errors.Is(err, ErrUnknownAction) {
		t.Fatalf("unknown action: %v", err)
	}
	for _, want := range []string{"role bad", `"device:fly"`, "edgewarden actions ls"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if err := ValidateRole(Role{Name: "empty"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("role without actions: %v", err)
	}
	if err := ValidateRole(Role{Name: "Bad Name", Actions: []Action{DeviceView}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad role name: %v", err)
	}
}

func TestCatalogue(t *testing.T) {
	need := []string{"device:view", "device:app-install", "device:app-operate", "device:logs", "device:sideload",
		"device:manage", "device-group:view", "device-group:manage-members", "device-group:share",
		"device-group:delete", "app:view", "app:publish", "app:deploy", "app:delete-version",
		"controller:manage-users", "controller:manage-roles", "controller:settings", "controller:audit",
		"controller:trust", "controller:create-device-group", "controller:enroll"}
	for _, n := range need {
		a, err := ParseAction(n)
		if err != nil {
			t.Errorf("ParseAction(%q): %v", n, err)
			continue
		}
		info, _ := LookupAction(a)
		if info.Description == "" || strings.Contains(info.Description, "\n") {
			t.Errorf("%s: description must be one line: %q", n, info.Description)
		}
	}
	// Grouped by resource type, in ResourceTypes order.
	order := map[ResourceType]int{}
	for i, rt := range ResourceTypes() {
		order[rt] = i
	}
	last := 0
	for _, a := range Actions() {
		if order[a.Resource] < last {
			t.Errorf("%s is out of resource-type order", a.Name)
		}
		last = order[a.Resource]
	}
	if _, err := ParseAction("device:*"); !errors.Is(err, ErrUnknownAction) {
		t.Errorf("wildcards are not actions: %v", err)
	}
}

func TestBuiltinRoles(t *testing.T) {
	roles := map[string]Role{}
	for _, r := range BuiltinRoles() {
		if !r.Builtin || !IsBuiltinRole(r.Name) {
			t.Errorf("%s is not marked built-in", r.Name)
		}
		roles[r.Name] = r
	}
	for _, n := range []string{RoleAdmin, RolePlantAdmin, RoleSecurityOfficer, RoleOperator, RoleViewer, RoleGroupOwner} {
		if _, ok := roles[n]; !ok {
			t.Errorf("built-in role %s missing", n)
		}
	}
	if len(roles[RoleAdmin].Actions) != len(Actions()) {
		t.Errorf("admin has %d actions, the catalogue %d", len(roles[RoleAdmin].Actions), len(Actions()))
	}
	owner := roles[RoleGroupOwner]
	if !owner.Shareable || strings.Join(toStrings(owner.Actions), ",") != "device-group:view,device-group:manage-members,device-group:share,device-group:delete" {
		t.Errorf("group-owner = %+v", owner)
	}
	// BuiltinRoles returns copies.
	roles[RoleAdmin].Actions[0] = "x"
	if BuiltinRoles()[0].Actions[0] == "x" {
		t.Error("BuiltinRoles shares its slices")
	}
}

func TestHierarchy(t *testing.T) {
	h := NewHierarchy(map[string][]string{"a": {"b"}, "b": {"c"}, "x": {"c"}, "loop1": {"loop2"}, "loop2": {"loop1"}})
	got := h.Containing([]string{"c"})
	want := []GroupRef{{Name: "c"}, {Name: "b", Via: "c"}, {Name: "x", Via: "c"}, {Name: "a", Via: "b"}}
	if len(got) != len(want) {
		t.Fatalf("Containing = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Containing[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	if p := DeviceResource("d", got).path("a"); strings.Join(p, ">") != "a>b>c" {
		t.Errorf("path = %v", p)
	}
	if anc := h.Ancestors("loop1"); len(anc) != 1 || anc[0].Name != "loop2" {
		t.Errorf("cycle ancestors = %v", anc)
	}
	var nilH *Hierarchy
	if r := nilH.Device("d", []string{"g"}); len(r.Groups) != 1 {
		t.Errorf("nil hierarchy: %v", r)
	}
}
