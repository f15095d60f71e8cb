package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/protocol"
)

func audit(action string) AuditEntry {
	return AuditEntry{Actor: "admin", Action: action, Kind: AuditChange}
}

// TestChangeAllOrNothing: a change's writes, audit entry, sequence bump and
// dirty marks commit together; a failing step, a missing audit entry or a
// nested change leaves nothing, and a failed store call inside a change that
// goes on leaves nothing of itself (savepoint).
func TestChangeAllOrNothing(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustEnroll(t, db, "d1", map[string]string{"site": "a"})
	mustEnroll(t, db, "d2", nil)

	boom := errors.New("boom")
	unchanged(t, db, boom, func() error {
		_, err := db.Change(ctx, audit("group.create"), func(ctx context.Context, c *Change) error {
			if _, err := db.CreateGroup(ctx, "g", ""); err != nil {
				return err
			}
			c.DirtyAll()
			return boom
		})
		return err
	})
	unchanged(t, db, ErrInvalid, func() error {
		_, err := db.Change(ctx, AuditEntry{Action: "group.create", Kind: AuditChange}, func(ctx context.Context, c *Change) error {
			_, err := db.CreateGroup(ctx, "g", "")
			return err
		})
		return err
	}, "actor")
	unchanged(t, db, ErrInvalid, func() error {
		_, err := db.Change(ctx, audit("group.create"), func(ctx context.Context, c *Change) error {
			if _, err := db.CreateGroup(ctx, "g", ""); err != nil {
				return err
			}
			c.Audit.Kind = "gossip" // an entry that cannot be written fails the change
			return nil
		})
		return err
	})
	if _, err := db.Change(ctx, audit("x"), func(ctx context.Context, c *Change) error {
		_, err := db.Change(ctx, audit("y"), func(context.Context, *Change) error { return nil })
		return err
	}); err == nil {
		t.Fatal("a change started inside another")
	}

	// One change: a group by selector (d1) and d2 added; a failed call in
	// between (unknown device) leaves nothing of itself.
	got, err := db.Change(ctx, audit("group.create"), func(ctx context.Context, c *Change) error {
		if _, err := db.CreateGroup(ctx, "g", "site=a"); err != nil {
			return err
		}
		if _, err := db.AddGroupDevices(ctx, "g", []string{"d2", "nope"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("adding an unknown device: %v", err)
		}
		// It reads its own writes.
		if g, err := db.GetGroup(ctx, "g"); err != nil || len(g.Devices) != 0 {
			t.Errorf("inside the change: %+v, %v", g, err)
		}
		return c.DirtyGroups(ctx, "g")
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 1 || got.Audit.Seq != 1 || got.Audit.ID == 0 {
		t.Fatalf("committed %+v", got)
	}
	d, err := db.Dirty(ctx)
	if err != nil || d.All || !slices.Equal(sortedKeys(d.Devices), []string{"d1"}) || d.Seq != 1 {
		t.Fatalf("dirty %+v, %v; want d1 at 1", d, err)
	}

	// Removing d1 from the group's selector marks it (a member before the
	// change) although it is no member after.
	if _, err := db.Change(ctx, audit("group.delete"), func(ctx context.Context, c *Change) error {
		if err := c.DirtyGroups(ctx, "g"); err != nil {
			return err
		}
		return db.DeleteGroup(ctx, "g")
	}); err != nil {
		t.Fatal(err)
	}
	if seq, _ := db.ChangeSeq(ctx); seq != 2 {
		t.Fatalf("sequence %d, want 2", seq)
	}
	snap, err := db.Snapshot(ctx)
	if err != nil || snap.Seq != 2 || !snap.Dirty.Has("d1") || snap.Dirty.Has("d2") || snap.Dirty.Seq != 2 {
		t.Fatalf("snapshot seq %d dirty %+v, %v", snap.Seq, snap.Dirty, err)
	}

	// A compile clears the marks it covered, not a later change's.
	if _, err := db.Change(ctx, audit("device.label"), func(ctx context.Context, c *Change) error {
		c.DirtyDevices("d2")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutCompiled(ctx, nil, snap.Dirty.Seq); err != nil {
		t.Fatal(err)
	}
	d, _ = db.Dirty(ctx)
	if !slices.Equal(sortedKeys(d.Devices), []string{"d2"}) {
		t.Fatalf("after compile: dirty %+v, want d2 only", d)
	}
	es, _ := db.ListAudit(ctx, AuditFilter{})
	if len(es) != 3 || es[0].Seq != 3 || es[2].Seq != 1 {
		t.Fatalf("audit %+v", es)
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestPublishedState: a stored record waits until the broker acknowledges
// exactly it; a reconnect forgets every acknowledgement; a device that
// keeps reporting another revision than the acknowledged one past the grace
// is published again, unless it rejected that revision; a deleted device's
// retained document is to be cleared.
func TestPublishedState(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustEnroll(t, db, "d1", nil)
	mustEnroll(t, db, "d2", nil)
	t1 := t0.Add(time.Hour)
	rec := func(id string, rev uint64, at time.Time) DesiredRecord {
		return DesiredRecord{DeviceID: id, Revision: rev, Digest: fmt.Sprint("digest-", rev), IssuedAt: at, ExpiresAt: at.Add(time.Hour), Envelope: []byte("{}")}
	}
	waiting := func(want ...string) {
		t.Helper()
		rs, err := db.Unpublished(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rs {
			got = append(got, fmt.Sprintf("%s@%d", r.DeviceID, r.Revision))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("unpublished %v, want %v", got, want)
		}
	}
	if err := db.PutDesired(ctx, []DesiredRecord{rec("d1", 1, t0), rec("d2", 1, t0)}); err != nil {
		t.Fatal(err)
	}
	waiting("d1@1", "d2@1")
	// d2's record is replaced before the acknowledgement of the old one is
	// recorded: the new one still waits.
	if err := db.PutDesired(ctx, []DesiredRecord{rec("d2", 2, t1)}); err != nil {
		t.Fatal(err)
	}
	// Records the caller holds are used only when they are what is
	// stored: d1's held envelope is, d2's held one (revision 1) is stale.
	held := map[string]DesiredRecord{"d1": rec("d1", 1, t0), "d2": rec("d2", 1, t0)}
	h1 := held["d1"]
	h1.Envelope = []byte(`{"held":1}`)
	held["d1"] = h1
	h2 := held["d2"]
	h2.Envelope = []byte(`{"stale":1}`)
	held["d2"] = h2
	rs, err := db.Unpublished(ctx, held)
	if err != nil || len(rs) != 2 {
		t.Fatalf("Unpublished with held records: %+v, %v", rs, err)
	}
	if string(rs[0].Envelope) != `{"held":1}` || string(rs[1].Envelope) != "{}" || rs[1].Revision != 2 {
		t.Fatalf("Unpublished with held records: d1 %s, d2@%d %s; want d1's held envelope and d2's stored one", rs[0].Envelope, rs[1].Revision, rs[1].Envelope)
	}
	if err := db.MarkPublished(ctx, []Published{{"d1", 1, t0}, {"d2", 1, t0}}, t0); err != nil {
		t.Fatal(err)
	}
	waiting("d2@2")
	if err := db.MarkPublished(ctx, []Published{{"d2", 2, t1}}, t1); err != nil {
		t.Fatal(err)
	}
	waiting()
	if rev, ok, err := db.PublishedRevision(ctx, "d2"); err != nil || !ok || rev != 2 {
		t.Fatalf("published revision of d2: %d %v %v", rev, ok, err)
	}

	// A broker reconnect: everything again.
	if err := db.ForgetPublished(ctx); err != nil {
		t.Fatal(err)
	}
	waiting("d1@1", "d2@2")
	if err := db.MarkPublished(ctx, []Published{{"d1", 1, t0}, {"d2", 2, t1}}, t1); err != nil {
		t.Fatal(err)
	}

	// d1 is online and still reports revision 0; d2 rejected revision 2.
	rejected := &protocol.Rejection{Revision: 2, Reason: "expired", Message: "expired"}
	if err := db.RecordStatus(ctx, []StatusUpdate{
		{DeviceID: "d1", At: t1, Report: protocol.StatusReport{Seq: 1, AppliedRevision: 0}},
		{DeviceID: "d2", At: t1, Report: protocol.StatusReport{Seq: 1, AppliedRevision: 1, LastRejected: rejected}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordPresences(ctx, []PresenceUpdate{{DeviceID: "d1", Online: true, At: t1}, {DeviceID: "d2", Online: true, At: t1}}); err != nil {
		t.Fatal(err)
	}
	if ids, err := db.RepublishDrifting(ctx, t1); err != nil || len(ids) != 0 {
		t.Fatalf("within the grace: %v %v", ids, err)
	}
	ids, err := db.RepublishDrifting(ctx, t1.Add(time.Minute))
	if err != nil || !slices.Equal(ids, []string{"d1"}) {
		t.Fatalf("drifting %v, %v; want d1 (d2 rejected the revision)", ids, err)
	}
	waiting("d1@1")

	// A deleted device's retained document is to be cleared, once.
	if err := db.DeleteDevice(ctx, "d2"); err != nil {
		t.Fatal(err)
	}
	if stale, err := db.StaleRetained(ctx); err != nil || !slices.Equal(stale, []string{"d2"}) {
		t.Fatalf("stale %v, %v", stale, err)
	}
	if err := db.MarkCleared(ctx, "d2"); err != nil {
		t.Fatal(err)
	}
	if stale, _ := db.StaleRetained(ctx); len(stale) != 0 {
		t.Fatalf("stale after clearing: %v", stale)
	}
}
