package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
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
	err := db.viewWarm(ctx, func(tx *sql.Tx) error {
		var err error
		if err := tx.QueryRowContext(ctx, `SELECT seq FROM change_seq WHERE id = 1`).Scan(&s.Seq); err != nil {
			return fmt.Errorf("read change sequence: %w", err)
		}
		if s.Dirty, err = readDirty(ctx, tx); err != nil {
			return err
		}
		if s.Devices, err = snapshotDevices(ctx, tx); err != nil {
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
		// Not the envelopes: the compiler needs the head of each record
		// (the desired_head index covers it), not megabytes of documents.
		rows, err := tx.QueryContext(ctx, `SELECT device_id, revision, digest, issued_at, expires_at, signers FROM desired`)
		if err != nil {
			return fmt.Errorf("read desired-state records: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanHead(rows)
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

// snapshotDevices lists every device with only what compiling needs: id,
// state, labels and applied revision. Reading the rest (reported apps,
// rejections, presence) for every device was most of a snapshot's time.
func snapshotDevices(ctx context.Context, q queryer) ([]Device, error) {
	out, err := queryAll(ctx, q, func(row interface{ Scan(...any) error }) (Device, error) {
		var (
			d      Device
			labels string
		)
		if err := row.Scan(&d.ID, &d.State, &labels, &d.AppliedRevision); err != nil {
			return Device{}, err
		}
		if labels != "{}" && labels != "" {
			if err := json.Unmarshal([]byte(labels), &d.Labels); err != nil {
				return Device{}, fmt.Errorf("device %s: decode labels: %w", d.ID, err)
			}
		}
		d.Labels = nonNilMap(d.Labels)
		return d, nil
	}, `SELECT id, state, labels, applied_revision FROM devices ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return out, nil
}

func scanDesired(row interface{ Scan(...any) error }) (DesiredRecord, error) {
	var (
		r               DesiredRecord
		issued, expires int64
		signers         string
	)
	if err := row.Scan(&r.DeviceID, &r.Revision, &r.Digest, &issued, &expires, &signers, &r.Envelope); err != nil {
		return DesiredRecord{}, err
	}
	r.IssuedAt, r.ExpiresAt, r.Signers = fromUnixNano(issued), fromUnixNano(expires), splitSigners(signers)
	return r, nil
}

// scanHead reads a record without its envelope.
func scanHead(row interface{ Scan(...any) error }) (DesiredRecord, error) {
	var (
		r               DesiredRecord
		issued, expires int64
		signers         string
	)
	if err := row.Scan(&r.DeviceID, &r.Revision, &r.Digest, &issued, &expires, &signers); err != nil {
		return DesiredRecord{}, err
	}
	r.IssuedAt, r.ExpiresAt, r.Signers = fromUnixNano(issued), fromUnixNano(expires), splitSigners(signers)
	return r, nil
}

func splitSigners(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// signersOf lists the key ids that signed env, for a record stored without
// them. An envelope it cannot read names none: the compiler then signs
// that device's document again, which is the safe side.
func signersOf(env []byte) []string {
	var e struct {
		Signatures []struct {
			KeyID string `json:"keyid"`
		} `json:"signatures"`
	}
	if json.Unmarshal(env, &e) != nil {
		return nil
	}
	var ids []string
	for _, sig := range e.Signatures {
		ids = append(ids, sig.KeyID)
	}
	return ids
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
	signers := make([]string, len(recs))
	for i, r := range recs {
		ids := r.Signers
		if len(ids) == 0 {
			ids = signersOf(r.Envelope)
		}
		signers[i] = strings.Join(ids, ",")
	}
	return db.update(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO desired (device_id, revision, digest, issued_at, expires_at, signers, envelope)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (device_id) DO UPDATE SET
				revision = excluded.revision, digest = excluded.digest, issued_at = excluded.issued_at,
				expires_at = excluded.expires_at, signers = excluded.signers, envelope = excluded.envelope
			WHERE excluded.revision > desired.revision
			   OR (excluded.revision = desired.revision AND excluded.digest = desired.digest)`)
		if err != nil {
			return fmt.Errorf("store desired state: %w", err)
		}
		defer stmt.Close()
		for i, r := range recs {
			res, err := stmt.ExecContext(ctx, r.DeviceID, r.Revision, r.Digest, unixNano(r.IssuedAt), unixNano(r.ExpiresAt), signers[i], r.Envelope)
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
			// One statement for all: at 10k records a statement per id
			// cost more than the SQL.
			ids := make([]string, len(recs))
			for i, r := range recs {
				ids[i] = r.DeviceID
			}
			list, err := json.Marshal(ids)
			if err != nil {
				return fmt.Errorf("store desired state: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO unpublished (device_id) SELECT value FROM json_each(?)`, string(list)); err != nil {
				return fmt.Errorf("store desired state: mark %d documents unpublished: %w", len(recs), err)
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
	out, err := queryAll(ctx, db.reader(ctx), scanDesired, `SELECT r.device_id, r.revision, r.digest, r.issued_at, r.expires_at, r.signers, r.envelope
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
// drift (ForgetPublished, RepublishDrifting). held are records the caller
// has in memory (the last compile's, by device id): a stored record of the
// same revision and issue time is taken from there instead of reading its
// envelope again, which after a change touching every device was most of
// the time of publishing. Nil holds none.
func (db *DB) Unpublished(ctx context.Context, held map[string]DesiredRecord) ([]DesiredRecord, error) {
	var out []DesiredRecord
	err := db.viewWarm(ctx, func(tx *sql.Tx) error {
		// CROSS JOIN keeps SQLite to this order: the few waiting rows
		// first, never a scan of every device.
		refs, err := queryAll(ctx, tx, scanHead, `SELECT r.device_id, r.revision, r.digest, r.issued_at, r.expires_at, r.signers
			FROM unpublished u CROSS JOIN desired r ON r.device_id = u.device_id CROSS JOIN devices d ON d.id = u.device_id
			WHERE d.state = ? ORDER BY u.device_id`, DeviceActive)
		if err != nil {
			return err
		}
		var envelope *sql.Stmt
		for i, r := range refs {
			if h, ok := held[r.DeviceID]; ok && h.Revision == r.Revision && h.IssuedAt.Equal(r.IssuedAt) && h.Digest == r.Digest {
				refs[i].Envelope = h.Envelope
				continue
			}
			if envelope == nil {
				if envelope, err = tx.PrepareContext(ctx, `SELECT envelope FROM desired WHERE device_id = ?`); err != nil {
					return err
				}
				defer envelope.Close()
			}
			if err := envelope.QueryRowContext(ctx, r.DeviceID).Scan(&refs[i].Envelope); err != nil {
				return fmt.Errorf("read the envelope of %s: %w", r.DeviceID, err)
			}
		}
		out = refs
		return nil
	})
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
	// Two statements for all, over a JSON list of [id, revision, issued]:
	// at 10k acknowledgements two statements per one cost more than the SQL.
	rows := make([][3]any, len(acks))
	for i, a := range acks {
		rows[i] = [3]any{a.DeviceID, a.Revision, unixNano(a.IssuedAt)}
	}
	list, err := json.Marshal(rows)
	if err != nil {
		return fmt.Errorf("record published state: %w", err)
	}
	return db.update(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO published (device_id, revision, issued_at, at)
			SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), ?1 FROM json_each(?2) WHERE true
			ON CONFLICT (device_id) DO UPDATE SET revision = excluded.revision, issued_at = excluded.issued_at, at = excluded.at`,
			unixNano(at), string(list)); err != nil {
			return fmt.Errorf("record published state of %d documents: %w", len(acks), err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM unpublished WHERE device_id IN (
			SELECT d.device_id FROM json_each(?) a JOIN desired d ON d.device_id = json_extract(a.value, '$[0]')
			 AND d.revision = json_extract(a.value, '$[1]') AND d.issued_at = json_extract(a.value, '$[2]'))`, string(list)); err != nil {
			return fmt.Errorf("record published state of %d documents: %w", len(acks), err)
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
	var ids []string
	err := db.viewWarm(ctx, func(tx *sql.Tx) error {
		var err error
		ids, err = queryAll(ctx, tx, func(row interface{ Scan(...any) error }) (string, error) {
			var id string
			return id, row.Scan(&id)
		}, `SELECT p.device_id FROM published p LEFT JOIN devices d ON d.id = p.device_id
			WHERE d.id IS NULL OR d.state <> ? ORDER BY p.device_id`, DeviceActive)
		return err
	})
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
