package store

import (
	"context"
	"database/sql"
	"fmt"

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
