// Package state is the agent's local store (SQLite, WAL): the applied
// desired-state document, controller keys learned from documents, the
// status sequence counter, the last rejection, and the durable, bounded
// outbox of events waiting for the controller's acknowledgement (outbox.go).
//
// Every write is one transaction, committed before the caller acknowledges
// anything to the broker, and the database is opened with synchronous=FULL,
// so a kill -9 or a power cut loses nothing that was acknowledged.
// Migrations are only ever appended (see migrations).
package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edgewarden/edgewarden/protocol"

	"modernc.org/sqlite"             // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib" // result codes
)

// migrations are applied in order; each index+1 is a schema version. Only
// append: a released migration never changes.
var migrations = []string{
	// 1: first schema.
	`CREATE TABLE applied (
		id             INTEGER PRIMARY KEY CHECK (id = 1),
		envelope       BLOB    NOT NULL,
		revision       INTEGER NOT NULL,
		content_digest TEXT    NOT NULL,
		issued_at      TEXT    NOT NULL,
		expires_at     TEXT    NOT NULL,
		applied_at     TEXT    NOT NULL
	);
	CREATE TABLE trusted_keys (
		key_id     TEXT PRIMARY KEY,
		algorithm  TEXT NOT NULL,
		pem        TEXT NOT NULL,
		revision   INTEGER NOT NULL,
		learned_at TEXT NOT NULL
	);
	CREATE TABLE counters (
		name  TEXT PRIMARY KEY,
		value INTEGER NOT NULL
	);
	CREATE TABLE rejection (
		id       INTEGER PRIMARY KEY CHECK (id = 1),
		revision INTEGER NOT NULL,
		reason   TEXT    NOT NULL,
		message  TEXT    NOT NULL,
		at       TEXT    NOT NULL,
		digest   TEXT    NOT NULL
	);
	CREATE TABLE outbox (
		pos        INTEGER PRIMARY KEY AUTOINCREMENT,
		id         TEXT    NOT NULL UNIQUE,
		kind       TEXT    NOT NULL,
		payload    BLOB    NOT NULL,
		created_at TEXT    NOT NULL
	);
	CREATE TABLE last_status (
		id     INTEGER PRIMARY KEY CHECK (id = 1),
		report BLOB NOT NULL
	);`,
	// 2: a bounded outbox (outbox.go): each entry's drop rank (0 info,
	// 1 warning, 2 security) and size, the running total, drop counters.
	`ALTER TABLE outbox ADD COLUMN rank INTEGER NOT NULL DEFAULT 1;
	ALTER TABLE outbox ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
	UPDATE outbox SET size = length(payload),
		rank = CASE json_extract(payload, '$.severity') WHEN 'info' THEN 0 WHEN 'security' THEN 2 ELSE 1 END;
	CREATE INDEX outbox_drop_order ON outbox (rank, pos);
	INSERT INTO counters (name, value) SELECT 'outbox_bytes', COALESCE(SUM(size), 0) FROM outbox WHERE true
		ON CONFLICT (name) DO UPDATE SET value = excluded.value;`,
	// 3: intents recorded before an action (intents.go).
	`CREATE TABLE intents (
		id         TEXT PRIMARY KEY,
		kind       TEXT NOT NULL,
		plan       BLOB NOT NULL,
		created_at TEXT NOT NULL
	);`,
}

// Store is the agent's SQLite database. It is safe for concurrent use.
type Store struct {
	db        *sql.DB
	outboxMax atomic.Int64 // bytes; see SetOutboxLimit
	full      atomic.Bool  // the last write failed because the disk is full
}

// Open opens (creating if needed) the database at path and brings its
// schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	// Create the file owner-only; SQLite gives its -wal and -shm files the
	// same mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open agent database: %w", err)
	}
	f.Close()
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "foreign_keys(1)")
	// 512 KiB of page cache instead of SQLite's 2 MiB: the agent's
	// database is small and read little; this bounds what a long outbox
	// drain can keep resident (docs/BENCHMARKS.md, agent footprint).
	q.Add("_pragma", "cache_size(-512)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open agent database %s: %w", path, err)
	}
	// One connection: writes are serialised anyway, and it keeps
	// transactions simple.
	db.SetMaxOpenConns(1)
	s := &Store{db: db}
	s.outboxMax.Store(DefaultOutboxLimit)
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open agent database %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database. It is safe to call more than once.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) migrate(ctx context.Context) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
			return err
		}
		var current int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return err
		}
		if current > len(migrations) {
			return fmt.Errorf("database schema version %d is newer than this agent knows (%d); run a newer agent", current, len(migrations))
		}
		for v := current + 1; v <= len(migrations); v++ {
			if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, v, fmtTime(time.Now())); err != nil {
				return err
			}
		}
		return nil
	})
}

// SchemaVersion returns the schema version of the open database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) (err error) {
	defer func() { s.full.Store(IsDiskFull(err)) }()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// IsDiskFull reports whether err is a write that failed for want of space
// (SQLITE_FULL or ENOSPC). SQLite rolls such a transaction back: what was
// committed before stays intact.
func IsDiskFull(err error) bool {
	if err == nil {
		return false
	}
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL {
		return true
	}
	return errors.Is(err, syscall.ENOSPC)
}

// WriteFailedFull reports whether the last write transaction failed
// because the disk is full (a later successful one clears it).
func (s *Store) WriteFailedFull() bool { return s.full.Load() }

// Probe makes a small write transaction, to learn whether the database can
// be written again after the disk was full.
func (s *Store) Probe(ctx context.Context) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := addCounter(ctx, tx, "write_probe", 1)
		return err
	})
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// AppliedDoc is the document in force: its exact envelope bytes and what
// the verifier needs to know about it.
type AppliedDoc struct {
	Envelope []byte
	protocol.Applied
	ExpiresAt time.Time
	AppliedAt time.Time
}

// Applied returns the document in force, or nil if none was ever applied.
func (s *Store) Applied(ctx context.Context) (*AppliedDoc, error) {
	var d AppliedDoc
	var issued, expires, applied string
	err := s.db.QueryRowContext(ctx, `SELECT envelope, revision, content_digest, issued_at, expires_at, applied_at FROM applied WHERE id = 1`).
		Scan(&d.Envelope, &d.Revision, &d.ContentDigest, &issued, &expires, &applied)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read applied document: %w", err)
	}
	if d.IssuedAt, err = parseTime(issued); err != nil {
		return nil, fmt.Errorf("read applied document: issued_at: %w", err)
	}
	if d.ExpiresAt, err = parseTime(expires); err != nil {
		return nil, fmt.Errorf("read applied document: expires_at: %w", err)
	}
	if d.AppliedAt, err = parseTime(applied); err != nil {
		return nil, fmt.Errorf("read applied document: applied_at: %w", err)
	}
	return &d, nil
}

// SaveApplied records d as the document in force, clears the last
// rejection, and, when learned is not nil, adds it to the trusted
// controller keys, all in one transaction. A refresh is saved the same way.
func (s *Store) SaveApplied(ctx context.Context, d AppliedDoc, learned *protocol.PublicKey) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO applied (id, envelope, revision, content_digest, issued_at, expires_at, applied_at)
			VALUES (1, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET envelope = excluded.envelope, revision = excluded.revision,
				content_digest = excluded.content_digest, issued_at = excluded.issued_at,
				expires_at = excluded.expires_at, applied_at = excluded.applied_at`,
			d.Envelope, d.Revision, d.ContentDigest, fmtTime(d.IssuedAt), fmtTime(d.ExpiresAt), fmtTime(d.AppliedAt))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM rejection`); err != nil {
			return err
		}
		if learned != nil {
			_, err := tx.ExecContext(ctx, `INSERT INTO trusted_keys (key_id, algorithm, pem, revision, learned_at) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (key_id) DO NOTHING`,
				learned.KeyID, learned.Algorithm, learned.PEM, d.Revision, fmtTime(d.AppliedAt))
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store applied document revision %d: %w", d.Revision, err)
	}
	return nil
}

// LearnedKeys returns the controller keys learned from applied documents.
func (s *Store) LearnedKeys(ctx context.Context) ([]protocol.PublicKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key_id, algorithm, pem FROM trusted_keys ORDER BY learned_at, key_id`)
	if err != nil {
		return nil, fmt.Errorf("read learned controller keys: %w", err)
	}
	defer rows.Close()
	var keys []protocol.PublicKey
	for rows.Next() {
		var k protocol.PublicKey
		if err := rows.Scan(&k.KeyID, &k.Algorithm, &k.PEM); err != nil {
			return nil, fmt.Errorf("read learned controller keys: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// StoredRejection is the last rejection together with the digest of the
// refused bytes, so the same document refused again is not reported twice.
type StoredRejection struct {
	protocol.Rejection
	Digest string
}

// RecordRejection stores rej as the last rejection and, when ev is not nil,
// queues ev in the outbox, in one transaction.
func (s *Store) RecordRejection(ctx context.Context, rej StoredRejection, ev *protocol.Event) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO rejection (id, revision, reason, message, at, digest) VALUES (1, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET revision = excluded.revision, reason = excluded.reason,
				message = excluded.message, at = excluded.at, digest = excluded.digest`,
			rej.Revision, rej.Reason, rej.Message, fmtTime(rej.At), rej.Digest)
		if err != nil {
			return err
		}
		if ev != nil {
			return s.enqueue(ctx, tx, *ev)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record rejection: %w", err)
	}
	return nil
}

// LastRejection returns the most recent rejection since the last applied
// document, or nil.
func (s *Store) LastRejection(ctx context.Context) (*StoredRejection, error) {
	var r StoredRejection
	var at string
	err := s.db.QueryRowContext(ctx, `SELECT revision, reason, message, at, digest FROM rejection WHERE id = 1`).
		Scan(&r.Revision, &r.Reason, &r.Message, &at, &r.Digest)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read last rejection: %w", err)
	}
	if r.At, err = parseTime(at); err != nil {
		return nil, fmt.Errorf("read last rejection: %w", err)
	}
	return &r, nil
}

// NextSeq increments and returns the persisted status sequence number. It
// only grows, across restarts.
func (s *Store) NextSeq(ctx context.Context) (uint64, error) {
	var seq uint64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO counters (name, value) VALUES ('status_seq', 1)
			ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value`).Scan(&seq)
	})
	if err != nil {
		return 0, fmt.Errorf("next status sequence number: %w", err)
	}
	return seq, nil
}

// SaveLastStatus keeps the last status report published, for the local
// status command.
func (s *Store) SaveLastStatus(ctx context.Context, r *protocol.StatusReport) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode status report: %w", err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO last_status (id, report) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET report = excluded.report`, b)
	if err != nil {
		return fmt.Errorf("store status report: %w", err)
	}
	return nil
}

// LastStatus returns the last status report published, or nil.
func (s *Store) LastStatus(ctx context.Context) (*protocol.StatusReport, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, `SELECT report FROM last_status WHERE id = 1`).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read last status report: %w", err)
	}
	var r protocol.StatusReport
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read last status report: %w", err)
	}
	return &r, nil
}
