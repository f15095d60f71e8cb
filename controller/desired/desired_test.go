package desired

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func testKey(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

func newCompiler(clk *clock) *Compiler {
	return New(Options{Key: testKey(1), TTL: 24 * time.Hour, Now: clk.now})
}

func trusted(key ed25519.PrivateKey) map[string]ed25519.PublicKey {
	pub := key.Public().(ed25519.PublicKey)
	return map[string]ed25519.PublicKey{protocol.KeyID(pub): pub}
}

func fleetSnapshot() *store.Snapshot {
	return &store.Snapshot{
		Devices: []store.Device{
			{ID: "press-01", State: store.DeviceActive, Labels: map[string]string{"site": "berlin", "line": "1"}},
			{ID: "press-02", State: store.DeviceActive, Labels: map[string]string{"site": "munich"}},
			{ID: "waiting", State: store.DevicePending, Labels: map[string]string{"site": "berlin"}},
		},
		Groups: []store.Group{
			{Name: "berlin", Selector: "site=berlin"},
			{Name: "line-1", Selector: "site=berlin,line=1"},
			{Name: "plant", Includes: []string{"berlin", "special"}},
			{Name: "special", Devices: []string{"press-02"}},
			{Name: "corp", Includes: []string{"plant"}},
		},
		Settings: map[string]string{"banner": "Authorized use only"},
		Desired:  map[string]store.DesiredRecord{},
	}
}

// apply stores recs into snap.Desired, as PutDesired would.
func apply(snap *store.Snapshot, recs []store.DesiredRecord) {
	for _, r := range recs {
		snap.Desired[r.DeviceID] = r
	}
}

func decode(t *testing.T, rec store.DesiredRecord) *protocol.DesiredState {
	t.Helper()
	env, err := protocol.DecodeEnvelope(rec.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	var d protocol.DesiredState
	if err := json.Unmarshal(env.Payload, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

func TestCompileFirstDocuments(t *testing.T) {
	clk := &clock{t0}
	c := newCompiler(clk)
	snap := fleetSnapshot()
	recs, err := c.Compile(snap)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].DeviceID != "press-01" || recs[1].DeviceID != "press-02" {
		t.Fatalf("records for %+v, want press-01 and press-02 (the pending device gets nothing)", recs)
	}
	wantGroups := map[string][]string{
		"press-01": {"berlin", "corp", "line-1", "plant"},
		"press-02": {"corp", "plant", "special"},
	}
	for _, r := range recs {
		d, verdict, err := protocol.CheckDesired(r.Envelope, protocol.CheckOptions{DeviceID: r.DeviceID, Keys: trusted(testKey(1)), Now: t0.Add(time.Minute)})
		if err != nil || verdict != protocol.Apply {
			t.Fatalf("CheckDesired(%s) = %v, %v", r.DeviceID, verdict, err)
		}
		if d.Revision != 1 || r.Revision != 1 || !d.IssuedAt.Equal(t0) || !d.ExpiresAt.Equal(t0.Add(24*time.Hour)) ||
			!r.IssuedAt.Equal(t0) || !r.ExpiresAt.Equal(d.ExpiresAt) || r.Digest != d.ContentDigest() {
			t.Fatalf("document %+v / record %+v", d, r)
		}
		if !reflect.DeepEqual(d.Groups, wantGroups[r.DeviceID]) {
			t.Errorf("%s groups %v, want %v", r.DeviceID, d.Groups, wantGroups[r.DeviceID])
		}
		if d.Schema != protocol.Schema || d.Banner != "Authorized use only" || d.Sideload.Allowed || len(d.Apps) != 0 {
			t.Errorf("%s document %+v", r.DeviceID, d)
		}
		// The document is for this device only.
		if _, _, err := protocol.CheckDesired(r.Envelope, protocol.CheckOptions{DeviceID: "other", Keys: trusted(testKey(1)), Now: t0}); !errors.Is(err, protocol.ErrWrongDevice) {
			t.Errorf("document of %s accepted by another device: %v", r.DeviceID, err)
		}
		// And only under the controller key.
		if _, _, err := protocol.CheckDesired(r.Envelope, protocol.CheckOptions{DeviceID: r.DeviceID, Keys: trusted(testKey(2)), Now: t0}); !errors.Is(err, protocol.ErrSignature) {
			t.Errorf("document of %s accepted under another key: %v", r.DeviceID, err)
		}
	}
	if got := decode(t, recs[0]).Labels; !reflect.DeepEqual(got, map[string]string{"site": "berlin", "line": "1"}) {
		t.Errorf("labels %v", got)
	}
}

func TestCompileRevisionsFollowContent(t *testing.T) {
	clk := &clock{t0}
	c := newCompiler(clk)
	snap := fleetSnapshot()
	first, err := c.Compile(snap)
	if err != nil {
		t.Fatal(err)
	}
	apply(snap, first)

	// Nothing changed, nothing close to expiry: nothing to do.
	clk.t = t0.Add(time.Hour)
	if recs, err := c.Compile(snap); err != nil || len(recs) != 0 {
		t.Fatalf("unchanged fleet compiled to %d records, %v", len(recs), err)
	}

	// A label change that moves press-02 into berlin changes only its document.
	snap.Devices[1].Labels = map[string]string{"site": "berlin"}
	recs, err := c.Compile(snap)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].DeviceID != "press-02" || recs[0].Revision != 2 || !recs[0].IssuedAt.Equal(clk.t) {
		t.Fatalf("after label change: %+v", recs)
	}
	if d := decode(t, recs[0]); !reflect.DeepEqual(d.Groups, []string{"berlin", "corp", "plant", "special"}) {
		t.Fatalf("groups after label change: %v", d.Groups)
	}
	applied := protocol.Applied{Revision: 1, ContentDigest: first[1].Digest, IssuedAt: first[1].IssuedAt}
	if _, v, err := protocol.CheckDesired(recs[0].Envelope, protocol.CheckOptions{DeviceID: "press-02", Keys: trusted(testKey(1)), Applied: applied, Now: clk.t}); err != nil || v != protocol.Apply {
		t.Fatalf("agent on revision 1 takes revision 2: %v, %v", v, err)
	}
	apply(snap, recs)

	// A banner change reaches every active device with a new revision.
	snap.Settings["banner"] = "New banner"
	recs, err = c.Compile(snap)
	if err != nil || len(recs) != 2 || recs[0].Revision != 2 || recs[1].Revision != 3 {
		t.Fatalf("after banner change: %+v, %v", recs, err)
	}
	apply(snap, recs)

	// Deleted: no document. Re-enrolled with other labels: the kept record
	// makes the revision continue from 3.
	dev := snap.Devices[1]
	snap.Devices = slices.Delete(snap.Devices, 1, 2)
	if recs, _ = c.Compile(snap); len(recs) != 0 {
		t.Fatalf("deleted device compiled: %+v", recs)
	}
	dev.Labels = map[string]string{"site": "hamburg"}
	snap.Devices = append(snap.Devices, dev)
	recs, _ = c.Compile(snap)
	if len(recs) != 1 || recs[0].DeviceID != "press-02" || recs[0].Revision != 4 {
		t.Fatalf("re-enrolled device: %+v", recs)
	}
}

func TestCompileRefresh(t *testing.T) {
	clk := &clock{t0}
	c := newCompiler(clk) // TTL 24h, refresh 8h before expiry
	snap := fleetSnapshot()
	first, _ := c.Compile(snap)
	apply(snap, first)

	clk.t = t0.Add(16*time.Hour - time.Second)
	if recs, _ := c.Compile(snap); len(recs) != 0 {
		t.Fatalf("refreshed %d documents before RefreshBefore", len(recs))
	}
	if next := c.NextRefresh(snap); !next.Equal(t0.Add(16 * time.Hour)) {
		t.Fatalf("NextRefresh = %s, want %s", next, t0.Add(16*time.Hour))
	}
	clk.t = t0.Add(16*time.Hour + time.Second)
	recs, err := c.Compile(snap)
	if err != nil || len(recs) != 2 {
		t.Fatalf("refresh: %d records, %v", len(recs), err)
	}
	for i, r := range recs {
		old := first[i]
		if r.Revision != old.Revision || r.Digest != old.Digest || !r.IssuedAt.Equal(clk.t) || !r.ExpiresAt.Equal(clk.t.Add(24*time.Hour)) {
			t.Fatalf("refresh of %s: %+v (was %+v)", r.DeviceID, r, old)
		}
		applied := protocol.Applied{Revision: old.Revision, ContentDigest: old.Digest, IssuedAt: old.IssuedAt}
		_, v, err := protocol.CheckDesired(r.Envelope, protocol.CheckOptions{DeviceID: r.DeviceID, Keys: trusted(testKey(1)), Applied: applied, Now: clk.t})
		if err != nil || v != protocol.Refresh {
			t.Fatalf("agent takes the refresh of %s as %v, %v; want refresh", r.DeviceID, v, err)
		}
	}
	apply(snap, recs)
	if next := c.NextRefresh(snap); !next.Equal(clk.t.Add(16 * time.Hour)) {
		t.Fatalf("NextRefresh after refresh = %s", next)
	}
	// A clock that went back does not produce a refresh agents would refuse.
	clk.t = t0
	snap.Desired["press-01"] = store.DesiredRecord{DeviceID: "press-01", Revision: 1, Digest: first[0].Digest, IssuedAt: t0.Add(time.Hour), ExpiresAt: t0.Add(2 * time.Hour), Envelope: first[0].Envelope}
	if recs, _ := c.Compile(snap); len(recs) != 0 {
		t.Fatalf("refresh with an issue time not after the stored one: %+v", recs)
	}
}

func TestNextRefresh(t *testing.T) {
	clk := &clock{t0}
	c := newCompiler(clk)
	if next := c.NextRefresh(&store.Snapshot{Devices: []store.Device{{ID: "p", State: store.DevicePending}}}); !next.IsZero() {
		t.Fatalf("NextRefresh without active devices = %s, want zero", next)
	}
	if next := c.NextRefresh(fleetSnapshot()); !next.Equal(t0) {
		t.Fatalf("NextRefresh with an uncompiled device = %s, want now", next)
	}
}

func TestCompileRefusesCycle(t *testing.T) {
	c := newCompiler(&clock{t0})
	snap := fleetSnapshot()
	snap.Groups[4].Includes = []string{"plant", "corp"}
	if _, err := c.Compile(snap); !errors.Is(err, ErrNoMembership) {
		t.Fatalf("Compile with a cycle = %v, want ErrNoMembership", err)
	}
}

func TestSideloadSetting(t *testing.T) {
	c := newCompiler(&clock{t0})
	snap := fleetSnapshot()
	snap.Settings[SettingSideload] = "allow"
	recs, err := c.Compile(snap)
	if err != nil || !decode(t, recs[0]).Sideload.Allowed {
		t.Fatalf("sideload allow not in document: %v", err)
	}
}

func TestNewDefaults(t *testing.T) {
	c := New(Options{Key: testKey(1)})
	if c.ttl != 24*time.Hour || c.refreshBefore != 8*time.Hour || c.now == nil {
		t.Fatalf("defaults %+v", c)
	}
	for _, o := range []Options{{}, {Key: testKey(1), TTL: time.Hour, RefreshBefore: time.Hour}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%+v) did not panic", o)
				}
			}()
			New(o)
		}()
	}
}

// benchSnapshot makes n active devices and 500 groups (selectors on site and
// line, direct members, and two levels of includes).
func benchSnapshot(n int) *store.Snapshot {
	snap := &store.Snapshot{Settings: map[string]string{"banner": "Authorized use only"}, Desired: map[string]store.DesiredRecord{}}
	for i := range n {
		snap.Devices = append(snap.Devices, store.Device{
			ID:    fmt.Sprintf("dev-%05d", i),
			State: store.DeviceActive,
			Labels: map[string]string{
				"site": fmt.Sprintf("site-%d", i%10),
				"line": fmt.Sprintf("line-%d", i%50),
			},
		})
	}
	for g := range 500 {
		grp := store.Group{Name: fmt.Sprintf("group-%03d", g)}
		switch {
		case g < 50:
			grp.Selector = fmt.Sprintf("site=site-%d,line=line-%d", g%10, g)
		case g < 450:
			for k := range 20 {
				grp.Devices = append(grp.Devices, fmt.Sprintf("dev-%05d", (g*37+k*101)%n))
			}
		default:
			grp.Includes = []string{fmt.Sprintf("group-%03d", g-450), fmt.Sprintf("group-%03d", g-400)}
		}
		snap.Groups = append(snap.Groups, grp)
	}
	return snap
}

// BenchmarkCompile compiles and signs every document of the fleet (no
// stored records, so every device gets a new revision 1).
//
//	go test ./controller/desired -run '^$' -bench Compile -cpu 1
func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			snap := benchSnapshot(n)
			c := New(Options{Key: testKey(1)})
			for b.Loop() {
				recs, err := c.Compile(snap)
				if err != nil {
					b.Fatal(err)
				}
				if len(recs) != n {
					b.Fatalf("%d records, want %d", len(recs), n)
				}
			}
		})
	}
}

func TestParallelSigningMatchesSequential(t *testing.T) {
	snap := benchSnapshot(700)
	clk := &clock{t0}
	seq, err := New(Options{Key: testKey(1), Now: clk.now, Workers: 1}).Compile(snap)
	if err != nil {
		t.Fatal(err)
	}
	par, err := New(Options{Key: testKey(1), Now: clk.now, Workers: 4}).Compile(snap)
	if err != nil {
		t.Fatal(err)
	}
	if len(seq) != 700 || !reflect.DeepEqual(seq, par) {
		t.Fatalf("parallel signing gave other records (%d vs %d)", len(par), len(seq))
	}
	for i := 1; i < len(par); i++ {
		if par[i-1].DeviceID >= par[i].DeviceID {
			t.Fatalf("records out of device order at %d", i)
		}
	}
}

// A controller restored from an older backup knows older revisions than
// its devices applied: it must continue above what each device reports, or
// every device refuses its documents as replays.
func TestCompileAfterRestoreContinuesAboveApplied(t *testing.T) {
	clk := &clock{t0}
	c := newCompiler(clk)
	snap := fleetSnapshot()
	apply(snap, mustCompile(t, c, snap))
	snap.Devices[0].AppliedRevision = 7 // press-01 ran a newer controller's revision 7
	clk.t = clk.t.Add(time.Minute)
	recs := mustCompile(t, c, snap)
	if len(recs) != 1 || recs[0].DeviceID != "press-01" || recs[0].Revision != 8 {
		t.Fatalf("after restore: %+v", recs)
	}
	_, v, err := protocol.CheckDesired(recs[0].Envelope, protocol.CheckOptions{DeviceID: "press-01", Keys: trusted(testKey(1)),
		Applied: protocol.Applied{Revision: 7}, Now: clk.t})
	if err != nil || v != protocol.Apply {
		t.Fatalf("the device would not take it: %v %v", v, err)
	}
}

func mustCompile(t *testing.T, c *Compiler, snap *store.Snapshot) []store.DesiredRecord {
	t.Helper()
	recs, err := c.Compile(snap)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
