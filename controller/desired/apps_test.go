package desired

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
)

func appVersion(name, version, publisher string) store.AppVersion {
	return store.AppVersion{
		Name: name, Version: version, Publisher: publisher,
		// Odd spacing: the document must carry these exact bytes.
		Manifest:  []byte(`{"name": "` + name + `",  "version":"` + version + `"}`),
		Signature: []byte("sig of " + name + "@" + version + "\n"),
	}
}

func appsSnapshot() *store.Snapshot {
	snap := fleetSnapshot()
	snap.Publishers = []store.Publisher{{Name: "acme", Keys: []store.PublisherKey{
		{ID: "k1", PEM: "PEM1"},
		{ID: "k2", PEM: "PEM2", RemovedAt: t0}, // removed: must not reach devices
	}}}
	snap.AppVersions = []store.AppVersion{
		appVersion("web", "1.0.0", "acme"),
		appVersion("web", "1.2.0", "acme"),
		appVersion("web", "1.10.0-rc.1", "acme"), // assigned nowhere below
		appVersion("tool", "0.1.0", "gone"),      // publisher no longer trusted
	}
	snap.Assignments = []store.Assignment{
		{App: "tool", Version: "0.1.0", Group: "special"},
		{App: "web", Version: "1.0.0", Group: "plant"},
		{App: "web", Version: "1.2.0", Group: "line-1"},
	}
	return snap
}

func TestCompileApps(t *testing.T) {
	clk := &clock{t0}
	c := newCompiler(clk)
	snap := appsSnapshot()
	recs, err := c.Compile(snap)
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]*protocol.DesiredState{}
	for _, r := range recs {
		docs[r.DeviceID] = decode(t, r)
	}

	// press-01 is in line-1 (web 1.2.0) and plant (web 1.0.0): newest wins.
	d1 := docs["press-01"]
	if len(d1.Apps) != 1 || d1.Apps[0].Version != "1.2.0" {
		t.Fatalf("press-01 apps: %+v", d1.Apps)
	}
	want := appVersion("web", "1.2.0", "acme")
	if !bytes.Equal(d1.Apps[0].Manifest, want.Manifest) || !bytes.Equal(d1.Apps[0].Signature, want.Signature) || d1.Apps[0].Publisher != "acme" {
		t.Errorf("press-01 carries other manifest or signature bytes: %q %q", d1.Apps[0].Manifest, d1.Apps[0].Signature)
	}
	if !reflect.DeepEqual(d1.Publishers, []protocol.Publisher{{Name: "acme", Keys: []string{"PEM1"}}}) {
		t.Errorf("press-01 publishers: %+v", d1.Publishers)
	}

	// press-02 is in special (tool) and plant (web 1.0.0); tool's
	// publisher is not trusted: the app stays, its publisher does not.
	d2 := docs["press-02"]
	if len(d2.Apps) != 2 || d2.Apps[0].Name != "tool" || d2.Apps[1].Name != "web" || d2.Apps[1].Version != "1.0.0" {
		t.Fatalf("press-02 apps: %+v", d2.Apps)
	}
	if len(d2.Publishers) != 1 || d2.Publishers[0].Name != "acme" {
		t.Errorf("press-02 publishers: %+v", d2.Publishers)
	}
	apply(snap, recs)

	// Removing the last trusted key of acme changes both documents.
	snap.Publishers[0].Keys[0].RemovedAt = t0
	recs, err = c.Compile(snap)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d documents changed after a key removal, want 2", len(recs))
	}
	for _, r := range recs {
		d := decode(t, r)
		if len(d.Publishers) != 0 || len(d.Apps) == 0 || r.Revision != 2 {
			t.Errorf("%s after key removal: rev %d publishers %+v apps %d", r.DeviceID, r.Revision, d.Publishers, len(d.Apps))
		}
	}
	apply(snap, recs)

	// Unassigning everything empties Apps and Publishers.
	snap.Assignments = nil
	snap.Publishers[0].Keys[0].RemovedAt = t0.Add(-1)
	recs, _ = c.Compile(snap)
	for _, r := range recs {
		if d := decode(t, r); len(d.Apps) != 0 || len(d.Publishers) != 0 {
			t.Errorf("%s after unassign: %+v %+v", r.DeviceID, d.Apps, d.Publishers)
		}
	}
}

func TestAssignedVersions(t *testing.T) {
	as := []store.Assignment{
		{App: "web", Version: "1.9.0", Group: "a"},
		{App: "web", Version: "1.10.0", Group: "b"},
		{App: "web", Version: "2.0.0-rc.1", Group: "c"},
		{App: "db", Version: "3.0.0", Group: "z"},
	}
	for _, tc := range []struct {
		groups []string
		want   map[string]string
	}{
		{nil, nil},
		{[]string{"a"}, map[string]string{"web": "1.9.0"}},
		{[]string{"a", "b"}, map[string]string{"web": "1.10.0"}},
		{[]string{"a", "b", "c"}, map[string]string{"web": "2.0.0-rc.1"}},
		{[]string{"b", "z"}, map[string]string{"web": "1.10.0", "db": "3.0.0"}},
	} {
		if got := AssignedVersions(as, tc.groups); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("AssignedVersions(%v) = %v, want %v", tc.groups, got, tc.want)
		}
	}
}
