package server

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
)

// A device flooding the controller with refused messages costs at most two
// audit rows (and SIEM lines) a minute: the first with its detail, then one
// summary with the count by kind and reason.
func TestRefusedMessagesSummarised(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "controller.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	var written atomic.Int32
	r := &refusals{db: db, now: func() time.Time { return now }, written: func() { written.Add(1) }}
	bad := fmt.Errorf("%w: not JSON", protocol.ErrMalformed)
	for i := range 1000 {
		kind := protocol.KindStatus
		if i%2 == 1 {
			kind = protocol.KindEvents
		}
		if err := r.add(ctx, "flooder", kind, bad); err != nil {
			t.Fatal(err)
		}
		now = now.Add(10 * time.Millisecond) // 1000 messages in 10 s
	}
	if err := r.add(ctx, "quiet", protocol.KindPresence, errors.New("wrong device id")); err != nil {
		t.Fatal(err)
	}
	entries := func() []store.AuditEntry {
		es, err := db.ListAudit(ctx, store.AuditFilter{Kind: store.AuditSecurity, Limit: 5000})
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	if es := entries(); len(es) != 2 {
		t.Fatalf("%d audit entries during the window, want 2 (the first of each device)", len(es))
	}
	// Before the window closes nothing more is written; after, one summary.
	if err := r.flush(ctx, false); err != nil || len(entries()) != 2 {
		t.Fatalf("flushed an open window: %v", err)
	}
	now = now.Add(refusalWindow)
	if err := r.flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	es := entries()
	if len(es) != 3 {
		t.Fatalf("%d audit entries after the window, want 3", len(es))
	}
	var summary string
	for _, e := range es {
		if e.Action == "device.messages-refused" {
			summary = e.Detail
		}
	}
	if !strings.Contains(summary, "999 more messages refused") || !strings.Contains(summary, "events/") || !strings.Contains(summary, "status/") {
		t.Errorf("summary %q; want the count and each kind", summary)
	}
	if written.Load() != 3 {
		t.Errorf("SIEM notified %d times, want 3", written.Load())
	}
	// A new window starts with a full entry again.
	if err := r.add(ctx, "flooder", protocol.KindStatus, bad); err != nil || len(entries()) != 4 {
		t.Fatalf("new window: %v, %d entries", err, len(entries()))
	}
}
