package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/edgewarden/edgewarden/protocol"
)

// The outbox holds events until the controller acknowledges them (see
// agent/outbox). Each entry has a position that only grows (AUTOINCREMENT,
// never reused), which the wire batches and acknowledgements name.
//
// It is bounded by bytes (SetOutboxLimit): an event that would take it over
// the limit makes room by dropping the oldest entries of the lowest rank
// first (info, then warning, then security), in the same transaction.
// Every drop is counted by severity, in total (Drops, for metrics) and
// since the last report (ReportDrops queues an event saying so).

// DefaultOutboxLimit is the outbox bound when SetOutboxLimit is not called:
// 64 MiB of encoded events.
const DefaultOutboxLimit = 64 << 20

// MinOutboxLimit is the smallest bound SetOutboxLimit accepts: room for a
// few full event batches, so one large event never empties the outbox.
const MinOutboxLimit = 1 << 20

// Severities in drop order: the first is dropped first.
var severities = []string{"info", "warning", "security"}

// rank is the drop rank of a severity: unknown ones count as warnings.
func rank(severity string) int {
	switch severity {
	case "info":
		return 0
	case "security":
		return 2
	}
	return 1
}

// Entry is one queued event and its outbox position.
type Entry struct {
	Pos   int64
	Event protocol.Event
}

// SetOutboxLimit bounds the outbox to limit bytes of encoded events (the
// next enqueue enforces it). It refuses a limit under MinOutboxLimit.
func (s *Store) SetOutboxLimit(limit int64) error {
	if limit < MinOutboxLimit {
		return fmt.Errorf("outbox limit %d bytes: give at least %d (1 MiB)", limit, MinOutboxLimit)
	}
	s.outboxMax.Store(limit)
	return nil
}

// Enqueue adds an event to the outbox. The event stays there until it is
// acknowledged (DeleteRange) or dropped to keep the outbox under its limit.
func (s *Store) Enqueue(ctx context.Context, ev protocol.Event) error {
	if err := s.tx(ctx, func(tx *sql.Tx) error { return s.enqueue(ctx, tx, ev) }); err != nil {
		return fmt.Errorf("queue event %s: %w", ev.Kind, err)
	}
	return nil
}

func (s *Store) enqueue(ctx context.Context, tx *sql.Tx, ev protocol.Event) error {
	if ev.ID == "" || len(ev.ID) > 64 {
		return fmt.Errorf("event id %q: want 1-64 characters", ev.ID)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	// Same id twice is the same event: keep the first.
	res, err := tx.ExecContext(ctx, `INSERT INTO outbox (id, kind, payload, created_at, rank, size) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		ev.ID, ev.Kind, b, fmtTime(ev.At), rank(ev.Severity), len(b))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	total, err := addCounter(ctx, tx, "outbox_bytes", int64(len(b)))
	if err != nil {
		return err
	}
	if over := total - s.outboxMax.Load(); over > 0 {
		return shed(ctx, tx, over)
	}
	return nil
}

func addCounter(ctx context.Context, tx *sql.Tx, name string, delta int64) (int64, error) {
	var v int64
	err := tx.QueryRowContext(ctx, `INSERT INTO counters (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = value + excluded.value RETURNING value`, name, delta).Scan(&v)
	return v, err
}

// shed drops the oldest entries of the lowest rank until at least need
// bytes are free, counting each drop by severity.
func shed(ctx context.Context, tx *sql.Tx, need int64) error {
	var freed int64
	dropped := map[int]int64{}
	for freed < need {
		var pos, r, size int64
		err := tx.QueryRowContext(ctx, `SELECT pos, rank, size FROM outbox ORDER BY rank, pos LIMIT 1`).Scan(&pos, &r, &size)
		if errors.Is(err, sql.ErrNoRows) {
			break
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE pos = ?`, pos); err != nil {
			return err
		}
		freed += size
		dropped[int(r)]++
	}
	if _, err := addCounter(ctx, tx, "outbox_bytes", -freed); err != nil {
		return err
	}
	for r, n := range dropped {
		sev := severities[min(max(r, 0), len(severities)-1)]
		if _, err := addCounter(ctx, tx, "dropped_"+sev, n); err != nil {
			return err
		}
		if _, err := addCounter(ctx, tx, "unreported_"+sev, n); err != nil {
			return err
		}
	}
	return nil
}

// Pending returns up to limit queued events after position after, oldest
// first.
func (s *Store) Pending(ctx context.Context, after int64, limit int) ([]Entry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT pos, payload FROM outbox WHERE pos > ? ORDER BY pos LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var b []byte
		if err := rows.Scan(&e.Pos, &b); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		if err := json.Unmarshal(b, &e.Event); err != nil {
			return nil, fmt.Errorf("read outbox entry %d: %w", e.Pos, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// PendingEvents returns up to limit queued events, oldest first.
func (s *Store) PendingEvents(ctx context.Context, limit int) ([]protocol.Event, error) {
	entries, err := s.Pending(ctx, 0, limit)
	if err != nil {
		return nil, err
	}
	evs := make([]protocol.Event, len(entries))
	for i, e := range entries {
		evs[i] = e.Event
	}
	return evs, nil
}

// CountEvents returns how many events wait in the outbox.
func (s *Store) CountEvents(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count outbox: %w", err)
	}
	return n, nil
}

// DeleteRange removes the entries at positions first..last (acknowledged
// by the controller) and returns how many there were.
func (s *Store) DeleteRange(ctx context.Context, first, last int64) (int, error) {
	return s.deleteWhere(ctx, `pos BETWEEN ? AND ?`, first, last)
}

// DeleteEvents removes events by id (an event that can never be sent).
func (s *Store) DeleteEvents(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	_, err := s.deleteWhere(ctx, `id IN (?`+strings.Repeat(",?", len(ids)-1)+`)`, args...)
	return err
}

func (s *Store) deleteWhere(ctx context.Context, where string, args ...any) (int, error) {
	var n int
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var size int64
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox WHERE `+where, args...).Scan(&n, &size); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE `+where, args...); err != nil {
			return err
		}
		_, err := addCounter(ctx, tx, "outbox_bytes", -size)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("remove delivered events: %w", err)
	}
	return n, nil
}

// OutboxStats describe the outbox for status and metrics.
type OutboxStats struct {
	Events int
	Bytes  int64
	Limit  int64
	// Dropped counts events dropped to stay under the limit, by severity,
	// since the database was created.
	Dropped map[string]int64
}

// Outbox returns the outbox's size and drop counters.
func (s *Store) Outbox(ctx context.Context) (OutboxStats, error) {
	st := OutboxStats{Limit: s.outboxMax.Load(), Dropped: map[string]int64{}}
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox`).Scan(&st.Events); err != nil {
		return st, fmt.Errorf("read outbox size: %w", err)
	}
	c, err := s.counters(ctx, s.db)
	if err != nil {
		return st, err
	}
	st.Bytes = c["outbox_bytes"]
	for _, sev := range severities {
		st.Dropped[sev] = c["dropped_"+sev]
	}
	return st, nil
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func (s *Store) counters(ctx context.Context, q querier) (map[string]int64, error) {
	rows, err := q.QueryContext(ctx, `SELECT name, value FROM counters`)
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	defer rows.Close()
	c := map[string]int64{}
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			return nil, fmt.Errorf("read counters: %w", err)
		}
		c[name] = v
	}
	return c, rows.Err()
}

// EventOutboxOverflow is the kind of the event ReportDrops queues.
const EventOutboxOverflow = "outbox_overflow"

// ReportDrops queues one event saying how many events of each severity
// were dropped since the last report, if any were and the outbox has room
// for it, and resets those counts, in one transaction. It reports whether
// it queued one. id and now make the event (ids are the caller's).
func (s *Store) ReportDrops(ctx context.Context, id string, now time.Time) (bool, error) {
	queued := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		c, err := s.counters(ctx, tx)
		if err != nil {
			return err
		}
		details := map[string]string{"limit_bytes": strconv.FormatInt(s.outboxMax.Load(), 10)}
		var total int64
		severity := "warning"
		for _, sev := range severities {
			n := c["unreported_"+sev]
			details["dropped_"+sev] = strconv.FormatInt(n, 10)
			total += n
			if sev == "security" && n > 0 {
				severity = "security"
			}
		}
		// Wait until a quarter of the outbox is free, so the report does
		// not push out what it is about to report on.
		if total == 0 || c["outbox_bytes"] > s.outboxMax.Load()*3/4 {
			return nil
		}
		ev := protocol.Event{ID: id, At: now.UTC(), Kind: EventOutboxOverflow, Severity: severity, Details: details,
			Message: fmt.Sprintf("the event outbox was full (limit %s bytes): %d events dropped (%s info, %s warning, %s security), oldest and least severe first",
				details["limit_bytes"], total, details["dropped_info"], details["dropped_warning"], details["dropped_security"])}
		if err := s.enqueue(ctx, tx, ev); err != nil {
			return err
		}
		for _, sev := range severities {
			if _, err := tx.ExecContext(ctx, `UPDATE counters SET value = 0 WHERE name = ?`, "unreported_"+sev); err != nil {
				return err
			}
		}
		queued = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("report dropped events: %w", err)
	}
	return queued, nil
}
