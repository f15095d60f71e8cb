package desired

import (
	"fmt"
	"testing"

	"github.com/edgewarden/edgewarden/controller/store"
)

// TestSideloadOverrides: the effective policy is the global one unless a
// group of the device (direct, by selector or nested) overrides it; deny
// wins when its groups disagree.
func TestSideloadOverrides(t *testing.T) {
	// press-01: berlin (selector), line-1 (selector), plant and corp
	// (nested). press-02: special (direct), plant and corp (nested).
	for _, tc := range []struct {
		name      string
		global    string
		overrides map[string]string
		want      map[string]string // device -> "allowed [groups]"
	}{
		{"default banned", "", nil, map[string]string{"press-01": "false []", "press-02": "false []"}},
		{"global allow", "allow", nil, map[string]string{"press-01": "true []", "press-02": "true []"}},
		{"direct member", "", map[string]string{"special": "allow"}, map[string]string{"press-01": "false []", "press-02": "true [special]"}},
		{"by selector", "deny", map[string]string{"line-1": "allow"}, map[string]string{"press-01": "true [line-1]", "press-02": "false []"}},
		{"nested", "", map[string]string{"corp": "allow"}, map[string]string{"press-01": "true [corp]", "press-02": "true [corp]"}},
		{"deny wins", "", map[string]string{"corp": "allow", "berlin": "deny", "line-1": "deny"},
			map[string]string{"press-01": "false [berlin line-1]", "press-02": "true [corp]"}},
		{"override bans under a global allow", "allow", map[string]string{"special": "deny"},
			map[string]string{"press-01": "true []", "press-02": "false [special]"}},
		{"override of a group without these devices", "", map[string]string{"ghost": "allow"}, map[string]string{"press-01": "false []", "press-02": "false []"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := fleetSnapshot()
			snap.Settings[SettingSideload] = tc.global
			for _, g := range []string{"berlin", "corp", "ghost", "line-1", "plant", "special"} {
				if p, ok := tc.overrides[g]; ok {
					snap.SideloadOverrides = append(snap.SideloadOverrides, store.SideloadOverride{Group: g, Policy: p})
				}
			}
			recs, err := newCompiler(&clock{t0}).Compile(snap)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				d := decode(t, r)
				got := fmt.Sprintf("%v %v", d.Sideload.Allowed, d.Sideload.Groups)
				if got != tc.want[r.DeviceID] {
					t.Errorf("%s: sideload %s, want %s", r.DeviceID, got, tc.want[r.DeviceID])
				}
			}
		})
	}
}

// TestSideloadOverrideBumpsRevision: an override reaches the device as a
// new revision, and removing it as another.
func TestSideloadOverrideBumpsRevision(t *testing.T) {
	c := newCompiler(&clock{t0})
	snap := fleetSnapshot()
	recs, err := c.Compile(snap)
	if err != nil {
		t.Fatal(err)
	}
	apply(snap, recs)
	snap.SideloadOverrides = []store.SideloadOverride{{Group: "special", Policy: store.SideloadAllow}}
	recs, err = c.Compile(snap)
	if err != nil || len(recs) != 1 || recs[0].DeviceID != "press-02" || recs[0].Revision != 2 || !decode(t, recs[0]).Sideload.Allowed {
		t.Fatalf("after the override: %+v %v", recs, err)
	}
	apply(snap, recs)
	snap.SideloadOverrides = nil
	recs, err = c.Compile(snap)
	if err != nil || len(recs) != 1 || recs[0].Revision != 3 || decode(t, recs[0]).Sideload.Allowed {
		t.Fatalf("after removing it: %+v %v", recs, err)
	}
}
