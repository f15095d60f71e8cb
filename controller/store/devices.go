package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"time"

	"github.com/edgewarden/edgewarden/controller/fleet"
	"github.com/edgewarden/edgewarden/protocol"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Device states (the same strings as apiv1.DevicePending / DeviceActive).
const (
	DevicePending = "pending"
	DeviceActive  = "active"
)

var tokenHashPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// CreateEnrollToken stores a new enrollment token. t.Hash (hex SHA-256 of the
// secret, lower case), t.ExpiresAt and t.CreatedAt are required; t.ID is
// generated when empty; t.MaxUses 0 means 1. Every group in t.Groups must
// exist and t.Labels must be valid labels. Used and Revoked are ignored.
func (db *DB) CreateEnrollToken(ctx context.Context, t EnrollToken) (EnrollToken, error) {
	if t.ID == "" {
		var b [8]byte
		rand.Read(b[:])
		t.ID = hex.EncodeToString(b[:])
	}
	if t.MaxUses == 0 {
		t.MaxUses = 1
	}
	t.Used, t.Revoked = 0, false
	t.Groups = slices.Compact(slices.Sorted(slices.Values(t.Groups)))
	switch {
	case !tokenHashPattern.MatchString(t.Hash):
		return EnrollToken{}, fmt.Errorf("%w: enrollment token hash must be 64 lower-case hex digits (SHA-256 of the secret)", ErrInvalid)
	case t.MaxUses < 0:
		return EnrollToken{}, fmt.Errorf("%w: enrollment token uses %d: give a positive number", ErrInvalid, t.MaxUses)
	case t.ExpiresAt.IsZero() || t.CreatedAt.IsZero() || !t.ExpiresAt.After(t.CreatedAt):
		return EnrollToken{}, fmt.Errorf("%w: enrollment token must have a creation time and a later expiry", ErrInvalid)
	}
	if err := fleet.ValidateLabels(t.Labels); err != nil {
		return EnrollToken{}, fmt.Errorf("%w: enrollment token labels: %w", ErrInvalid, err)
	}
	t.LabelKeys = slices.Compact(slices.Sorted(slices.Values(t.LabelKeys)))
	for _, k := range t.LabelKeys {
		if err := fleet.ValidateLabelKey(k); err != nil {
			return EnrollToken{}, fmt.Errorf("%w: enrollment token label keys: %w", ErrInvalid, err)
		}
	}
	for _, g := range t.Groups {
		if err := fleet.ValidateGroupName(g); err != nil {
			return EnrollToken{}, fmt.Errorf("%w: enrollment token: %w", ErrInvalid, err)
		}
	}
	err := db.update(ctx, func(tx *sql.Tx) error {
		for _, g := range t.Groups {
			if err := groupExists(ctx, tx, g); err != nil {
				return fmt.Errorf("enrollment token: %w", err)
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO enroll_tokens
			(id, hash, groups, labels, max_uses, used, expires_at, approval, revoked, created_at, created_by, label_keys)
			VALUES (?, ?, ?, ?, ?, 0, ?, ?, 0, ?, ?, ?)`,
			t.ID, t.Hash, jsonList(t.Groups), jsonMap(t.Labels), t.MaxUses, unixNano(t.ExpiresAt), t.Approval, unixNano(t.CreatedAt), t.CreatedBy, jsonList(t.LabelKeys))
		if isConstraint(err) {
			return fmt.Errorf("%w: an enrollment token with id %s or the same secret already exists; generate a new one", ErrConflict, t.ID)
		}
		return err
	})
	if err != nil {
		return EnrollToken{}, err
	}
	t.Labels = nonNilMap(t.Labels)
	t.Groups = nonNilList(t.Groups)
	t.LabelKeys = nonNilList(t.LabelKeys)
	t.ExpiresAt, t.CreatedAt = fromUnixNano(unixNano(t.ExpiresAt)), fromUnixNano(unixNano(t.CreatedAt))
	return t, nil
}

const tokenColumns = `id, hash, groups, labels, max_uses, used, expires_at, approval, revoked, created_at, created_by, label_keys`

func scanToken(row interface{ Scan(...any) error }) (EnrollToken, error) {
	var (
		t                EnrollToken
		groups, labels   string
		labelKeys        string
		expires, created int64
	)
	if err := row.Scan(&t.ID, &t.Hash, &groups, &labels, &t.MaxUses, &t.Used, &expires, &t.Approval, &t.Revoked, &created, &t.CreatedBy, &labelKeys); err != nil {
		return EnrollToken{}, err
	}
	t.ExpiresAt, t.CreatedAt = fromUnixNano(expires), fromUnixNano(created)
	if err := json.Unmarshal([]byte(groups), &t.Groups); err != nil {
		return EnrollToken{}, fmt.Errorf("enrollment token %s: decode groups: %w", t.ID, err)
	}
	if err := json.Unmarshal([]byte(labels), &t.Labels); err != nil {
		return EnrollToken{}, fmt.Errorf("enrollment token %s: decode labels: %w", t.ID, err)
	}
	if err := json.Unmarshal([]byte(labelKeys), &t.LabelKeys); err != nil {
		return EnrollToken{}, fmt.Errorf("enrollment token %s: decode label keys: %w", t.ID, err)
	}
	t.Groups, t.Labels, t.LabelKeys = nonNilList(t.Groups), nonNilMap(t.Labels), nonNilList(t.LabelKeys)
	return t, nil
}

// ListEnrollTokens returns every enrollment token, oldest first, including
// revoked, expired and used-up ones.
func (db *DB) ListEnrollTokens(ctx context.Context) ([]EnrollToken, error) {
	out, err := queryAll(ctx, db.reader(ctx), scanToken, `SELECT `+tokenColumns+` FROM enroll_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list enrollment tokens: %w", err)
	}
	return out, nil
}

// RevokeEnrollToken revokes the token with this id so that no more devices
// enroll with it. Revoking a revoked token is not an error.
func (db *DB) RevokeEnrollToken(ctx context.Context, id string) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE enroll_tokens SET revoked = 1 WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("revoke enrollment token %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: enrollment token %s does not exist; list tokens with `edgewarden enroll-tokens ls`", ErrNotFound, id)
		}
		return nil
	})
}

// Enroll creates a device with an enrollment token, in one transaction: the
// token (found by the hex SHA-256 of its secret) must exist, not be revoked,
// not have expired at d.At and have uses left; the device id must be free.
// The device is "pending" if the token requires approval, else "active". Its
// labels are the agent's, overridden by the token's; it joins the token's
// groups, and the token's use count grows by one. On any error nothing
// changes. Token failures wrap ErrForbidden; a taken id wraps ErrConflict.
func (db *DB) Enroll(ctx context.Context, tokenHash string, d NewDevice) (Device, EnrollToken, error) {
	if err := protocol.ValidateDeviceID(d.ID); err != nil {
		return Device{}, EnrollToken{}, fmt.Errorf("%w: enroll: %w", ErrInvalid, err)
	}
	if err := fleet.ValidateLabels(d.Labels); err != nil {
		return Device{}, EnrollToken{}, fmt.Errorf("%w: enroll device %s: %w", ErrInvalid, d.ID, err)
	}
	if d.At.IsZero() {
		return Device{}, EnrollToken{}, fmt.Errorf("%w: enroll device %s: no enrollment time", ErrInvalid, d.ID)
	}
	var (
		dev Device
		tok EnrollToken
	)
	err := db.update(ctx, func(tx *sql.Tx) error {
		var err error
		tok, err = scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM enroll_tokens WHERE hash = ?`, tokenHash))
		switch {
		case isNoRows(err):
			return fmt.Errorf("%w: enrollment token is not known; check it, or create one with `edgewarden enroll-tokens create`", ErrForbidden)
		case err != nil:
			return fmt.Errorf("enroll device %s: read token: %w", d.ID, err)
		case tok.Revoked:
			return fmt.Errorf("%w: enrollment token %s was revoked; create a new one", ErrForbidden, tok.ID)
		case !d.At.Before(tok.ExpiresAt):
			return fmt.Errorf("%w: enrollment token %s expired at %s; create a new one", ErrForbidden, tok.ID, tok.ExpiresAt.Format(time.RFC3339))
		case tok.Used >= tok.MaxUses:
			return fmt.Errorf("%w: enrollment token %s is used up (%d of %d uses); create a new one or one with more --uses", ErrForbidden, tok.ID, tok.Used, tok.MaxUses)
		}
		var one int
		err = tx.QueryRowContext(ctx, `SELECT 1 FROM devices WHERE id = ?`, d.ID).Scan(&one)
		if err == nil {
			return fmt.Errorf("%w: device id %s is already enrolled; delete it first (`edgewarden devices delete %s`) or choose another id", ErrConflict, d.ID, d.ID)
		} else if !isNoRows(err) {
			return fmt.Errorf("enroll device %s: %w", d.ID, err)
		}
		// A device keeps only the labels its token allows it to ask for:
		// with a stolen token, a device must not label itself into groups
		// that select by label. The rest is kept as requested, for an
		// admin to see and accept (ApproveDevice). The token's own labels
		// win on conflict.
		labels, requested := map[string]string{}, map[string]string{}
		for k, v := range d.Labels {
			if slices.Contains(tok.LabelKeys, k) {
				labels[k] = v
			} else {
				requested[k] = v
			}
		}
		maps.Copy(labels, tok.Labels)
		state := DeviceActive
		if tok.Approval {
			state = DevicePending
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO devices (id, state, labels, enrolled_at, cert_serial, requested_labels) VALUES (?, ?, ?, ?, ?, ?)`,
			d.ID, state, jsonMap(labels), unixNano(d.At), d.CertSerial, jsonMap(requested)); err != nil {
			return fmt.Errorf("enroll device %s: %w", d.ID, err)
		}
		for _, g := range tok.Groups {
			if err := groupExists(ctx, tx, g); err != nil {
				return fmt.Errorf("%w: enrollment token %s assigns group %s, which no longer exists; create the group again or use another token", ErrConflict, tok.ID, g)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO group_devices (group_name, device_id) VALUES (?, ?)`, g, d.ID); err != nil {
				return fmt.Errorf("enroll device %s: add to group %s: %w", d.ID, g, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE enroll_tokens SET used = used + 1 WHERE id = ?`, tok.ID); err != nil {
			return fmt.Errorf("enroll device %s: count token use: %w", d.ID, err)
		}
		tok.Used++
		dev, err = getDevice(ctx, tx, d.ID)
		return err
	})
	if err != nil {
		return Device{}, EnrollToken{}, err
	}
	return dev, tok, nil
}

const deviceColumns = `d.id, d.state, d.labels, d.enrolled_at, d.cert_serial, d.online, d.last_seen,
	d.status_seq, d.applied_revision, d.policy_expires_at, d.last_rejected, d.apps, d.agent_version,
	COALESCE(r.revision, 0), d.offline_at, d.requested_labels`

const deviceFrom = ` FROM devices d LEFT JOIN desired r ON r.device_id = d.id`

func scanDevice(row interface{ Scan(...any) error }) (Device, error) {
	var (
		d                                      Device
		labels, rejected, apps, requested      string
		enrolled, seen, policyExpires, offline int64
		connected                              bool
	)
	if err := row.Scan(&d.ID, &d.State, &labels, &enrolled, &d.CertSerial, &connected, &seen,
		&d.StatusSeq, &d.AppliedRevision, &policyExpires, &rejected, &apps, &d.AgentVersion, &d.DesiredRevision,
		&offline, &requested); err != nil {
		return Device{}, err
	}
	d.EnrolledAt, d.LastSeen, d.PolicyExpiresAt = fromUnixNano(enrolled), fromUnixNano(seen), fromUnixNano(policyExpires)
	d.OfflineAt = fromUnixNano(offline)
	if err := json.Unmarshal([]byte(labels), &d.Labels); err != nil {
		return Device{}, fmt.Errorf("device %s: decode labels: %w", d.ID, err)
	}
	d.Labels = nonNilMap(d.Labels)
	if err := json.Unmarshal([]byte(requested), &d.RequestedLabels); err != nil {
		return Device{}, fmt.Errorf("device %s: decode requested labels: %w", d.ID, err)
	}
	if rejected != "" {
		d.LastRejected = new(protocol.Rejection)
		if err := json.Unmarshal([]byte(rejected), d.LastRejected); err != nil {
			return Device{}, fmt.Errorf("device %s: decode last rejection: %w", d.ID, err)
		}
	}
	if apps != "" {
		if err := json.Unmarshal([]byte(apps), &d.Apps); err != nil {
			return Device{}, fmt.Errorf("device %s: decode apps: %w", d.ID, err)
		}
	}
	return d, nil
}

func getDevice(ctx context.Context, q queryer, id string) (Device, error) {
	d, err := scanDevice(q.QueryRowContext(ctx, `SELECT `+deviceColumns+deviceFrom+` WHERE d.id = ?`, id))
	if isNoRows(err) {
		return Device{}, fmt.Errorf("%w: device %s does not exist; list devices with `edgewarden devices ls`", ErrNotFound, id)
	}
	if err != nil {
		return Device{}, fmt.Errorf("read device %s: %w", id, err)
	}
	return d, nil
}

// GetDevice returns one device.
func (db *DB) GetDevice(ctx context.Context, id string) (Device, error) {
	d, err := getDevice(ctx, db.reader(ctx), id)
	d.Online = db.online(d)
	return d, err
}

// ListDevices returns every device, sorted by id.
func (db *DB) ListDevices(ctx context.Context) ([]Device, error) {
	ds, err := listDevices(ctx, db.reader(ctx))
	for i := range ds {
		ds[i].Online = db.online(ds[i])
	}
	return ds, err
}

func listDevices(ctx context.Context, q queryer) ([]Device, error) {
	out, err := queryAll(ctx, q, scanDevice, `SELECT `+deviceColumns+deviceFrom+` ORDER BY d.id`)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return out, nil
}

// ApproveDevice makes a pending device active, so it receives desired state.
// Approving an active device is not an error.
func (db *DB) ApproveDevice(ctx context.Context, id string) (Device, error) {
	var d Device
	err := db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE devices SET state = ? WHERE id = ?`, DeviceActive, id)
		if err != nil {
			return fmt.Errorf("approve device %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: device %s does not exist; list devices with `edgewarden devices ls`", ErrNotFound, id)
		}
		d, err = getDevice(ctx, tx, id)
		return err
	})
	return d, err
}

// SetDeviceLabels changes a device's labels: each key in labels is set to its
// value, and a key with the empty value is removed. Keys not named keep their
// value. Invalid keys or values change nothing.
func (db *DB) SetDeviceLabels(ctx context.Context, id string, labels map[string]string) (Device, error) {
	set := map[string]string{}
	for k, v := range labels {
		if err := fleet.ValidateLabelKey(k); err != nil {
			return Device{}, fmt.Errorf("%w: set labels of device %s: %w", ErrInvalid, id, err)
		}
		if v != "" {
			set[k] = v
		}
	}
	if err := fleet.ValidateLabels(set); err != nil {
		return Device{}, fmt.Errorf("%w: set labels of device %s: %w", ErrInvalid, id, err)
	}
	var d Device
	err := db.update(ctx, func(tx *sql.Tx) error {
		cur, err := getDevice(ctx, tx, id)
		if err != nil {
			return err
		}
		for k, v := range labels {
			if v == "" {
				delete(cur.Labels, k)
			} else {
				cur.Labels[k] = v
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE devices SET labels = ? WHERE id = ?`, jsonMap(cur.Labels), id); err != nil {
			return fmt.Errorf("set labels of device %s: %w", id, err)
		}
		d = cur
		return nil
	})
	return d, err
}

// DeleteDevice removes a device and its group memberships. Its desired-state
// record stays, so that a device enrolled again under the same id continues
// from a higher revision; its events stay too, as history.
func (db *DB) DeleteDevice(ctx context.Context, id string) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("delete device %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: device %s does not exist; list devices with `edgewarden devices ls`", ErrNotFound, id)
		}
		return nil
	})
}

func jsonMap(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(m) // map[string]string always encodes
	return string(b)
}

func jsonList(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(l)
	return string(b)
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nonNilList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// isConstraint reports whether err is a SQLite constraint violation
// (unique, primary key, check, foreign key).
func isConstraint(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}

// DeviceExists reports whether a device is enrolled (pending or active). It
// is the broker's check on every device connection, so it reads one index.
func (db *DB) DeviceExists(ctx context.Context, id string) (bool, error) {
	var one int
	err := db.reader(ctx).QueryRowContext(ctx, `SELECT 1 FROM devices WHERE id = ?`, id).Scan(&one)
	if isNoRows(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up device %s: %w", id, err)
	}
	return true, nil
}
