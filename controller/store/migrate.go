package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// migrations are the schema steps, applied in order, each once, each in its
// own transaction, and recorded in schema_migrations. Only append to this
// list: never edit or reorder a step that has shipped, because databases in
// the field have already applied it. testdata/schema.sql holds the resulting
// schema; TestSchemaGolden fails when they disagree (`go test
// ./controller/store -run TestSchemaGolden -update` rewrites it after a
// deliberate change).
//
// Times are INTEGER Unix nanoseconds (0: unset); maps and lists are JSON text.
var migrations = []string{
	// 1: devices, groups, enrollment tokens, users, settings, desired-state
	// bookkeeping, events, audit.
	`
CREATE TABLE devices (
	id                TEXT PRIMARY KEY,
	state             TEXT NOT NULL CHECK (state IN ('pending', 'active')),
	labels            TEXT NOT NULL DEFAULT '{}',
	enrolled_at       INTEGER NOT NULL,
	cert_serial       TEXT NOT NULL DEFAULT '',
	-- Reported by the device.
	online            INTEGER NOT NULL DEFAULT 0,
	presence_at       INTEGER NOT NULL DEFAULT 0,
	last_seen         INTEGER NOT NULL DEFAULT 0,
	status_seq        INTEGER NOT NULL DEFAULT 0,
	applied_revision  INTEGER NOT NULL DEFAULT 0,
	policy_expires_at INTEGER NOT NULL DEFAULT 0,
	last_rejected     TEXT NOT NULL DEFAULT '',
	apps              TEXT NOT NULL DEFAULT '',
	agent_version     TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE TABLE device_groups (
	name       TEXT PRIMARY KEY,
	selector   TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE group_devices (
	group_name TEXT NOT NULL REFERENCES device_groups (name) ON DELETE CASCADE,
	device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	PRIMARY KEY (group_name, device_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX group_devices_device ON group_devices (device_id);

CREATE TABLE group_includes (
	parent TEXT NOT NULL REFERENCES device_groups (name) ON DELETE CASCADE,
	child  TEXT NOT NULL REFERENCES device_groups (name) ON DELETE CASCADE,
	PRIMARY KEY (parent, child),
	CHECK (parent <> child)
) STRICT, WITHOUT ROWID;
CREATE INDEX group_includes_child ON group_includes (child);

CREATE TABLE enroll_tokens (
	id         TEXT PRIMARY KEY,
	hash       TEXT NOT NULL UNIQUE,
	groups     TEXT NOT NULL DEFAULT '[]',
	labels     TEXT NOT NULL DEFAULT '{}',
	max_uses   INTEGER NOT NULL CHECK (max_uses > 0),
	used       INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0 AND used <= max_uses),
	expires_at INTEGER NOT NULL,
	approval   INTEGER NOT NULL DEFAULT 0,
	revoked    INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	created_by TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE TABLE users (
	name          TEXT PRIMARY KEY,
	password_hash TEXT NOT NULL DEFAULT '',
	state         TEXT NOT NULL CHECK (state IN ('active', 'invited', 'disabled')),
	created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;

-- One row per device id that ever had a document. Not tied to devices: the
-- row outlives a deleted device, so a device re-enrolled under the same id
-- continues from a higher revision (revisions only grow).
CREATE TABLE desired (
	device_id  TEXT PRIMARY KEY,
	revision   INTEGER NOT NULL CHECK (revision > 0),
	digest     TEXT NOT NULL,
	issued_at  INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	envelope   BLOB NOT NULL
) STRICT;

-- Events reported by devices. Not tied to devices: security history
-- outlives a deleted device. An event id is stored once per device.
CREATE TABLE events (
	seq         INTEGER PRIMARY KEY,
	device_id   TEXT NOT NULL,
	event_id    TEXT NOT NULL,
	at          INTEGER NOT NULL,
	received_at INTEGER NOT NULL,
	kind        TEXT NOT NULL,
	severity    TEXT NOT NULL,
	message     TEXT NOT NULL,
	details     TEXT NOT NULL DEFAULT '',
	UNIQUE (device_id, event_id)
) STRICT;
CREATE INDEX events_at ON events (at);

CREATE TABLE audit (
	id     INTEGER PRIMARY KEY AUTOINCREMENT,
	at     INTEGER NOT NULL,
	actor  TEXT NOT NULL,
	action TEXT NOT NULL,
	target TEXT NOT NULL DEFAULT '',
	detail TEXT NOT NULL DEFAULT '',
	source TEXT NOT NULL DEFAULT '',
	kind   TEXT NOT NULL
) STRICT;
CREATE INDEX audit_at ON audit (at);
`,
	// 2: access model: teams and members, custom roles (built-in roles are
	// code, in protocol/access, and are not stored), grants, operator tokens
	// and user invitations. Grants go with their subject and scope: deleting
	// a user, team, group or device deletes the grants that name it. The
	// first user (the admin made by init) gets a global admin grant.
	accessMigration,
	// 3: trusted publishers and keys, app versions and their artifacts,
	// app assignments to groups (apps.go).
	appsSchema,
	// 4: per-group sideload overrides (sideload.go).
	sideloadSchema,
	// 5: change sequence, dirty marks, audit entries tied to their change
	// with before/after state, published state of documents (change.go).
	changeSchema,
	presenceAndLabelsSchema, // 6
	// 7: published state in its own tables (change.go).
	publishedSchema,
	// 8: immutable user ids, session generations, the actor id in the
	// audit log (identity.go).
	identitySchema,
	// 9: sessions ended one by one, by logout (identity.go).
	endedSessionsSchema,
	// 10: the head of each desired-state record indexed apart from its
	// envelope, with the key ids that signed it (change.go).
	desiredHeadSchema,
	// 11: grants and operator tokens name their user's id (identity.go).
	subjectIDsSchema,
}

// migrate applies the migrations the database has not seen yet. A database
// written by a newer controller (more migrations than this code knows) is
// refused rather than used with a schema this code does not understand.
func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	applied_at INTEGER NOT NULL
) STRICT`); err != nil {
		return fmt.Errorf("migrate %s: create schema_migrations: %w", db.path, err)
	}
	var have int
	if err := db.write.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("migrate %s: read schema version: %w", db.path, err)
	}
	if have > len(migrations) {
		return fmt.Errorf("%w: database %s has schema version %d, this controller knows up to %d; run a newer controller or restore a backup", ErrConflict, db.path, have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		step := migrations[v-1]
		err := db.update(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, step); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, v, unixNano(db.now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s to schema version %d: %w", db.path, v, err)
		}
	}
	return nil
}

// SchemaVersion returns the number of migrations applied.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.read.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// schemaDump returns the schema as SQL: every table and index in name
// order, for the golden test.
func (db *DB) schemaDump(ctx context.Context) (string, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY type DESC, name`)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return "", err
		}
		b.WriteString(strings.TrimSpace(s))
		b.WriteString(";\n\n")
	}
	return b.String(), rows.Err()
}
