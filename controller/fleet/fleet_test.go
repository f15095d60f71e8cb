package fleet

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestParseSelector(t *testing.T) {
	labels := map[string]string{"site": "berlin", "line": "3", "role": "plc"}
	tests := []struct {
		in    string
		canon string
		match bool
	}{
		{"site=berlin", "site=berlin", true},
		{" site = berlin , line=3 ", "site=berlin,line=3", true},
		{"site=berlin,line=4", "site=berlin,line=4", false},
		{"site=munich", "site=munich", false},
		{"site", "site", true},
		{"zone", "zone", false},
		{"site,!zone", "site,!zone", true},
		{"site,!role", "site,!role", false},
		{"site=berlin,line!=4", "site=berlin,line!=4", true},
		{"site=berlin,line!=3", "site=berlin,line!=3", false},
		{"site=berlin,zone!=a", "site=berlin,zone!=a", true},
		{"", "", false},
	}
	for _, tt := range tests {
		sel, err := ParseSelector(tt.in)
		if err != nil {
			t.Fatalf("ParseSelector(%q): %v", tt.in, err)
		}
		if got := sel.String(); got != tt.canon {
			t.Errorf("ParseSelector(%q).String() = %q, want %q", tt.in, got, tt.canon)
		}
		if got := sel.Matches(labels); got != tt.match {
			t.Errorf("%q.Matches(%v) = %v, want %v", tt.in, labels, got, tt.match)
		}
		again, err := ParseSelector(sel.String())
		if err != nil || again.String() != sel.String() {
			t.Errorf("canonical form %q does not round-trip: %v", sel.String(), err)
		}
	}
}

func TestParseSelectorErrors(t *testing.T) {
	bad := map[string]string{
		"site=":           "has no value",
		"site=berlin,":    "term 2 is empty",
		",site":           "term 1 is empty",
		"=berlin":         "label key",
		"si te=berlin":    "label key",
		"site==berlin":    "single '='",
		"site=ber lin":    "value",
		"site!=x":         "only negative terms",
		"!site":           "only negative terms",
		"site=a,b=c=d":    "value",
		"-site=berlin":    "label key",
		"site=berlin,!":   "label key",
		"site=berlin;x=y": "value",
	}
	for in, want := range bad {
		_, err := ParseSelector(in)
		if err == nil {
			t.Errorf("ParseSelector(%q) succeeded, want error containing %q", in, want)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSelector(%q) error %v does not wrap ErrInvalid", in, err)
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSelector(%q) = %v, want it to mention %q", in, err, want)
		}
	}
}

func TestEmptySelectorMatchesNothing(t *testing.T) {
	var s Selector
	if s.Matches(nil) || s.Matches(map[string]string{"a": "b"}) {
		t.Fatal("the empty selector matched a device")
	}
}

func TestValidateGroupName(t *testing.T) {
	for _, ok := range []string{"a", "plant-1", "line_3.presses", strings.Repeat("a", 63)} {
		if err := ValidateGroupName(ok); err != nil {
			t.Errorf("ValidateGroupName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Plant", "-a", ".a", "a/b", "a b", "a+b", "a#", strings.Repeat("a", 64), "ä"} {
		err := ValidateGroupName(bad)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "group name") {
			t.Errorf("ValidateGroupName(%q) = %v, want an ErrInvalid naming the group name", bad, err)
		}
	}
}

func TestValidateLabels(t *testing.T) {
	if err := ValidateLabels(map[string]string{"site": "berlin", "k8s.io/zone": "eu-1", "fw": "v1.2+3"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []map[string]string{
		{"": "x"}, {"a b": "x"}, {"a": ""}, {"a": "x,y"}, {"a": "x=y"}, {"a": "!x"}, {"a": strings.Repeat("x", 128)},
	} {
		if err := ValidateLabels(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateLabels(%v) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestCheckInclude(t *testing.T) {
	groups := []Group{
		{Name: "a", Includes: []string{"b"}},
		{Name: "b", Includes: []string{"c"}},
		{Name: "c"},
		{Name: "d"},
	}
	if err := CheckInclude(groups, "d", "a"); err != nil {
		t.Fatalf("d includes a: %v", err)
	}
	if err := CheckInclude(groups, "a", "c"); err != nil {
		t.Fatalf("a includes c (a shortcut, not a cycle): %v", err)
	}
	err := CheckInclude(groups, "c", "a")
	if !errors.Is(err, ErrCycle) || !strings.Contains(err.Error(), "c → a → b → c") {
		t.Fatalf("c includes a = %v, want a cycle error naming c → a → b → c", err)
	}
	err = CheckInclude(groups, "b", "b")
	if !errors.Is(err, ErrCycle) || !strings.Contains(err.Error(), "itself") {
		t.Fatalf("b includes b = %v, want a self-include error", err)
	}
}

func TestFindCycle(t *testing.T) {
	if c := FindCycle([]Group{{Name: "a", Includes: []string{"b"}}, {Name: "b"}}); c != nil {
		t.Fatalf("FindCycle on a DAG = %v", c)
	}
	c := FindCycle([]Group{{Name: "a", Includes: []string{"b"}}, {Name: "b", Includes: []string{"c"}}, {Name: "c", Includes: []string{"a"}}})
	if strings.Join(c, ">") != "a>b>c>a" {
		t.Fatalf("FindCycle = %v, want a>b>c>a", c)
	}
	if _, err := Resolve(nil, []Group{{Name: "x", Includes: []string{"x"}}}); !errors.Is(err, ErrCycle) {
		t.Fatalf("Resolve with a self-include = %v, want ErrCycle", err)
	}
}

func TestResolve(t *testing.T) {
	devices := []Device{
		{ID: "d3", Labels: map[string]string{"site": "berlin", "line": "1"}},
		{ID: "d1", Labels: map[string]string{"site": "berlin", "line": "2"}},
		{ID: "d2", Labels: map[string]string{"site": "munich"}},
		{ID: "d4"},
	}
	groups := []Group{
		{Name: "plant", Includes: []string{"berlin", "munich"}},
		{Name: "berlin", Selector: "site=berlin"},
		{Name: "munich", Selector: "site=munich", Devices: []string{"d4"}},
		{Name: "line1", Selector: "site=berlin,line=1"},
		{Name: "not-line1", Selector: "site,line!=1"},
		{Name: "world", Includes: []string{"plant"}, Devices: []string{"gone"}},
		{Name: "empty"},
		{Name: "audit", Includes: []string{"line1", "munich"}},
	}
	m, err := Resolve(devices, groups)
	if err != nil {
		t.Fatal(err)
	}
	wantMembers := map[string]string{
		"plant":     "d1,d2,d3,d4",
		"berlin":    "d1,d3",
		"munich":    "d2,d4",
		"line1":     "d3",
		"not-line1": "d1,d2",
		"world":     "d1,d2,d3,d4",
		"empty":     "",
		"audit":     "d2,d3,d4",
	}
	for g, want := range wantMembers {
		if got := strings.Join(m.Members(g), ","); got != want {
			t.Errorf("Members(%s) = %q, want %q", g, got, want)
		}
	}
	wantGroups := map[string]string{
		"d1": "berlin,not-line1,plant,world",
		"d2": "audit,munich,not-line1,plant,world",
		"d3": "audit,berlin,line1,plant,world",
		"d4": "audit,munich,plant,world",
	}
	for d, want := range wantGroups {
		if got := strings.Join(m.GroupsOf(d), ","); got != want {
			t.Errorf("GroupsOf(%s) = %q, want %q", d, got, want)
		}
	}
	if m.Members("nope") != nil || m.GroupsOf("nope") != nil {
		t.Error("unknown names resolved to something")
	}
	if got := strings.Join(m.Groups(), ","); got != "audit,berlin,empty,line1,munich,not-line1,plant,world" {
		t.Errorf("Groups() = %s", got)
	}
}

func TestResolveErrors(t *testing.T) {
	if _, err := Resolve(nil, []Group{{Name: "a", Includes: []string{"missing"}}}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("include of unknown group: %v", err)
	}
	if _, err := Resolve(nil, []Group{{Name: "a", Selector: "x="}}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "group a") {
		t.Errorf("bad selector: %v", err)
	}
	if _, err := Resolve(nil, []Group{{Name: "a"}, {Name: "a"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("duplicate group: %v", err)
	}
}

// TestResolveMatchesNaive checks the indexed, memoized resolution against a
// direct transcription of the definition on random fleets.
func TestResolveMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		devices, groups := randomFleet(r, 200, 40)
		m, err := Resolve(devices, groups)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		byName := map[string]Group{}
		for _, g := range groups {
			byName[g.Name] = g
		}
		var naive func(g Group) map[string]bool
		naive = func(g Group) map[string]bool {
			set := map[string]bool{}
			for _, id := range g.Devices {
				set[id] = true
			}
			sel := MustParseSelector(g.Selector)
			for _, d := range devices {
				if sel.Matches(d.Labels) {
					set[d.ID] = true
				}
			}
			for _, c := range g.Includes {
				for id := range naive(byName[c]) {
					set[id] = true
				}
			}
			return set
		}
		for _, g := range groups {
			var want []string
			for id := range naive(g) {
				want = append(want, id)
			}
			slices.Sort(want)
			if got := m.Members(g.Name); !slices.Equal(got, want) {
				t.Fatalf("round %d: Members(%s) = %v, want %v", round, g.Name, got, want)
			}
			for _, id := range want {
				if !slices.Contains(m.GroupsOf(id), g.Name) {
					t.Fatalf("round %d: GroupsOf(%s) lacks %s", round, id, g.Name)
				}
			}
		}
	}
}

// randomFleet makes n devices with a few labels and g groups with direct
// members, selectors and includes that only point to later groups (no cycles).
func randomFleet(r *rand.Rand, n, g int) ([]Device, []Group) {
	devices := make([]Device, n)
	for i := range devices {
		devices[i] = Device{
			ID: fmt.Sprintf("dev-%05d", i),
			Labels: map[string]string{
				"site": fmt.Sprintf("s%d", r.IntN(5)),
				"line": fmt.Sprintf("l%d", r.IntN(20)),
			},
		}
		if r.IntN(3) == 0 {
			devices[i].Labels["role"] = "plc"
		}
	}
	selectors := []string{"", "", "site=s1", "site=s2,line=l3", "role", "site=s0,!role", "line=l7,site!=s1"}
	groups := make([]Group, g)
	for i := range groups {
		gr := Group{Name: fmt.Sprintf("g%03d", i), Selector: selectors[r.IntN(len(selectors))]}
		for range r.IntN(4) {
			gr.Devices = append(gr.Devices, devices[r.IntN(n)].ID)
		}
		for range r.IntN(3) {
			if c := i + 1 + r.IntN(g); c < g {
				gr.Includes = append(gr.Includes, fmt.Sprintf("g%03d", c))
			}
		}
		groups[i] = gr
	}
	return devices, groups
}

func BenchmarkResolve(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	devices, groups := randomFleet(r, 10000, 500)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Resolve(devices, groups); err != nil {
			b.Fatal(err)
		}
	}
}
