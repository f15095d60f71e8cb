package access

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func devicePolicy(t testing.TB, in Input, dev Resource) Policy {
	t.Helper()
	p, err := CompileForDevice(in, dev)
	if err != nil {
		t.Fatalf("CompileForDevice: %v", err)
	}
	return p
}

func TestDevicePolicyIsMinimal(t *testing.T) {
	p := devicePolicy(t, testInput(), d7)
	var ids []string
	for _, g := range p.Grants {
		ids = append(ids, g.ID)
	}
	// g-1 ops operator on line-1 (⊃ cell-3 ∋ d-7), g-5 erin global,
	// g-8 root global, g-9 frank admin on line-1, g-10 rolemgr global
	// (role-manager has device:view), g-11 rolemgr operator on line-1,
	// g-12 gina on gpu. Not: g-2/g-6 (d-9, line-2), g-3 (carol disabled),
	// g-4 (group-owner has no device action), g-7 (app), g-13 (no members).
	if got := strings.Join(ids, ","); got != "g-1,g-10,g-11,g-12,g-5,g-8,g-9" {
		t.Errorf("grants = %s", got)
	}
	var users []string
	for _, u := range p.Users {
		users = append(users, u.Name+"["+strings.Join(u.Teams, ",")+"]")
	}
	if got := strings.Join(users, " "); got != "alice[ops] dave[ops] erin[] frank[] gina[] rolemgr[] root[]" {
		t.Errorf("users = %s", got)
	}
	for _, r := range p.Roles {
		for _, a := range r.Actions {
			if a.ResourceType() != ResourceDevice {
				t.Errorf("role %s carries non-device action %s", r.Name, a)
			}
		}
		if r.Description != "" || r.Builtin || r.Shareable {
			t.Errorf("role %s carries more than name and actions: %+v", r.Name, r)
		}
	}
	var groups []string
	for _, g := range p.Groups {
		groups = append(groups, g.Name+"<"+g.Via)
	}
	if got := strings.Join(groups, " "); got != "cell-3< gpu< line-1<cell-3" /* nearest first */ {
		t.Errorf("groups = %s", got)
	}
	if p.CatalogueVersion != CatalogueVersion {
		t.Errorf("catalogue version %d", p.CatalogueVersion)
	}

	// A device in no group gets only the global grants.
	p1 := devicePolicy(t, testInput(), d1)
	for _, g := range p1.Grants {
		if g.Scope.Kind != ScopeGlobal {
			t.Errorf("d-1 got %s on %s", g.ID, g.Scope)
		}
	}
}

// The agent's evaluator, built from the policy alone, decides like the
// controller's for every user and device action on that device.
func TestDevicePolicyDecidesLikeTheController(t *testing.T) {
	in := testInput()
	ctl := mustCompile(t, in)
	for _, dev := range []Resource{d7, d9, d1} {
		p := devicePolicy(t, in, dev)
		raw, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var wire Policy
		if err := json.Unmarshal(raw, &wire); err != nil {
			t.Fatal(err)
		}
		agent, err := wire.Evaluator()
		if err != nil {
			t.Fatalf("%s: policy evaluator: %v", dev.ID, err)
		}
		local := wire.Device(dev.ID)
		for _, u := range append(in.Users, User{Name: "zed"}) {
			for _, a := range Actions() {
				want := ctl.Allowed(u.Name, a.Name, dev)
				if a.Resource != ResourceDevice {
					want = false // the device decides device actions only
				}
				got := agent.Decide(u.Name, a.Name, local)
				if got.Allowed != want {
					t.Errorf("%s %s on %s: agent %v, controller %v", u.Name, a.Name, dev.ID, got, want)
				}
				if want && got.String() != ctl.Decide(u.Name, a.Name, dev).String() {
					t.Errorf("explanations differ:\nagent      %s\ncontroller %s", got, ctl.Decide(u.Name, a.Name, dev))
				}
			}
		}
	}
}

func TestDevicePolicyIsDeterministic(t *testing.T) {
	in := testInput()
	want, _ := json.Marshal(devicePolicy(t, in, d7))
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		sh := testInput()
		r.Shuffle(len(sh.Roles), func(i, j int) { sh.Roles[i], sh.Roles[j] = sh.Roles[j], sh.Roles[i] })
		r.Shuffle(len(sh.Grants), func(i, j int) { sh.Grants[i], sh.Grants[j] = sh.Grants[j], sh.Grants[i] })
		r.Shuffle(len(sh.Users), func(i, j int) { sh.Users[i], sh.Users[j] = sh.Users[j], sh.Users[i] })
		got, _ := json.Marshal(devicePolicy(t, sh, d7))
		if !bytes.Equal(got, want) {
			t.Fatalf("policy bytes depend on input order:\n%s\n%s", got, want)
		}
	}
}

func TestDevicePolicyFollowsChanges(t *testing.T) {
	base, _ := json.Marshal(devicePolicy(t, testInput(), d7))

	// Disabling a user removes them from the document: denied on the device.
	in := testInput()
	in.Users[0].Disabled = true // alice
	p := devicePolicy(t, in, d7)
	if slices.ContainsFunc(p.Users, func(u User) bool { return u.Name == "alice" }) {
		t.Error("disabled alice is still in the device policy")
	}
	ev, err := p.Evaluator()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Allowed("alice", DeviceView, p.Device("d-7")) {
		t.Error("disabled alice is allowed on the device")
	}
	if got, _ := json.Marshal(p); bytes.Equal(got, base) {
		t.Error("policy unchanged after disabling a user")
	}

	// A change that does not concern the device leaves its bytes alone.
	in = testInput()
	in.Grants = append(in.Grants, Grant{ID: "g-60", Subject: UserSubject("bob"), Role: RoleAdmin, Scope: GroupScope("line-2")})
	in.Roles[0].Description = "changed"
	if got, _ := json.Marshal(devicePolicy(t, in, d7)); !bytes.Equal(got, base) {
		t.Errorf("policy of d-7 changed for a grant on line-2:\n%s\n%s", got, base)
	}
}

func TestPolicyJSON(t *testing.T) {
	raw, err := json.Marshal(devicePolicy(t, testInput(), d7))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"catalogue_version":1`, `"grants":`, `"subject":{"kind":"team","name":"ops"}`, `"scope":{"kind":"device-group","name":"line-1"}`, `"via":"cell-3"`} {
		if !bytes.Contains(raw, []byte(key)) {
			t.Errorf("policy JSON lacks %s: %s", key, raw)
		}
	}
	if got, _ := json.Marshal(Policy{}); string(got) != "{}" {
		t.Errorf("zero policy encodes as %s", got)
	}
}

func TestZeroPolicyAllowsNothing(t *testing.T) {
	var p Policy
	ev, err := p.Evaluator()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range Actions() {
		if ev.Allowed("root", a.Name, p.Device("d-7")) {
			t.Errorf("zero policy allows %s", a.Name)
		}
	}
}

func TestPolicyEvaluatorTolerance(t *testing.T) {
	// A newer controller's action is ignored, never granted.
	p := Policy{
		Roles:  []Role{{Name: "future", Actions: []Action{"device:teleport", DeviceView}}},
		Grants: []Grant{{ID: "g-1", Subject: UserSubject("alice"), Role: "future", Scope: DeviceScope("d-7")}},
		Users:  []User{{Name: "alice"}},
	}
	ev, err := p.Evaluator()
	if err != nil {
		t.Fatalf("unknown action in a policy: %v", err)
	}
	if !ev.Allowed("alice", DeviceView, p.Device("d-7")) || ev.Allowed("alice", "device:teleport", p.Device("d-7")) {
		t.Error("known actions must work and unknown ones be refused")
	}
	// A grant naming a role the policy lacks makes the policy invalid.
	p.Grants[0].Role = "missing"
	if _, err := p.Evaluator(); err == nil {
		t.Error("a policy with a grant to a missing role compiled")
	}
}

// FuzzPolicy decodes arbitrary bytes as a device Policy; whatever decodes
// and compiles must never panic, must agree between Allowed and Decide, and
// must allow nothing to users it does not list.
func FuzzPolicy(f *testing.F) {
	seed, _ := json.Marshal(devicePolicy(f, testInput(), d7))
	f.Add(seed)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"roles":[{"name":"r","actions":["device:view"]}],"grants":[{"id":"g","subject":{"kind":"user","name":"u"},"role":"r","scope":{"kind":"device-group","name":"g"}}],"users":[{"name":"u"}],"groups":[{"name":"g","via":"g"}]}`))
	f.Add([]byte(`{"grants":[{"id":"g","subject":{"kind":"team","name":"t"},"role":"r","scope":{"kind":"global"}}]}`))
	f.Add([]byte(`{"groups":[{"name":"a","via":"b"},{"name":"b","via":"a"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var p Policy
		if err := json.Unmarshal(raw, &p); err != nil {
			return
		}
		ev, err := p.Evaluator()
		if err != nil {
			return
		}
		dev := p.Device("d-7")
		users := []string{"zed-not-listed"}
		for _, u := range p.Users {
			users = append(users, u.Name)
		}
		for _, u := range users {
			for _, a := range Actions() {
				d := ev.Decide(u, a.Name, dev)
				if d.Allowed != ev.Allowed(u, a.Name, dev) {
					t.Fatalf("Decide and Allowed disagree for %s %s", u, a.Name)
				}
				_ = d.String()
				if d.Allowed && u == "zed-not-listed" {
					t.Fatalf("unlisted user allowed %s", a.Name)
				}
			}
		}
	})
}

// The device explains with the nearest group first, as the controller does,
// even when a farther group sorts first by name.
func TestDevicePolicyExplainsNearestFirst(t *testing.T) {
	h := NewHierarchy(map[string][]string{"a-top": {"z-cell"}})
	dev := h.Device("d-2", []string{"z-cell"})
	in := Input{
		Roles: BuiltinRoles(),
		Users: []User{{Name: "u"}},
		Grants: []Grant{
			{ID: "g-1", Subject: UserSubject("u"), Role: RoleViewer, Scope: GroupScope("a-top")},
			{ID: "g-2", Subject: UserSubject("u"), Role: RoleViewer, Scope: GroupScope("z-cell")},
		},
	}
	want := "allowed: grant g-2 to user u → role viewer → scope device-group z-cell → via group z-cell ⊃ device d-2"
	if got := mustCompile(t, in).Explain("u", DeviceView, dev); got != want {
		t.Errorf("controller: %s", got)
	}
	p := devicePolicy(t, in, dev)
	ev, err := p.Evaluator()
	if err != nil {
		t.Fatal(err)
	}
	if got := ev.Explain("u", DeviceView, p.Device("d-2")); got != want {
		t.Errorf("device: %s", got)
	}
}
