package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/edgewarden/edgewarden/protocol"
)

// RecordStatus stores a batch of status reports in one transaction. A report
// from the same agent run (the same StartedAt) whose Seq is not greater than
// the one stored is ignored as stale; a report from another run is taken
// whatever its Seq. A device's numbers are not trusted to order reports
// across runs: one forged report with a huge Seq would otherwise freeze the
// controller's view of the device for good, while under this rule the
// genuine agent's next report (its own run) replaces it. The agent keeps
// only its latest report for re-sending, so an older run's report does not
// arrive after a newer run's; if a broker ever delivered one late, the next
// heartbeat corrects it. Reports for device ids that do not
// exist (a device deleted while its reports were in flight) are skipped so
// that they cannot hold up the rest: the others are committed and the error,
// wrapping ErrNotFound, names the unknown ids.
func (db *DB) RecordStatus(ctx context.Context, updates []StatusUpdate) error {
	if len(updates) == 0 {
		return nil
	}
	var unknown []string
	err := db.update(ctx, func(tx *sql.Tx) error {
		unknown = unknown[:0]
		stmt, err := tx.PrepareContext(ctx, `UPDATE devices SET
			status_seq = ?1, applied_revision = ?2, policy_expires_at = ?3, last_rejected = ?4,
			apps = ?5, agent_version = ?6, last_seen = MAX(last_seen, ?7), status_epoch = ?9
			WHERE id = ?8 AND (status_seq = 0 OR status_epoch <> ?9 OR ?1 > status_seq)`)
		if err != nil {
			return fmt.Errorf("record status: %w", err)
		}
		defer stmt.Close()
		exists, err := tx.PrepareContext(ctx, `SELECT 1 FROM devices WHERE id = ?`)
		if err != nil {
			return fmt.Errorf("record status: %w", err)
		}
		defer exists.Close()
		for _, u := range updates {
			r := &u.Report
			var rejected, apps []byte
			if r.LastRejected != nil {
				rejected, _ = json.Marshal(r.LastRejected)
			}
			if len(r.Apps) > 0 {
				apps, _ = json.Marshal(r.Apps)
			}
			res, err := stmt.ExecContext(ctx, int64(r.Seq), int64(r.AppliedRevision), unixNano(r.PolicyExpiresAt),
				string(rejected), string(apps), r.AgentVersion, unixNano(u.At), u.DeviceID, unixNano(r.StartedAt))
			if err != nil {
				return fmt.Errorf("record status of %s: %w", u.DeviceID, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				var one int
				if err := exists.QueryRowContext(ctx, u.DeviceID).Scan(&one); isNoRows(err) {
					unknown = append(unknown, u.DeviceID)
				} else if err != nil {
					return fmt.Errorf("record status of %s: %w", u.DeviceID, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		unknown = slices.Compact(unknown)
		return fmt.Errorf("%w: status from unknown devices %s was dropped (the rest of the batch is stored)", ErrNotFound, strings.Join(unknown, ", "))
	}
	return nil
}

// RecordPresence stores a device's presence as the controller received it
// at time at (see RecordPresences).
func (db *DB) RecordPresence(ctx context.Context, id string, online bool, at time.Time) error {
	return db.RecordPresences(ctx, []PresenceUpdate{{DeviceID: id, Online: online, At: at}})
}

// PresenceUpdate is one presence to store.
type PresenceUpdate struct {
	DeviceID string
	Online   bool
	// At is when the controller received it, on its own clock. The time
	// the device wrote into the message is not used: a device's clock may
	// be wrong, and a forged far-future time must not freeze its presence.
	At time.Time
}

// RecordPresences stores presences in one transaction: an online presence
// counts as hearing from the device (last_seen), an offline one or a last
// will sets offline_at. Whether a device is online is decided when it is
// read (Device.Online). Like RecordStatus, presences of unknown devices are
// dropped and named in an ErrNotFound after the rest is committed.
func (db *DB) RecordPresences(ctx context.Context, updates []PresenceUpdate) error {
	if len(updates) == 0 {
		return nil
	}
	var unknown []string
	err := db.update(ctx, func(tx *sql.Tx) error {
		unknown = unknown[:0]
		online, err := tx.PrepareContext(ctx, `UPDATE devices SET online = 1, presence_at = MAX(presence_at, ?1),
			last_seen = MAX(last_seen, ?1) WHERE id = ?2`)
		if err != nil {
			return fmt.Errorf("record presence: %w", err)
		}
		defer online.Close()
		offline, err := tx.PrepareContext(ctx, `UPDATE devices SET online = 0, presence_at = MAX(presence_at, ?1),
			offline_at = MAX(offline_at, ?1) WHERE id = ?2`)
		if err != nil {
			return fmt.Errorf("record presence: %w", err)
		}
		defer offline.Close()
		for _, u := range updates {
			stmt := offline
			if u.Online {
				stmt = online
			}
			res, err := stmt.ExecContext(ctx, unixNano(u.At), u.DeviceID)
			if err != nil {
				return fmt.Errorf("record presence of %s: %w", u.DeviceID, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				unknown = append(unknown, u.DeviceID)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("%w: presence of unknown devices %s was dropped (the rest is stored)", ErrNotFound, strings.Join(slices.Compact(unknown), ", "))
	}
	return nil
}

// DeviceEvent is an event as stored: what the device sent, which device sent
// it, and when the controller received it.
type DeviceEvent struct {
	protocol.Event
	DeviceID   string
	ReceivedAt time.Time
}

// EventFilter selects events for ListEvents. Zero fields do not filter.
type EventFilter struct {
	DeviceID string
	Kind     string
	Severity string
	Since    time.Time // events that happened at or after this time
	// Limit caps the number of events returned (the newest ones); 0 means
	// DefaultListLimit.
	Limit int
}

// DefaultListLimit is the number of events or audit entries returned when a
// filter gives no limit.
const DefaultListLimit = 1000

// RecordEvents stores a device's events, each event id once per device: a
// batch delivered twice stores nothing new. It returns how many events were
// new. An unknown device is ErrNotFound and stores nothing.
func (db *DB) RecordEvents(ctx context.Context, deviceID string, events []protocol.Event) (int, error) {
	for i, e := range events {
		if e.ID == "" {
			return 0, fmt.Errorf("%w: event %d from %s has no id", ErrInvalid, i, deviceID)
		}
	}
	inserted := 0
	err := db.update(ctx, func(tx *sql.Tx) error {
		inserted = 0
		if _, err := getDevice(ctx, tx, deviceID); err != nil {
			return fmt.Errorf("record events: %w", err)
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO events
			(device_id, event_id, at, received_at, kind, severity, message, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("record events of %s: %w", deviceID, err)
		}
		defer stmt.Close()
		now := unixNano(db.now())
		for _, e := range events {
			var details []byte
			if len(e.Details) > 0 {
				details, _ = json.Marshal(e.Details)
			}
			// A device cannot date an event after it arrived: a forged
			// far-future time would keep it "recent" and first in every
			// list for good. Earlier times (an agent that was offline)
			// are kept.
			at := min(unixNano(e.At), now)
			res, err := stmt.ExecContext(ctx, deviceID, e.ID, at, now, e.Kind, e.Severity, e.Message, string(details))
			if err != nil {
				return fmt.Errorf("record event %s of %s: %w", e.ID, deviceID, err)
			}
			n, _ := res.RowsAffected()
			inserted += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return inserted, nil
}

// ListEvents returns the events the filter selects, newest first.
func (db *DB) ListEvents(ctx context.Context, f EventFilter) ([]DeviceEvent, error) {
	var (
		where []string
		args  []any
	)
	if f.DeviceID != "" {
		where, args = append(where, "device_id = ?"), append(args, f.DeviceID)
	}
	if f.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, f.Kind)
	}
	if f.Severity != "" {
		where, args = append(where, "severity = ?"), append(args, f.Severity)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, unixNano(f.Since))
	}
	q := `SELECT device_id, event_id, at, received_at, kind, severity, message, details FROM events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY at DESC, seq DESC LIMIT ?"
	args = append(args, limitOrDefault(f.Limit))
	rows, err := db.reader(ctx).QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []DeviceEvent
	for rows.Next() {
		var (
			e            DeviceEvent
			at, received int64
			details      string
		)
		if err := rows.Scan(&e.DeviceID, &e.ID, &at, &received, &e.Kind, &e.Severity, &e.Message, &details); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		e.At, e.ReceivedAt = fromUnixNano(at), fromUnixNano(received)
		if details != "" {
			if err := json.Unmarshal([]byte(details), &e.Details); err != nil {
				return nil, fmt.Errorf("list events: decode details of %s: %w", e.ID, err)
			}
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func limitOrDefault(n int) int {
	if n <= 0 {
		return DefaultListLimit
	}
	return n
}
