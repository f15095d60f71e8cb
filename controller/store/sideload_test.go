package store

import (
	"context"
	"testing"

	"github.com/edgewarden/edgewarden/protocol"
)

func TestSideloadOverrides(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustGroup(t, db, "line-1", "")
	mustGroup(t, db, "line-2", "")

	o, err := db.SetSideloadOverride(ctx, SideloadOverride{Group: "line-1", Policy: SideloadAllow, SetBy: "sec", SetAt: t0})
	if err != nil || o.Policy != SideloadAllow || !o.SetAt.Equal(t0) {
		t.Fatalf("set: %+v %v", o, err)
	}
	if _, err := db.SetSideloadOverride(ctx, SideloadOverride{Group: "line-2", Policy: SideloadDeny, SetBy: "sec"}); err != nil {
		t.Fatal(err)
	}
	// Replacing an override.
	if _, err := db.SetSideloadOverride(ctx, SideloadOverride{Group: "line-1", Policy: SideloadDeny, SetBy: "bob", SetAt: t0}); err != nil {
		t.Fatal(err)
	}
	snap, err := db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.SideloadOverrides) != 2 || snap.SideloadOverrides[0].Group != "line-1" || snap.SideloadOverrides[0].Policy != SideloadDeny || snap.SideloadOverrides[0].SetBy != "bob" {
		t.Fatalf("snapshot overrides: %+v", snap.SideloadOverrides)
	}

	// Bad input changes nothing.
	unchanged(t, db, ErrInvalid, func() error {
		_, err := db.SetSideloadOverride(ctx, SideloadOverride{Group: "line-1", Policy: "maybe"})
		return err
	}, "maybe")
	unchanged(t, db, ErrNotFound, func() error {
		_, err := db.SetSideloadOverride(ctx, SideloadOverride{Group: "nope", Policy: SideloadAllow})
		return err
	}, "nope")
	unchanged(t, db, ErrNotFound, func() error {
		_, err := db.DeleteSideloadOverride(ctx, "nope")
		return err
	}, "nope")

	had, err := db.DeleteSideloadOverride(ctx, "line-2")
	if err != nil || !had {
		t.Fatalf("delete: %v %v", had, err)
	}
	if had, err = db.DeleteSideloadOverride(ctx, "line-2"); err != nil || had {
		t.Fatalf("delete again: %v %v", had, err)
	}
	// Deleting the group deletes its override: a new group of that name
	// starts without one.
	if err := db.DeleteGroup(ctx, "line-1"); err != nil {
		t.Fatal(err)
	}
	mustGroup(t, db, "line-1", "")
	if os, err := db.ListSideloadOverrides(ctx); err != nil || len(os) != 0 {
		t.Fatalf("overrides after the group was deleted: %+v %v", os, err)
	}
}

func TestSecurityAfter(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustEnroll(t, db, "d1", nil)
	evs := []protocol.Event{
		{ID: "a", At: t0, Kind: "sideload_blocked", Severity: "security", Message: "x"},
		{ID: "b", At: t0, Kind: "apply", Severity: "info", Message: "y"},
		{ID: "c", At: t0, Kind: "quarantined", Severity: "security", Message: "z", Details: map[string]string{"app": "w"}},
	}
	if _, err := db.RecordEvents(ctx, "d1", evs); err != nil {
		t.Fatal(err)
	}
	got, err := db.SecurityEventsAfter(ctx, 0, 0)
	if err != nil || len(got) != 2 || got[0].ID != "a" || got[1].ID != "c" || got[1].Details["app"] != "w" || got[1].DeviceID != "d1" {
		t.Fatalf("security events: %+v %v", got, err)
	}
	if rest, err := db.SecurityEventsAfter(ctx, got[0].Seq, 0); err != nil || len(rest) != 1 || rest[0].ID != "c" {
		t.Fatalf("after the first: %+v %v", rest, err)
	}
	for _, k := range []string{AuditChange, AuditSecurity, AuditSecurity} {
		if _, err := db.AppendAudit(ctx, AuditEntry{Actor: "a", Action: "x", Kind: k}); err != nil {
			t.Fatal(err)
		}
	}
	es, err := db.AuditAfter(ctx, 0, AuditSecurity, 0)
	if err != nil || len(es) != 2 || es[0].ID >= es[1].ID {
		t.Fatalf("security audit: %+v %v", es, err)
	}
	if es, err := db.AuditAfter(ctx, es[0].ID, AuditSecurity, 0); err != nil || len(es) != 1 {
		t.Fatalf("after the first: %+v %v", es, err)
	}
}
