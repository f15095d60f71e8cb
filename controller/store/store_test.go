package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/schema.sql")

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func openTest(t *testing.T) *DB {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "controller.db"))
}

func openAt(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	db.now = func() time.Time { return t0 }
	t.Cleanup(func() { db.Close() })
	return db
}

func hashOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// state is everything the store holds, for "nothing changed" checks.
type state struct {
	Snap   *Snapshot
	Tokens []EnrollToken
	Users  []User
	Audit  []AuditEntry
	Events []DeviceEvent
}

func dump(t *testing.T, db *DB) state {
	t.Helper()
	ctx := context.Background()
	var s state
	var err error
	if s.Snap, err = db.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Tokens, err = db.ListEnrollTokens(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Users, err = db.ListUsers(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Audit, err = db.ListAudit(ctx, AuditFilter{}); err != nil {
		t.Fatal(err)
	}
	if s.Events, err = db.ListEvents(ctx, EventFilter{}); err != nil {
		t.Fatal(err)
	}
	return s
}

// unchanged runs fn, which must fail with an error wrapping want and
// mentioning every string in mention, and checks that the store is exactly
// as it was.
func unchanged(t *testing.T, db *DB, want error, fn func() error, mention ...string) {
	t.Helper()
	before := dump(t, db)
	err := fn()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want one wrapping %v", err, want)
	}
	for _, m := range mention {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %q", err, m)
		}
	}
	if after := dump(t, db); !reflect.DeepEqual(before, after) {
		t.Fatalf("store changed after a failed call (%v):\nbefore %+v\nafter  %+v", err, before, after)
	}
}

func mustToken(t *testing.T, db *DB, secret string, mod func(*EnrollToken)) EnrollToken {
	t.Helper()
	tok := EnrollToken{Hash: hashOf(secret), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), CreatedBy: "admin"}
	if mod != nil {
		mod(&tok)
	}
	got, err := db.CreateEnrollToken(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

var enrollSeq int

func mustEnroll(t *testing.T, db *DB, id string, labels map[string]string) Device {
	t.Helper()
	enrollSeq++
	secret := fmt.Sprintf("secret-%d-for-%s", enrollSeq, id)
	// The token allows every key the device asks for (see
	// TestEnrollLabelKeysBoundWhatADeviceClaims for one that does not).
	mustToken(t, db, secret, func(tk *EnrollToken) { tk.LabelKeys = slices.Collect(maps.Keys(labels)) })
	d, _, err := db.Enroll(context.Background(), hashOf(secret), NewDevice{ID: id, Labels: labels, At: t0})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustGroup(t *testing.T, db *DB, name, selector string) {
	t.Helper()
	if _, err := db.CreateGroup(context.Background(), name, selector); err != nil {
		t.Fatal(err)
	}
}

func TestSchemaGolden(t *testing.T) {
	db := openTest(t)
	got, err := db.schemaDump(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "schema.sql")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test ./controller/store -run TestSchemaGolden -update` to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("schema differs from %s: a migration changed the schema; if that is intended, run `go test ./controller/store -run TestSchemaGolden -update` and commit the result.\ngot:\n%s", path, got)
	}
	v, err := db.SchemaVersion(context.Background())
	if err != nil || v != len(migrations) {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, len(migrations))
	}
}

func TestReopenAppliesNothingTwiceAndRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	db := openAt(t, path)
	db.Close()
	db = openAt(t, path) // migrations already applied: must not fail
	if v, _ := db.SchemaVersion(ctx); v != len(migrations) {
		t.Fatalf("schema version %d after reopen", v)
	}
	if _, err := db.write.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := Open(ctx, path)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "newer controller") {
		t.Fatalf("Open of a database from the future = %v, want ErrConflict", err)
	}
}

func TestOpenBadPath(t *testing.T) {
	if _, err := Open(context.Background(), filepath.Join(t.TempDir(), "missing", "dir", "c.db")); err == nil {
		t.Fatal("Open in a missing directory succeeded")
	}
	if _, err := Open(context.Background(), "x.db?mode=ro"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Open with a query string = %v, want ErrInvalid", err)
	}
}

func TestPragmas(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	for _, c := range []struct {
		q    string
		want string
	}{
		{"PRAGMA journal_mode", "wal"},
		{"PRAGMA foreign_keys", "1"},
		{"PRAGMA synchronous", "2"}, // FULL
	} {
		var got string
		if err := db.write.QueryRowContext(ctx, c.q).Scan(&got); err != nil || got != c.want {
			t.Errorf("writer %s = %q, %v; want %q", c.q, got, err, c.want)
		}
		if err := db.read.QueryRowContext(ctx, c.q).Scan(&got); err != nil || got != c.want {
			t.Errorf("reader %s = %q, %v; want %q", c.q, got, err, c.want)
		}
	}
	if _, err := db.read.ExecContext(ctx, `DELETE FROM users`); err == nil {
		t.Error("the read pool accepted a write")
	}
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// TestConcurrentUse writes and reads from several goroutines at once: the
// single writer connection and the read pool must not fail with "database
// is locked".
func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustEnroll(t, db, "d1", nil)
	errs := make(chan error, 8)
	for w := range 4 {
		go func() {
			for i := range 50 {
				if _, err := db.AppendAudit(ctx, AuditEntry{Actor: "a", Action: fmt.Sprintf("w%d.%d", w, i), Kind: AuditChange}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
		go func() {
			for range 50 {
				if _, err := db.Snapshot(ctx); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := db.ListAudit(ctx, AuditFilter{Limit: 1000}); len(got) != 200 {
		t.Fatalf("%d audit entries, want 200", len(got))
	}
}
