package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/edgewarden/edgewarden/protocol"
)

// Snapshot reads, in one transaction, everything the desired-state compiler
// needs: every device (active and pending), every group with its direct
// members and includes, the settings, and the desired-state record of every
// device id that ever had one (deleted devices included, so that revisions
// keep growing across a re-enrollment).
func (db *DB) Snapshot(ctx context.Context) (*Snapshot, error) {
	s := &Snapshot{}
	ctx = committed(ctx)
	err := db.view(ctx, func(tx *sql.Tx) error {
		var err error
		if err := tx.QueryRowContext(ctx, `SELECT seq FROM change_seq WHERE id = 1`).Scan(&s.Seq); err != nil {
			return fmt.Errorf("read change sequence: %w", err)
		}
		if s.Dirty, err = readDirty(ctx, tx); err != nil {
			return err
		}
		if s.Devices, err = listDevices(ctx, tx); err != nil {
			return err
		}
		if s.Groups, err = listGroups(ctx, tx); err != nil {
			return err
		}
		if s.Settings, err = listSettings(ctx, tx); err != nil {
			return err
		}
		if err := readAccess(ctx, tx, s, db.now()); err != nil {
			return err
		}
		if err := snapshotApps(ctx, tx, s); err != nil {
			return err
		}
		if s.SideloadOverrides, err = listSideloadOverrides(ctx, tx); err != nil {
			return err
		}
		s.Desired = map[string]DesiredRecord{}
		rows, err := tx.QueryContext(ctx, `SELECT device_id, revision, digest, issued_at, expires_at, envelope FROM desired`)
		if err != nil {
			return fmt.Errorf("read desired-state records: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanDesired(rows)
			if err != nil {
				return fmt.Errorf("read desired-state records: %w", err)
			}
			s.Desired[r.DeviceID] = r
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return s, nil
}

func scanDesired(row interface{ Scan(...any) error }) (DesiredRecord, error) {
	var (
		r               DesiredRecord
		issued, expires int64
	)
	if err := row.Scan(&r.DeviceID, &r.Revision, &r.Digest, &issued, &expires, &r.Envelope); err != nil {
		return DesiredRecord{}, err
	}
	r.IssuedAt, r.ExpiresAt = fromUnixNano(issued), fromUnixNano(expires)
	return r, nil
}

// PutDesired stores desired-state records in one transaction, all or
// nothing. A record may only move a device's revision forward, or repeat it
// with the same digest (a refresh); anything else is refused with
// ErrConflict, because agents reject a changed document that does not carry a
// higher revision.
func (db *DB) PutDesired(ctx context.Context, recs []DesiredRecord) error {
	return db.PutCompiled(ctx, recs, 0)
}

// PutCompiled stores the records of one compile, as PutDesired does, and in
// the same transaction removes the dirty marks the compile covered: those
// with a sequence up to dirtySeq (Snapshot.Dirty.Seq of the snapshot it
// compiled). Marks a later change set survive for the next compile. Zero
// removes none.
func (db *DB) PutCompiled(ctx context.Context, recs []DesiredRecord, dirtySeq uint64) error {
	for _, r := range recs {
		if err := protocol.ValidateDeviceID(r.DeviceID); err != nil {
			return fmt.Errorf("%w: desired-state record: %w", ErrInvalid, err)
		}
		if r.Revision == 0 || r.Digest == "" || len(r.Envelope) == 0 || !r.ExpiresAt.After(r.IssuedAt) {
			return fmt.Errorf("%w: desired-state record for %s needs a revision, a digest, an envelope and an expiry after its issue time", ErrInvalid, r.DeviceID)
		}
	}
	return db.update(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO desired (device_id, revision, digest, issued_at, expires_at, envelope)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (device_id) DO UPDATE SET
				revision = excluded.revision, digest = excluded.digest, issued_at = excluded.issued_at,
				expires_at = excluded.expires_at, envelope = excluded.envelope
			WHERE excluded.revision > desired.revision
			   OR (excluded.revision = desired.revision AND excluded.digest = desired.digest)`)
		if err != nil {
			return fmt.Errorf("store desired state: %w", err)
		}
		defer stmt.Close()
		for _, r := range recs {
			res, err := stmt.ExecContext(ctx, r.DeviceID, r.Revision, r.Digest, unixNano(r.IssuedAt), unixNano(r.ExpiresAt), r.Envelope)
			if err != nil {
				return fmt.Errorf("store desired state of %s: %w", r.DeviceID, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				var cur uint64
				tx.QueryRowContext(ctx, `SELECT revision FROM desired WHERE device_id = ?`, r.DeviceID).Scan(&cur)
				return fmt.Errorf("%w: desired state of %s: revision %d would not move forward from stored revision %d with other content; recompile from a fresh snapshot", ErrConflict, r.DeviceID, r.Revision, cur)
			}
		}
		if len(recs) > 0 {
			wait, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO unpublished (device_id) VALUES (?)`)
			if err != nil {
				return fmt.Errorf("store desired state: %w", err)
			}
			defer wait.Close()
			for _, r := range recs {
				if _, err := wait.ExecContext(ctx, r.DeviceID); err != nil {
					return fmt.Errorf("store desired state of %s: %w", r.DeviceID, err)
				}
			}
		}
		if dirtySeq > 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM dirty_devices WHERE seq <= ?`, dirtySeq); err != nil {
				return fmt.Errorf("clear dirty marks: %w", err)
			}
		}
		return nil
	})
}

// ListDesired returns the stored document of every active device, sorted by
// device id, for republishing them (retained) when the controller starts.
// Records of deleted devices, which are kept for their revision, and of
// pending devices are left out.
func (db *DB) ListDesired(ctx context.Context) ([]DesiredRecord, error) {
	out, err := queryAll(ctx, db.reader(ctx), scanDesired, `SELECT r.device_id, r.revision, r.digest, r.issued_at, r.expires_at, r.envelope
		FROM desired r JOIN devices d ON d.id = r.device_id
		WHERE d.state = ? ORDER BY r.device_id`, DeviceActive)
	if err != nil {
		return nil, fmt.Errorf("list desired state: %w", err)
	}
	return out, nil
}

// Published names the document a broker acknowledged: a device's record at
// a revision and issue time (a refresh has the same revision, a later
// issue time).
type Published struct {
	DeviceID string
	Revision uint64
	IssuedAt time.Time
}

// Unpublished returns the stored documents of active devices that no broker
// acknowledged as they are stored, sorted by device id: new ones, those
// whose publish failed, and those forgotten after a broker reconnect or a
// drift (ForgetPublished, RepublishDrifting).
func (db *DB) Unpublished(ctx context.Context) ([]DesiredRecord, error) {
	// CROSS JOIN keeps SQLite to this order: the few waiting rows first,
	// never a scan of every device.
	out, err := queryAll(ctx, db.reader(ctx), scanDesired, `SELECT r.device_id, r.revision, r.digest, r.issued_at, r.expires_at, r.envelope
		FROM unpublished u CROSS JOIN desired r ON r.device_id = u.device_id CROSS JOIN devices d ON d.id = u.device_id
		WHERE d.state = ? ORDER BY u.device_id`, DeviceActive)
	if err != nil {
		return nil, fmt.Errorf("list unpublished desired state: %w", err)
	}
	return out, nil
}

// MarkPublished records, in one transaction, that the broker acknowledged
// these documents at time at. An acknowledgement of a document that has
// been replaced since (another revision or issue time) leaves the new one
// waiting to be published.
func (db *DB) MarkPublished(ctx context.Context, acks []Published, at time.Time) error {
	if len(acks) == 0 {
		return nil
	}
	return db.update(ctx, func(tx *sql.Tx) error {
		put, err := tx.PrepareContext(ctx, `INSERT INTO published (device_id, revision, issued_at, at) VALUES (?, ?, ?, ?)
			ON CONFLICT (device_id) DO UPDATE SET revision = excluded.revision, issued_at = excluded.issued_at, at = excluded.at`)
		if err != nil {
			return fmt.Errorf("record published state: %w", err)
		}
		defer put.Close()
		done, err := tx.PrepareContext(ctx, `DELETE FROM unpublished WHERE device_id = ?1
			AND EXISTS (SELECT 1 FROM desired WHERE device_id = ?1 AND revision = ?2 AND issued_at = ?3)`)
		if err != nil {
			return fmt.Errorf("record published state: %w", err)
		}
		defer done.Close()
		for _, a := range acks {
			if _, err := put.ExecContext(ctx, a.DeviceID, a.Revision, unixNano(a.IssuedAt), unixNano(at)); err != nil {
				return fmt.Errorf("record published state of %s: %w", a.DeviceID, err)
			}
			if _, err := done.ExecContext(ctx, a.DeviceID, a.Revision, unixNano(a.IssuedAt)); err != nil {
				return fmt.Errorf("record published state of %s: %w", a.DeviceID, err)
			}
		}
		return nil
	})
}

// ForgetPublished marks every active device's document unpublished: after a
// broker (re)connect nothing it retained can be trusted to be there (the
// embedded broker keeps retained messages in memory; an external one may
// have lost them in a crash), so everything is published again.
func (db *DB) ForgetPublished(ctx context.Context) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO unpublished (device_id)
			SELECT r.device_id FROM desired r JOIN devices d ON d.id = r.device_id WHERE d.state = ?`, DeviceActive)
		if err != nil {
			return fmt.Errorf("forget published state: %w", err)
		}
		return nil
	})
}

// RepublishDrifting marks unpublished the documents of active, online
// devices that report an applied revision other than the one the broker
// acknowledged before olderThan, and returns their ids. A device that
// rejected that very revision is left out: sending it again would change
// nothing.
func (db *DB) RepublishDrifting(ctx context.Context, olderThan time.Time) ([]string, error) {
	var ids []string
	err := db.update(ctx, func(tx *sql.Tx) error {
		var err error
		ids, err = queryAll(ctx, tx, func(row interface{ Scan(...any) error }) (string, error) {
			var id string
			return id, row.Scan(&id)
		}, `SELECT p.device_id FROM published p JOIN devices d ON d.id = p.device_id
			WHERE p.at < ? AND d.state = ? AND d.online = 1 AND d.applied_revision <> p.revision
			  AND NOT EXISTS (SELECT 1 FROM unpublished u WHERE u.device_id = p.device_id)
			  AND NOT (d.last_rejected <> '' AND json_valid(d.last_rejected) AND json_extract(d.last_rejected, '$.revision') = p.revision)
			ORDER BY p.device_id`, unixNano(olderThan), DeviceActive)
		if err != nil || len(ids) == 0 {
			return err
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO unpublished (device_id) VALUES (?)`, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find drifting devices: %w", err)
	}
	return ids, nil
}

// StaleRetained returns the ids of devices that are not active (deleted or
// pending) but whose document a broker acknowledged: it must be cleared.
func (db *DB) StaleRetained(ctx context.Context) ([]string, error) {
	ids, err := queryAll(ctx, db.reader(ctx), func(row interface{ Scan(...any) error }) (string, error) {
		var id string
		return id, row.Scan(&id)
	}, `SELECT p.device_id FROM published p LEFT JOIN devices d ON d.id = p.device_id
		WHERE d.id IS NULL OR d.state <> ? ORDER BY p.device_id`, DeviceActive)
	if err != nil {
		return nil, fmt.Errorf("list stale retained documents: %w", err)
	}
	return ids, nil
}

// MarkCleared records that the broker acknowledged clearing id's retained
// document.
func (db *DB) MarkCleared(ctx context.Context, id string) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM published WHERE device_id = ?`, id); err != nil {
			return fmt.Errorf("record cleared document of %s: %w", id, err)
		}
		return nil
	})
}

// PublishedRevision returns the revision the broker last acknowledged for
// id, and whether there is one.
func (db *DB) PublishedRevision(ctx context.Context, id string) (uint64, bool, error) {
	var rev uint64
	err := db.reader(ctx).QueryRowContext(ctx, `SELECT revision FROM published WHERE device_id = ?`, id).Scan(&rev)
	if isNoRows(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read published state of %s: %w", id, err)
	}
	return rev, true, nil
}
