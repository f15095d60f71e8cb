package state_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/agent/state"
	"github.com/edgewarden/edgewarden/protocol"

	_ "modernc.org/sqlite"
)

func event(id, severity string, pad int) protocol.Event {
	return protocol.Event{ID: id, At: time.Unix(1700000000, 0).UTC(), Kind: "test", Severity: severity, Message: strings.Repeat("x", pad)}
}

// A full outbox drops the oldest info events first, then warnings, and
// security events only when nothing else is left; every drop is counted
// and reported once, with how many of each severity.
func TestOutboxBoundDropsLeastSevereOldestFirst(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "agent.db"))
	if err := s.SetOutboxLimit(1 << 10); err == nil {
		t.Fatal("a 1 KiB limit was accepted")
	}
	if err := s.SetOutboxLimit(state.MinOutboxLimit); err != nil {
		t.Fatal(err)
	}
	const pad = 10 << 10 // ~10 KiB per event: ~100 fit
	// 40 security, 40 warning, 40 info, interleaved, then 30 more info.
	for i := range 40 {
		for _, sev := range []string{"security", "warning", "info"} {
			if err := s.Enqueue(ctx, event(fmt.Sprintf("%s-%02d", sev, i), sev, pad)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 30 {
		if err := s.Enqueue(ctx, event(fmt.Sprintf("late-info-%02d", i), "info", pad)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Outbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes > state.MinOutboxLimit || st.Bytes < state.MinOutboxLimit-2*pad {
		t.Fatalf("outbox holds %d bytes, limit %d", st.Bytes, state.MinOutboxLimit)
	}
	if st.Dropped["security"] != 0 || st.Dropped["warning"] != 0 || st.Dropped["info"] == 0 {
		t.Fatalf("dropped %v: want only info", st.Dropped)
	}
	left, err := s.PendingEvents(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, ev := range left {
		count[ev.Severity]++
	}
	if count["security"] != 40 || count["warning"] != 40 {
		t.Fatalf("left %v: security and warning events were dropped before info", count)
	}
	if int64(count["info"])+st.Dropped["info"] != 70 || st.Events != len(left) {
		t.Fatalf("info left %d + dropped %d != 70 produced", count["info"], st.Dropped["info"])
	}
	// The oldest info events went first: the newest survive.
	if last := left[len(left)-1]; last.ID != "late-info-29" {
		t.Fatalf("newest event %s dropped", last.ID)
	}
	for _, ev := range left {
		if ev.ID == "info-00" {
			t.Fatal("oldest info event kept while newer ones were dropped")
		}
	}

	// Only security events left to drop: they go too, oldest first.
	for i := range 100 {
		if err := s.Enqueue(ctx, event(fmt.Sprintf("flood-%03d", i), "security", pad)); err != nil {
			t.Fatal(err)
		}
	}
	st, _ = s.Outbox(ctx)
	if st.Dropped["warning"] != 40 || st.Dropped["security"] == 0 {
		t.Fatalf("after a security flood dropped %v", st.Dropped)
	}

	// The report waits for room, then is queued once with the counts.
	if ok, err := s.ReportDrops(ctx, "report-1", time.Now()); err != nil || ok {
		t.Fatalf("report queued into a full outbox: %v %v", ok, err)
	}
	if _, err := s.DeleteRange(ctx, 0, 1<<62); err != nil {
		t.Fatal(err)
	}
	if st, _ = s.Outbox(ctx); st.Bytes != 0 || st.Events != 0 {
		t.Fatalf("emptied outbox: %+v", st)
	}
	if ok, err := s.ReportDrops(ctx, "report-1", time.Now()); err != nil || !ok {
		t.Fatalf("report not queued: %v %v", ok, err)
	}
	if ok, _ := s.ReportDrops(ctx, "report-2", time.Now()); ok {
		t.Fatal("the same drops reported twice")
	}
	evs, _ := s.PendingEvents(ctx, 10)
	if len(evs) != 1 || evs[0].Kind != state.EventOutboxOverflow || evs[0].Severity != "security" {
		t.Fatalf("report %+v", evs)
	}
	d := evs[0].Details
	if d["dropped_info"] != fmt.Sprint(st.Dropped["info"]) || d["dropped_warning"] != "40" || d["dropped_security"] != fmt.Sprint(st.Dropped["security"]) {
		t.Fatalf("report details %v, totals %v", d, st.Dropped)
	}
}

// Positions only grow, even after the newest entry was deleted, so an
// acknowledgement of an old range can never delete a newer event.
func TestOutboxPositionsNeverReused(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "agent.db"))
	for i := range 3 {
		s.Enqueue(ctx, event(fmt.Sprint("a", i), "info", 1))
	}
	if n, err := s.DeleteRange(ctx, 1, 3); err != nil || n != 3 {
		t.Fatalf("DeleteRange = %d, %v", n, err)
	}
	s.Enqueue(ctx, event("b", "info", 1))
	if n, _ := s.DeleteRange(ctx, 1, 3); n != 0 {
		t.Fatal("an old range deleted a new event")
	}
	e, err := s.Pending(ctx, 0, 10)
	if err != nil || len(e) != 1 || e[0].Pos != 4 {
		t.Fatalf("pending %+v %v", e, err)
	}
	if got, _ := s.Pending(ctx, 4, 10); len(got) != 0 {
		t.Fatalf("pending after 4: %+v", got)
	}
}

// A database of schema 1 with queued events gets sizes, ranks and the
// running total from migration 2.
func TestOutboxMigrationFromSchema1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "agent.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`,
		`INSERT INTO schema_migrations VALUES (1, '2026-11-22T00:00:00Z')`,
		`CREATE TABLE applied (id INTEGER PRIMARY KEY CHECK (id = 1), envelope BLOB NOT NULL, revision INTEGER NOT NULL, content_digest TEXT NOT NULL, issued_at TEXT NOT NULL, expires_at TEXT NOT NULL, applied_at TEXT NOT NULL)`,
		`CREATE TABLE trusted_keys (key_id TEXT PRIMARY KEY, algorithm TEXT NOT NULL, pem TEXT NOT NULL, revision INTEGER NOT NULL, learned_at TEXT NOT NULL)`,
		`CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)`,
		`CREATE TABLE rejection (id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL, at TEXT NOT NULL, digest TEXT NOT NULL)`,
		`CREATE TABLE outbox (pos INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, payload BLOB NOT NULL, created_at TEXT NOT NULL)`,
		`CREATE TABLE last_status (id INTEGER PRIMARY KEY CHECK (id = 1), report BLOB NOT NULL)`,
		`INSERT INTO outbox (id, kind, payload, created_at) VALUES ('i', 'k', '{"id":"i","severity":"info"}', ''), ('s', 'k', '{"id":"s","severity":"security"}', '')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	s := open(t, path)
	st, err := s.Outbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 2 || st.Bytes != int64(len(`{"id":"i","severity":"info"}`)+len(`{"id":"s","severity":"security"}`)) {
		t.Fatalf("migrated outbox %+v", st)
	}
}
