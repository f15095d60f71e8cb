package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DB is the controller's database. It is safe for concurrent use. Writes go
// through a single connection, so they never fail with SQLITE_BUSY against
// each other; reads use a pool of read-only connections and, thanks to WAL,
// never wait for a writer.
type DB struct {
	path  string
	write *sql.DB // one connection: every write transaction, serialized
	read  *sql.DB // read-only connections

	// now is the clock for the timestamps the store sets itself
	// (CreatedAt of groups). Tests replace it.
	now func() time.Time

	presence presenceTimeout // see SetPresenceTimeout

	closeOnce sync.Once
	closeErr  error
}

// Connection settings, applied to every connection.
//
//   - journal_mode=WAL: readers never block the writer and vice versa.
//   - synchronous=FULL: every commit is fsynced to the WAL before Commit
//     returns. WAL with synchronous=NORMAL would already survive kill -9 of
//     the process (a committed transaction is in the WAL file, which the OS
//     keeps), but it may lose the last commits on power loss or a kernel
//     crash, and an edge controller in a plant cabinet does lose power. The
//     cost is one fsync per transaction; ingest batches (RecordStatus takes a
//     batch per transaction) keep that off the hot path.
//   - foreign_keys=ON: the schema relies on them (group members, includes).
//   - busy_timeout: readers may meet a checkpoint; the writer never contends
//     with itself because it is a single connection.
//   - cache_size: 64 MiB for the writer, so the status rows of a large fleet
//     and their index stay in memory; 16 MiB per reader.
//   - temp_store=MEMORY: sorts and temporary indices stay off the disk.
const (
	busyTimeout      = "10000"
	writerCacheKiB   = 64 << 10
	readerCacheKiB   = 16 << 10
	maxReadConns     = 4
	walAutocheckpage = 4000 // pages (~16 MiB) before an automatic checkpoint
)

func dsn(path string, readOnly bool, cacheKiB int) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+busyTimeout+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", fmt.Sprintf("cache_size(-%d)", cacheKiB))
	q.Add("_pragma", "temp_store(MEMORY)")
	if readOnly {
		q.Add("_pragma", "query_only(ON)")
	} else {
		q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", walAutocheckpage))
		q.Set("_txlock", "immediate")
	}
	return path + "?" + q.Encode()
}

// Open opens (creating if needed) the database at path and brings its schema
// up to date by applying the migrations it has not seen yet.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("%w: database path %q: give a file path without '?' or '#'", ErrInvalid, path)
	}
	w, err := sql.Open("sqlite", dsn(path, false, writerCacheKiB))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s: %w (check that the directory exists and is writable)", path, err)
	}
	// The database holds password hashes and enrollment token hashes: only
	// the controller's user may read it, whatever the umask.
	if err := os.Chmod(path, 0o600); err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	db := &DB{path: path, write: w, now: time.Now}
	if err := db.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn(path, true, readerCacheKiB))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s for reading: %w", path, err)
	}
	n := min(maxReadConns, max(2, runtime.GOMAXPROCS(0)))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open database %s for reading: %w", path, err)
	}
	db.read = r
	return db, nil
}

// Close closes the database. It is safe to call more than once.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		err := db.read.Close()
		if werr := db.write.Close(); werr != nil {
			err = werr
		}
		if err != nil {
			db.closeErr = fmt.Errorf("close database %s: %w", db.path, err)
		}
	})
	return db.closeErr
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// update runs fn in one write transaction and commits it if fn returns nil;
// otherwise nothing fn did is kept.
//
// Inside a change (DB.Change) it runs in the change's transaction, under a
// savepoint, and the change commits.
func (db *DB) update(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if c := db.changeOf(ctx); c != nil {
		return c.nested(ctx, fn)
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin write transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// viewWarm is view on the writer's connection, for the reconcile loop's
// large reads right after its own writes. In WAL mode a read connection
// discards its whole page cache whenever another connection has written
// since its last read; at 10k devices freeing and refilling it cost more
// than the queries. The writer's cache stays valid (it made the writes),
// at the price of holding the write lock while fn reads: keep fn short.
// Nothing fn does is committed.
func (db *DB) viewWarm(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if c := db.changeOf(ctx); c != nil {
		return fn(c.tx)
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

// view runs fn in one read transaction: everything fn reads is one
// consistent snapshot of the database.
//
// Inside a change it reads the change's transaction: what the change wrote.
func (db *DB) view(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if c := db.changeOf(ctx); c != nil {
		return fn(c.tx)
	}
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read transaction: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

// queryer is what the read helpers need: a transaction or a pool.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

var (
	_ queryer = (*sql.Tx)(nil)
	_ queryer = (*sql.DB)(nil)
)

// Times are stored as Unix nanoseconds, UTC; 0 is the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// queryAll runs a query and scans every row with scan.
func queryAll[T any](ctx context.Context, q queryer, scan func(interface{ Scan(...any) error }) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// deleteOne runs a DELETE that must remove exactly one named row; what
// names it in errors ("grant g-1") and hint says how to find the right one.
func (db *DB) deleteOne(ctx context.Context, what, hint, query string, args ...any) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("delete %s: %w", what, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %s does not exist; %s", ErrNotFound, what, hint)
		}
		return nil
	})
}
