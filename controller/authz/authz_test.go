package authz

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol/access"
)

type fakeSource struct {
	snap  atomic.Pointer[store.Snapshot]
	reads atomic.Int64
	err   error
}

func (f *fakeSource) AccessSnapshot(context.Context) (*store.Snapshot, error) {
	f.reads.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	return f.snap.Load(), nil
}

func (f *fakeSource) ChangeSeq(context.Context) (uint64, error) {
	if f.err != nil {
		return 0, f.err
	}
	return f.snap.Load().Seq, nil
}

func grant(id, user, role string, scope access.Scope) store.Grant {
	return store.Grant{Grant: access.Grant{ID: id, Subject: access.UserSubject(user), Role: role, Scope: scope}}
}

func smallSnapshot() *store.Snapshot {
	return &store.Snapshot{
		Devices: []store.Device{
			{ID: "d1", State: store.DeviceActive, Labels: map[string]string{"line": "1"}},
			{ID: "d2", State: store.DeviceActive},
		},
		Groups: []store.Group{
			{Name: "line-1", Selector: "line=1"},
			{Name: "cell", Devices: []string{"d2"}},
			{Name: "plant", Includes: []string{"line-1"}},
		},
		Users:  []store.User{{Name: "bob", State: store.UserActive}, {Name: "eve", State: store.UserInvited}},
		Grants: []store.Grant{grant("g-1", "bob", access.RoleViewer, access.GroupScope("plant")), grant("g-2", "eve", access.RoleAdmin, access.Global())},
	}
}

func TestViewAncestry(t *testing.T) {
	snap := smallSnapshot()
	m, err := snap.Membership()
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewView(snap, m)
	if err != nil {
		t.Fatal(err)
	}
	d := v.Decide("bob", access.DeviceView, v.Device("d1"))
	if !d.Allowed || d.String() != "allowed: grant g-1 to user bob → role viewer → scope device-group plant → via group plant ⊃ group line-1 ⊃ device d1" {
		t.Fatalf("d1: %s", d)
	}
	if v.Allowed("bob", access.DeviceView, v.Device("d2")) {
		t.Fatal("bob sees d2, which is not in plant")
	}
	if v.Allowed("eve", access.DeviceView, v.Device("d1")) {
		t.Fatal("invited eve is allowed")
	}
	if !v.HasDevice("d1") || v.HasDevice("d9") || !v.HasGroup("cell") {
		t.Fatal("HasDevice/HasGroup")
	}
}

// TestAuthorizerFollowsChangeSequence: the view is rebuilt exactly when the
// store's change sequence moved, with no call from the writer.
func TestAuthorizerFollowsChangeSequence(t *testing.T) {
	ctx := context.Background()
	src := &fakeSource{}
	src.snap.Store(smallSnapshot())
	a := New(src, nil)
	v1, err := a.View(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v2, _ := a.View(ctx); v2 != v1 || src.reads.Load() != 1 {
		t.Fatalf("view rebuilt without a change (%d reads)", src.reads.Load())
	}
	next := smallSnapshot()
	next.Grants = nil
	next.Seq = 1
	src.snap.Store(next)
	v3, err := a.View(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v3.Allowed("bob", access.DeviceView, v3.Device("d1")) {
		t.Fatal("removed grant still allows")
	}
	// A failing source fails the request (closed) and is retried.
	src.err = errors.New("disk on fire")
	if _, err := a.View(ctx); err == nil {
		t.Fatal("no error from a failing source")
	}
	src.err = nil
	if _, err := a.View(ctx); err != nil {
		t.Fatal(err)
	}
}

// benchView is 10k devices in 500 groups (selectors, direct members, two
// levels of includes) and a user with 50 grants on groups and devices.
func benchView(b *testing.B) *View {
	const n = 10000
	snap := &store.Snapshot{}
	for i := range n {
		snap.Devices = append(snap.Devices, store.Device{ID: fmt.Sprintf("dev-%05d", i), State: store.DeviceActive,
			Labels: map[string]string{"site": fmt.Sprintf("site-%d", i%10), "line": fmt.Sprintf("line-%d", i%50)}})
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
	snap.Users = []store.User{{Name: "admin", State: store.UserActive}, {Name: "op", State: store.UserActive}}
	snap.Grants = []store.Grant{grant("g-admin", "admin", access.RoleAdmin, access.Global())}
	for k := range 50 {
		scope := access.GroupScope(fmt.Sprintf("group-%03d", 450+k))
		if k%5 == 0 {
			scope = access.DeviceScope(fmt.Sprintf("dev-%05d", k*97))
		}
		snap.Grants = append(snap.Grants, grant(fmt.Sprintf("g-%02d", k), "op", access.RoleOperator, scope))
	}
	m, err := snap.Membership()
	if err != nil {
		b.Fatal(err)
	}
	v, err := NewView(snap, m)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// BenchmarkAccessCheck is the controller's `access check` (and every API
// authorization): resolve the device's ancestry from the view and decide,
// for a user with 50 grants, over 10k devices in 500 groups.
//
//	go test ./controller/authz -run '^$' -bench . -cpu 1
func BenchmarkAccessCheck(b *testing.B) {
	v := benchView(b)
	r := rand.New(rand.NewPCG(1, 2))
	b.Run("allowed", func(b *testing.B) {
		for b.Loop() {
			v.Allowed("op", access.DeviceLogs, v.Device(fmt.Sprintf("dev-%05d", r.IntN(10000))))
		}
	})
	b.Run("decide+explain", func(b *testing.B) {
		allowed := 0
		for b.Loop() {
			if v.Decide("op", access.DeviceLogs, v.Device(fmt.Sprintf("dev-%05d", r.IntN(10000)))).Allowed {
				allowed++
			}
		}
		b.ReportMetric(float64(allowed)/float64(b.N), "allowed/op")
	})
	b.Run("list-10k", func(b *testing.B) { // devices ls: filter the whole fleet
		for b.Loop() {
			for i := range 10000 {
				v.Allowed("op", access.DeviceView, v.Device(fmt.Sprintf("dev-%05d", i)))
			}
		}
	})
}

// BenchmarkNewView is the rebuild after a change to users, roles, grants,
// devices or groups (from an already-read snapshot).
func BenchmarkNewView(b *testing.B) {
	for b.Loop() {
		benchView(b)
	}
}
