package siem

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
)

func openStore(t *testing.T) *store.DB {
	t.Helper()
	evSeq = 0 // a new store numbers its events from 1 (also under -count=N)
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "controller.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sum := sha256.Sum256([]byte("secret"))
	h := hex.EncodeToString(sum[:])
	if _, err := db.CreateEnrollToken(ctx, store.EnrollToken{Hash: h, MaxUses: 1, ExpiresAt: time.Now().Add(time.Hour), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Enroll(ctx, h, store.NewDevice{ID: "press-1", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return db
}

var evSeq int

// record stores one device event of severity sev and one audit entry of
// kind kind.
func record(t *testing.T, db *store.DB, sev, kind string) {
	t.Helper()
	evSeq++
	ctx := context.Background()
	ev := protocol.Event{ID: fmt.Sprintf("ev-%d", evSeq), At: time.Now().UTC(), Kind: "tamper_detected", Severity: sev,
		Message: "run.sh changed", Details: map[string]string{"app": "web"}}
	if _, err := db.RecordEvents(ctx, "press-1", []protocol.Event{ev}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AppendAudit(ctx, store.AuditEntry{Actor: "sam", Action: fmt.Sprintf("act-%d", evSeq), Kind: kind, Source: "127.0.0.1:5"}); err != nil {
		t.Fatal(err)
	}
}

func lines(t *testing.T, p string) []apiv1.AuditRecord {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []apiv1.AuditRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r apiv1.AuditRecord
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("line %q is not one AuditRecord: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

func keys(rs []apiv1.AuditRecord) string {
	var ks []string
	for _, r := range rs {
		if r.Origin == apiv1.OriginDevice {
			ks = append(ks, r.DeviceID+"/"+r.EventID)
		} else {
			ks = append(ks, r.Action)
		}
	}
	return strings.Join(ks, " ")
}

// TestExportOnlySecurityAtLeastOnce: only security events are written,
// each once while the cursor is kept; losing the cursor update writes
// lines again (never loses any); a rotated file starts afresh.
func TestExportOnlySecurityAtLeastOnce(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	log := filepath.Join(t.TempDir(), "siem", "security.jsonl")
	record(t, db, "security", store.AuditSecurity) // ev-1, act-1
	record(t, db, "info", store.AuditChange)       // neither

	e, err := New(Options{Path: log, Source: db})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := lines(t, log)
	if keys(got) != "press-1/ev-1 act-1" {
		t.Fatalf("exported %q", keys(got))
	}
	if got[0].Kind != "security" || got[0].Action != "tamper_detected" || got[0].Target != "web" || got[0].Actor != "device:press-1" ||
		got[1].Source != "127.0.0.1:5" || got[1].Origin != apiv1.OriginAudit || got[1].ID == 0 {
		t.Errorf("records %+v", got)
	}
	if fi, err := os.Stat(log); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log mode: %v %v", fi.Mode(), err)
	}
	if err := e.Flush(ctx); err != nil || len(lines(t, log)) != 2 {
		t.Fatalf("a second flush wrote again: %v", err)
	}

	// A crash after the append, before the cursor update: simulated by
	// putting the old cursor back. The restarted exporter writes the
	// lines again: at least once, never lost.
	old, _ := os.ReadFile(log + ".cursor")
	record(t, db, "security", store.AuditSecurity) // ev-3, act-3
	if err := e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(log+".cursor", old, 0o600)
	e2, err := New(Options{Path: log, Source: db})
	if err != nil {
		t.Fatal(err)
	}
	if err := e2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if k := keys(lines(t, log)); k != "press-1/ev-1 act-1 press-1/ev-3 act-3 press-1/ev-3 act-3" {
		t.Fatalf("after the lost cursor update: %q", k)
	}

	// Rotated by renaming: the next batch creates the file again.
	if err := os.Rename(log, log+".1"); err != nil {
		t.Fatal(err)
	}
	record(t, db, "security", store.AuditAccess) // ev-4 only
	if err := e2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if k := keys(lines(t, log)); k != "press-1/ev-4" {
		t.Fatalf("after rotation: %q", k)
	}

	// A corrupt cursor is refused with what to do.
	os.WriteFile(log+".cursor", []byte("{not json"), 0o600)
	if _, err := New(Options{Path: log, Source: db}); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("corrupt cursor: %v", err)
	}
	// A path that cannot be a file.
	if _, err := New(Options{Path: t.TempDir(), Source: db}); err == nil {
		t.Fatal("a directory as the log was accepted")
	}
}

// TestRunExportsOnNotify: Run writes a newly committed event after Notify,
// and stops when its context ends.
func TestRunExportsOnNotify(t *testing.T) {
	db := openStore(t)
	log := filepath.Join(t.TempDir(), "security.jsonl")
	e, err := New(Options{Path: log, Source: db, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { e.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	record(t, db, "security", store.AuditChange)
	e.Notify()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, _ := os.ReadFile(log); strings.Contains(string(b), "tamper_detected") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the event was not exported after Notify")
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}
