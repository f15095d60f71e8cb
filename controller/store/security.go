package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// SeqEvent is a device event with its position in the events table: seq
// grows with every event stored, so an exporter can resume after the last
// one it wrote.
type SeqEvent struct {
	Seq int64
	DeviceEvent
}

// SeveritySecurity is the severity of device events that are security
// events (protocol.Event.Severity).
const SeveritySecurity = "security"

// SecurityEventsAfter returns up to limit device events of severity
// security stored after position seq, in the order they were stored.
func (db *DB) SecurityEventsAfter(ctx context.Context, seq int64, limit int) ([]SeqEvent, error) {
	rows, err := db.reader(ctx).QueryContext(ctx, `SELECT seq, device_id, event_id, at, received_at, kind, severity, message, details
		FROM events WHERE seq > ? AND severity = ? ORDER BY seq LIMIT ?`, seq, SeveritySecurity, limitOrDefault(limit))
	if err != nil {
		return nil, fmt.Errorf("read security events: %w", err)
	}
	defer rows.Close()
	var out []SeqEvent
	for rows.Next() {
		var (
			e            SeqEvent
			at, received int64
			details      string
		)
		if err := rows.Scan(&e.Seq, &e.DeviceID, &e.ID, &at, &received, &e.Kind, &e.Severity, &e.Message, &details); err != nil {
			return nil, fmt.Errorf("read security events: %w", err)
		}
		e.At, e.ReceivedAt = fromUnixNano(at), fromUnixNano(received)
		if details != "" {
			if err := json.Unmarshal([]byte(details), &e.Details); err != nil {
				return nil, fmt.Errorf("read security events: decode details of %s: %w", e.ID, err)
			}
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// AuditAfter returns up to limit audit entries of kind (every kind if
// empty) with an id above id, oldest first.
func (db *DB) AuditAfter(ctx context.Context, id int64, kind string, limit int) ([]AuditEntry, error) {
	out, err := db.queryAudit(ctx, `SELECT `+auditColumns+` FROM audit
		WHERE id > ? AND (? = '' OR kind = ?) ORDER BY id LIMIT ?`, id, kind, kind, limitOrDefault(limit))
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}

// SecurityEventCounts returns, by device id, how many device events of
// severity security happened at or after since.
func (db *DB) SecurityEventCounts(ctx context.Context, since time.Time) (map[string]int, error) {
	rows, err := db.reader(ctx).QueryContext(ctx, `SELECT device_id, COUNT(*) FROM events WHERE severity = ? AND at >= ? GROUP BY device_id`,
		SeveritySecurity, unixNano(since))
	if err != nil {
		return nil, fmt.Errorf("count security events: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			id string
			n  int
		)
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("count security events: %w", err)
		}
		out[id] = n
	}
	return out, rows.Err()
}
