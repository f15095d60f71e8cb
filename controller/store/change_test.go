package store

import (
	"context"
	"errors"
	"slices"
	"testing"
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
