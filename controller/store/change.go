package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// changeSchema is migration 5: the change sequence, the dirty marks the
// reconcile loop works from, each audit entry's change sequence and its
// before/after state, and what the broker acknowledged for each document.
const changeSchema = `
-- One row: the sequence number of the last committed change. Caches built
-- from the store (permission views) are keyed on it.
CREATE TABLE change_seq (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	seq INTEGER NOT NULL
) STRICT;
INSERT INTO change_seq (id, seq) VALUES (1, 0);

-- Devices whose document a change may have changed, with the sequence of the
-- latest such change; '*' marks every device. The reconcile loop compiles
-- them and removes the marks it covered, in the transaction that stores the
-- documents.
CREATE TABLE dirty_devices (
	device_id TEXT PRIMARY KEY,
	seq       INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

ALTER TABLE audit ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE audit ADD COLUMN state_before TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN state_after TEXT NOT NULL DEFAULT '';

-- What the broker acknowledged (PUBACK of the retained QoS 1 publish) of
-- this device's document: revision and issue time; 0 means nothing is
-- known to be retained. published_at is when it acknowledged. (Replaced by
-- the published table in migration 7.)
ALTER TABLE desired ADD COLUMN published_revision INTEGER NOT NULL DEFAULT 0;
ALTER TABLE desired ADD COLUMN published_issued_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE desired ADD COLUMN published_at INTEGER NOT NULL DEFAULT 0;
`

// desiredHeadSchema is migration 10: what a snapshot and the publisher read
// of the desired table (revision, digest, times and, new, the key ids that
// signed the envelope) in an index of its own, so reading it for 10k
// devices does not page through every envelope; and devices by id with
// their state, for the same reason.
const desiredHeadSchema = `
ALTER TABLE desired ADD COLUMN signers TEXT NOT NULL DEFAULT '';
` + backfillSigners + `
CREATE INDEX desired_head ON desired (device_id, revision, digest, issued_at, expires_at, signers);
CREATE INDEX devices_state ON devices (id, state);
`

// backfillSigners fills the signers of records stored before migration 10
// from their envelopes.
const backfillSigners = `UPDATE desired SET signers = COALESCE((SELECT group_concat(json_extract(value, '$.keyid'), ',')
	FROM json_each(CAST(envelope AS TEXT), '$.signatures')), '');`

// publishedSchema is migration 7: the published state moves out of the
// desired table (whose rows carry the envelopes, so every scan of them read
// megabytes) into two small tables: what the broker acknowledged per
// device, and which stored documents wait to be published.
const publishedSchema = `
ALTER TABLE desired DROP COLUMN published_revision;
ALTER TABLE desired DROP COLUMN published_issued_at;
ALTER TABLE desired DROP COLUMN published_at;

-- The document the broker last acknowledged (PUBACK of the retained QoS 1
-- publish) per device: revision, issue time, and when. No row: nothing is
-- known to be retained for the device.
CREATE TABLE published (
	device_id TEXT PRIMARY KEY,
	revision  INTEGER NOT NULL,
	issued_at INTEGER NOT NULL,
	at        INTEGER NOT NULL
) STRICT;

-- Devices whose stored document no broker acknowledged as stored: written
-- with each stored record, after a broker reconnect and for drifting
-- devices; removed by the acknowledgement of that very record.
CREATE TABLE unpublished (
	device_id TEXT PRIMARY KEY
) STRICT, WITHOUT ROWID;
INSERT INTO unpublished (device_id) SELECT device_id FROM desired;
`

// dirtyAll is the dirty mark that stands for every device.
const dirtyAll = "*"

// Change is one change in the making, handed to the function given to
// DB.Change. Store methods called with the context DB.Change passes run in
// its transaction; the function names the devices whose documents may
// change (DirtyDevices, DirtyGroups, DirtyAll) and may complete the audit
// entry (e.g. with an id the store assigned).
type Change struct {
	// Audit is the change's audit entry. Actor, Action and Kind are
	// required; At (zero: now) and the change sequence are set at commit.
	Audit AuditEntry
	// Before and After, for security-relevant changes, are the state of the
	// changed object before and after (nil: none, e.g. before a creation).
	// They are stored JSON-encoded with the audit entry.
	Before, After any

	db      *DB
	tx      *sql.Tx
	all     bool
	devices map[string]bool
	groups  map[string]bool
	nsave   int
}

// Committed is what DB.Change committed.
type Committed struct {
	Seq   uint64     // the change's sequence number
	Audit AuditEntry // the audit entry as stored
}

type changeKey struct{}

// changeOf returns the change ctx carries for db, if any.
func (db *DB) changeOf(ctx context.Context) *Change {
	c, _ := ctx.Value(changeKey{}).(*Change)
	if c == nil || c.db != db {
		return nil
	}
	return c
}

// committed returns ctx without the change it may carry, for reads that
// must see committed state only.
func committed(ctx context.Context) context.Context {
	return context.WithValue(ctx, changeKey{}, (*Change)(nil))
}

// reader is what read methods query: the open change's transaction, so a
// change reads what it wrote, or else the read pool.
func (db *DB) reader(ctx context.Context) queryer {
	if c := db.changeOf(ctx); c != nil {
		return c.tx
	}
	return db.read
}

// Change runs fn as one change: fn's writes (store methods called with the
// context fn gets), the audit entry, a bump of the change sequence and the
// dirty marks of the devices whose documents may change are one write
// transaction. If fn fails, or the audit entry or a mark cannot be written,
// or the change would break a rule every commit keeps (checkRules: someone
// can always administer; no escalation by taking away), nothing is kept. The caller wakes the reconcile loop after it returns.
//
// Everything fn calls on db must use the context it is given: the write
// connection is held by the change, so a write with another context would
// wait for it forever.
func (db *DB) Change(ctx context.Context, audit AuditEntry, fn func(ctx context.Context, c *Change) error) (Committed, error) {
	if db.changeOf(ctx) != nil {
		return Committed{}, errors.New("store: a change cannot start inside another change")
	}
	if err := checkAudit(audit); err != nil {
		return Committed{}, err
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return Committed{}, fmt.Errorf("begin change %s: %w", audit.Action, err)
	}
	defer tx.Rollback()
	c := &Change{Audit: audit, db: db, tx: tx, devices: map[string]bool{}, groups: map[string]bool{}}
	if err := fn(context.WithValue(ctx, changeKey{}, c), c); err != nil {
		return Committed{}, err
	}
	if err := c.checkRules(ctx); err != nil {
		return Committed{}, err
	}
	out, err := c.finish(ctx)
	if err != nil {
		return Committed{}, fmt.Errorf("change %s: %w", c.Audit.Action, err)
	}
	if err := tx.Commit(); err != nil {
		return Committed{}, fmt.Errorf("commit change %s: %w", c.Audit.Action, err)
	}
	return out, nil
}

// finish writes the sequence bump, the audit entry and the dirty marks.
func (c *Change) finish(ctx context.Context) (Committed, error) {
	if err := checkAudit(c.Audit); err != nil {
		return Committed{}, err
	}
	var seq uint64
	if err := c.tx.QueryRowContext(ctx, `UPDATE change_seq SET seq = seq + 1 WHERE id = 1 RETURNING seq`).Scan(&seq); err != nil {
		return Committed{}, fmt.Errorf("bump change sequence: %w", err)
	}
	e := c.Audit
	if e.At.IsZero() {
		e.At = c.db.now()
	}
	e.At = fromUnixNano(unixNano(e.At))
	e.Seq = seq
	var err error
	if e.Before, err = stateJSON(c.Before); err != nil {
		return Committed{}, err
	}
	if e.After, err = stateJSON(c.After); err != nil {
		return Committed{}, err
	}
	// Groups are resolved again now: their members after the change.
	if len(c.groups) > 0 && !c.all {
		if err := c.markGroupMembers(ctx, slices.Collect(mapKeys(c.groups))); err != nil {
			return Committed{}, err
		}
	}
	// No silent weakening: a change that lifts the sideload ban anywhere
	// is a security event, and its entry names where.
	lifted, every, err := c.sideloadLifted(ctx)
	if err != nil {
		return Committed{}, err
	}
	if every || len(lifted) > 0 {
		e.Kind = AuditSecurity
		e.Detail = joinDetail(e.Detail, liftedDetail(lifted, every))
	}
	if e.ID, err = insertAudit(ctx, c.tx, &e); err != nil {
		return Committed{}, err
	}
	marks := slices.Collect(mapKeys(c.devices))
	if c.all {
		marks = []string{dirtyAll}
	}
	for _, id := range marks {
		if _, err := c.tx.ExecContext(ctx, `INSERT INTO dirty_devices (device_id, seq) VALUES (?, ?)
			ON CONFLICT (device_id) DO UPDATE SET seq = excluded.seq`, id, seq); err != nil {
			return Committed{}, fmt.Errorf("mark device %s for recompilation: %w", id, err)
		}
	}
	return Committed{Seq: seq, Audit: e}, nil
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func stateJSON(v any) (string, error) {
	if v == nil {
		return "", nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode audit state: %w", err)
	}
	return string(b), nil
}

// DirtyDevices marks devices whose document the change may alter.
func (c *Change) DirtyDevices(ids ...string) {
	if c.devices == nil {
		c.devices = map[string]bool{}
	}
	for _, id := range ids {
		c.devices[id] = true
	}
}

// DirtyAll marks every device: the change may alter every document
// (settings, publishers, users, roles, global grants).
func (c *Change) DirtyAll() { c.all = true }

// DirtyGroups marks the members of groups, as they are now and as they are
// when the change commits: call it before changing a group, so devices that
// leave it are marked too. Unknown groups mark nothing. On a zero Change (a
// fake store's) it only records the names.
func (c *Change) DirtyGroups(ctx context.Context, groups ...string) error {
	if c.groups == nil {
		c.groups = map[string]bool{}
	}
	for _, g := range groups {
		c.groups[g] = true
	}
	if c.all || c.tx == nil {
		return nil
	}
	return c.markGroupMembers(ctx, groups)
}

func (c *Change) markGroupMembers(ctx context.Context, groups []string) error {
	devices, err := listDevices(ctx, c.tx)
	if err != nil {
		return err
	}
	gs, err := listGroups(ctx, c.tx)
	if err != nil {
		return err
	}
	m, err := (&Snapshot{Devices: devices, Groups: gs}).Membership()
	if err != nil {
		return err
	}
	for _, g := range groups {
		c.DirtyDevices(m.Members(g)...)
	}
	return nil
}

// nested runs fn inside the change's transaction under a savepoint, so a
// store method that fails leaves nothing of itself behind even when the
// caller goes on.
func (c *Change) nested(ctx context.Context, fn func(tx *sql.Tx) error) error {
	c.nsave++
	sp := fmt.Sprintf("s%d", c.nsave)
	if _, err := c.tx.ExecContext(ctx, "SAVEPOINT "+sp); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	if err := fn(c.tx); err != nil {
		if _, rerr := c.tx.ExecContext(ctx, "ROLLBACK TO "+sp); rerr != nil {
			return errors.Join(err, fmt.Errorf("roll back to savepoint: %w", rerr))
		}
		_, _ = c.tx.ExecContext(ctx, "RELEASE "+sp)
		return err
	}
	if _, err := c.tx.ExecContext(ctx, "RELEASE "+sp); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	return nil
}

// ChangeSeq returns the sequence number of the last committed change. It
// always reads committed state, also from inside a change.
func (db *DB) ChangeSeq(ctx context.Context) (uint64, error) {
	var seq uint64
	if err := db.read.QueryRowContext(ctx, `SELECT seq FROM change_seq WHERE id = 1`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("read change sequence: %w", err)
	}
	return seq, nil
}

// DirtySet is the dirty marks a snapshot read (Snapshot.Dirty).
type DirtySet struct {
	All     bool            // every device is marked
	Devices map[string]bool // marked devices
	Seq     uint64          // the highest sequence among the marks read
}

// Has reports whether id is marked.
func (d DirtySet) Has(id string) bool { return d.All || d.Devices[id] }

// Len is the number of marks (the all-devices mark counts one).
func (d DirtySet) Len() int {
	if d.All {
		return 1 + len(d.Devices)
	}
	return len(d.Devices)
}

func readDirty(ctx context.Context, q queryer) (DirtySet, error) {
	d := DirtySet{Devices: map[string]bool{}}
	rows, err := q.QueryContext(ctx, `SELECT device_id, seq FROM dirty_devices`)
	if err != nil {
		return d, fmt.Errorf("read dirty marks: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id  string
			seq uint64
		)
		if err := rows.Scan(&id, &seq); err != nil {
			return d, fmt.Errorf("read dirty marks: %w", err)
		}
		if id == dirtyAll {
			d.All = true
		} else {
			d.Devices[id] = true
		}
		d.Seq = max(d.Seq, seq)
	}
	return d, rows.Err()
}

// Dirty returns the current dirty marks.
func (db *DB) Dirty(ctx context.Context) (DirtySet, error) {
	return readDirty(ctx, db.reader(ctx))
}

// maxLiftedNamed is how many devices an audit entry names when a change
// lifts the sideload ban on more; the rest are counted.
const maxLiftedNamed = 20

func liftedDetail(lifted []string, every bool) string {
	if every {
		return "sideload ban lifted on every device (global policy)"
	}
	s := fmt.Sprintf("sideload ban lifted on %d device(s): %s", len(lifted), strings.Join(lifted[:min(len(lifted), maxLiftedNamed)], ", "))
	if len(lifted) > maxLiftedNamed {
		s += fmt.Sprintf(" and %d more", len(lifted)-maxLiftedNamed)
	}
	return s
}

func joinDetail(detail, more string) string {
	if detail == "" {
		return more
	}
	return detail + "; " + more
}
