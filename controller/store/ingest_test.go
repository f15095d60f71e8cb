package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/protocol"
)

func TestDesiredRecords(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustEnroll(t, db, "d1", nil)
	mustEnroll(t, db, "d2", nil)
	rec := func(id string, rev uint64, digest string, at time.Time) DesiredRecord {
		return DesiredRecord{DeviceID: id, Revision: rev, Digest: digest, IssuedAt: at, ExpiresAt: at.Add(time.Hour), Envelope: []byte(id + digest)}
	}
	if err := db.PutDesired(ctx, []DesiredRecord{rec("d1", 1, "a", t0), rec("d2", 1, "b", t0)}); err != nil {
		t.Fatal(err)
	}
	// Refresh: same revision and digest, later times.
	if err := db.PutDesired(ctx, []DesiredRecord{rec("d1", 1, "a", t0.Add(time.Minute))}); err != nil {
		t.Fatal(err)
	}
	// Content change: higher revision.
	if err := db.PutDesired(ctx, []DesiredRecord{rec("d2", 2, "c", t0.Add(time.Minute))}); err != nil {
		t.Fatal(err)
	}
	got, err := db.ListDesired(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []DesiredRecord{rec("d1", 1, "a", t0.Add(time.Minute)), rec("d2", 2, "c", t0.Add(time.Minute))}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ListDesired = %+v\nwant %+v", got, want)
	}
	// A snapshot holds each record's head, not its envelope.
	snap, err := db.Snapshot(ctx)
	head := want[1]
	head.Envelope = nil
	if err != nil || !reflect.DeepEqual(snap.Desired["d2"], head) || len(snap.Devices) != 2 {
		t.Fatalf("Snapshot = %+v, %v", snap, err)
	}
	if d, _ := db.GetDevice(ctx, "d2"); d.DesiredRevision != 2 {
		t.Fatalf("DesiredRevision = %d", d.DesiredRevision)
	}

	put := func(rs ...DesiredRecord) func() error { return func() error { return db.PutDesired(ctx, rs) } }
	// A batch with one bad record stores nothing, not even the good one.
	unchanged(t, db, ErrConflict, put(rec("d1", 2, "z", t0.Add(time.Hour)), rec("d2", 1, "old", t0.Add(time.Hour))), "d2", "revision 1")
	unchanged(t, db, ErrConflict, put(rec("d2", 2, "other", t0.Add(time.Hour))), "d2")
	unchanged(t, db, ErrInvalid, put(rec("d1", 0, "a", t0)), "revision")
	unchanged(t, db, ErrInvalid, put(DesiredRecord{DeviceID: "d1", Revision: 3, Digest: "a", IssuedAt: t0, ExpiresAt: t0, Envelope: []byte("x")}), "expiry")
	unchanged(t, db, ErrInvalid, put(rec("BAD", 1, "a", t0)), "device id")
}

func TestRecordStatus(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustEnroll(t, db, "d1", nil)
	mustEnroll(t, db, "d2", nil)
	rep := func(id string, seq, applied uint64) StatusUpdate {
		return StatusUpdate{DeviceID: id, At: t0.Add(time.Duration(seq) * time.Second), Report: protocol.StatusReport{
			Schema: 1, DeviceID: id, Seq: seq, AppliedRevision: applied, PolicyExpiresAt: t0.Add(24 * time.Hour),
			AgentVersion: "1.0", Apps: []protocol.AppStatus{{Name: "hmi", Version: "2", State: protocol.AppRunning}},
			LastRejected: &protocol.Rejection{Revision: applied + 1, Reason: "expired", Message: "m", At: t0},
		}}
	}
	if err := db.RecordStatus(ctx, []StatusUpdate{rep("d1", 5, 3), rep("d2", 1, 1)}); err != nil {
		t.Fatal(err)
	}
	// Stale (seq 4 < 5) and equal (seq 5) reports are ignored.
	if err := db.RecordStatus(ctx, []StatusUpdate{rep("d1", 4, 1), rep("d1", 5, 2)}); err != nil {
		t.Fatal(err)
	}
	d, _ := db.GetDevice(ctx, "d1")
	if d.StatusSeq != 5 || d.AppliedRevision != 3 || d.AgentVersion != "1.0" || !d.LastSeen.Equal(t0.Add(5*time.Second)) ||
		!d.PolicyExpiresAt.Equal(t0.Add(24*time.Hour)) || len(d.Apps) != 1 || d.Apps[0].Name != "hmi" ||
		d.LastRejected == nil || d.LastRejected.Revision != 4 {
		t.Fatalf("device after status: %+v", d)
	}
	if err := db.RecordStatus(ctx, []StatusUpdate{rep("d1", 6, 4)}); err != nil {
		t.Fatal(err)
	}
	// A report without rejection or apps clears them.
	clear := rep("d1", 7, 4)
	clear.Report.Apps, clear.Report.LastRejected = nil, nil
	if err := db.RecordStatus(ctx, []StatusUpdate{clear}); err != nil {
		t.Fatal(err)
	}
	if d, _ = db.GetDevice(ctx, "d1"); d.AppliedRevision != 4 || d.StatusSeq != 7 || d.LastRejected != nil || d.Apps != nil {
		t.Fatalf("device after newer status: %+v", d)
	}
	// Unknown devices are dropped and named; the rest is stored.
	err := db.RecordStatus(ctx, []StatusUpdate{rep("ghost", 1, 1), rep("d2", 2, 2)})
	if !isNotFound(err) || !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("status from unknown device: %v", err)
	}
	if d, _ = db.GetDevice(ctx, "d2"); d.StatusSeq != 2 {
		t.Fatalf("known device's status not stored next to an unknown one: %+v", d)
	}
}

func TestRecordPresence(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	now := t0.Add(3 * time.Second)
	db.now = func() time.Time { return now }
	mustEnroll(t, db, "d1", nil)
	if d, _ := db.GetDevice(ctx, "d1"); d.Online {
		t.Fatalf("never heard from, but online: %+v", d)
	}
	if err := db.RecordPresence(ctx, "d1", true, t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	// An offline received before the online (e.g. an older connection's
	// last will in the same batch, earlier) does not override.
	if err := db.RecordPresence(ctx, "d1", false, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if d, _ := db.GetDevice(ctx, "d1"); !d.Online || !d.LastSeen.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("after an earlier offline: %+v", d)
	}
	if err := db.RecordPresence(ctx, "d1", false, t0.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	if d, _ := db.GetDevice(ctx, "d1"); d.Online || !d.OfflineAt.Equal(t0.Add(3*time.Second)) || !d.LastSeen.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("after offline: %+v", d)
	}
	// Back online; then silent past the timeout: offline without any
	// message (a device killed, hung or cut off whose will never came).
	if err := db.RecordPresence(ctx, "d1", true, t0.Add(4*time.Second)); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(4*time.Second + DefaultPresenceTimeout - time.Second)
	if d, _ := db.GetDevice(ctx, "d1"); !d.Online {
		t.Fatalf("within the timeout: %+v", d)
	}
	now = t0.Add(4*time.Second + DefaultPresenceTimeout)
	if ds, _ := db.ListDevices(ctx); ds[0].Online {
		t.Fatalf("silent for the whole timeout, still online: %+v", ds[0])
	}
	db.SetPresenceTimeout(10 * time.Minute)
	if d, _ := db.GetDevice(ctx, "d1"); !d.Online || db.PresenceTimeout() != 10*time.Minute {
		t.Fatalf("with a longer timeout: %+v", d)
	}
	// A status heard counts as hearing from the device too.
	db.SetPresenceTimeout(0)
	now = t0.Add(time.Hour)
	if err := db.RecordStatus(ctx, []StatusUpdate{{DeviceID: "d1", Report: protocol.StatusReport{Seq: 1}, At: now}}); err != nil {
		t.Fatal(err)
	}
	if d, _ := db.GetDevice(ctx, "d1"); !d.Online {
		t.Fatalf("after a status: %+v", d)
	}
	unchanged(t, db, ErrNotFound, func() error { return db.RecordPresence(ctx, "ghost", true, t0) }, "ghost")
}

func TestRecordEvents(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	received := t0.Add(time.Hour)
	db.now = func() time.Time { return received }
	mustEnroll(t, db, "d1", nil)
	mustEnroll(t, db, "d2", nil)
	evs := []protocol.Event{
		{ID: "e1", At: t0, Kind: "document_rejected", Severity: "warning", Message: "expired"},
		{ID: "e2", At: t0.Add(time.Minute), Kind: "sideload_blocked", Severity: "security", Message: "blocked", Details: map[string]string{"path": "/x"}},
	}
	if n, err := db.RecordEvents(ctx, "d1", evs); err != nil || n != 2 {
		t.Fatalf("RecordEvents = %d, %v", n, err)
	}
	// Delivered again (QoS 1): nothing new.
	if n, err := db.RecordEvents(ctx, "d1", evs); err != nil || n != 0 {
		t.Fatalf("duplicate RecordEvents = %d, %v", n, err)
	}
	// The same event id from another device is another event.
	if n, err := db.RecordEvents(ctx, "d2", evs[:1]); err != nil || n != 1 {
		t.Fatalf("RecordEvents from d2 = %d, %v", n, err)
	}
	all, err := db.ListEvents(ctx, EventFilter{})
	if err != nil || len(all) != 3 || all[0].ID != "e2" || all[0].Details["path"] != "/x" || !all[0].ReceivedAt.Equal(received) {
		t.Fatalf("ListEvents = %+v, %v", all, err)
	}
	for _, c := range []struct {
		f    EventFilter
		want int
	}{
		{EventFilter{DeviceID: "d1"}, 2},
		{EventFilter{Severity: "security"}, 1},
		{EventFilter{Kind: "document_rejected"}, 2},
		{EventFilter{Since: t0.Add(time.Second)}, 1},
		{EventFilter{Limit: 1}, 1},
	} {
		if got, err := db.ListEvents(ctx, c.f); err != nil || len(got) != c.want {
			t.Errorf("ListEvents(%+v) = %d events, %v; want %d", c.f, len(got), err, c.want)
		}
	}
	unchanged(t, db, ErrNotFound, func() error { _, err := db.RecordEvents(ctx, "ghost", evs); return err }, "ghost")
	unchanged(t, db, ErrInvalid, func() error {
		_, err := db.RecordEvents(ctx, "d1", []protocol.Event{{ID: "e9"}, {ID: ""}})
		return err
	}, "no id")
}

func TestAudit(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	e, err := db.AppendAudit(ctx, AuditEntry{Actor: "admin", Action: "group.create", Target: "g", Kind: AuditChange, Source: "127.0.0.1"})
	if err != nil || e.ID == 0 || !e.At.Equal(t0) {
		t.Fatalf("AppendAudit = %+v, %v", e, err)
	}
	if _, err := db.AppendAudit(ctx, AuditEntry{At: t0.Add(time.Hour), Actor: "device:d1", Action: "sideload.blocked", Kind: AuditSecurity}); err != nil {
		t.Fatal(err)
	}
	all, err := db.ListAudit(ctx, AuditFilter{})
	if err != nil || len(all) != 2 || all[0].Action != "sideload.blocked" || !reflect.DeepEqual(all[1], e) {
		t.Fatalf("ListAudit = %+v, %v", all, err)
	}
	if got, _ := db.ListAudit(ctx, AuditFilter{Kind: AuditChange}); len(got) != 1 || got[0].ID != e.ID {
		t.Fatalf("by kind: %+v", got)
	}
	if got, _ := db.ListAudit(ctx, AuditFilter{Since: t0.Add(time.Minute)}); len(got) != 1 || got[0].Kind != AuditSecurity {
		t.Fatalf("since: %+v", got)
	}
	if got, _ := db.ListAudit(ctx, AuditFilter{Limit: 1}); len(got) != 1 || got[0].Kind != AuditSecurity {
		t.Fatalf("limit: %+v", got)
	}
	unchanged(t, db, ErrInvalid, func() error {
		_, err := db.AppendAudit(ctx, AuditEntry{Actor: "a", Action: "x", Kind: "gossip"})
		return err
	}, "kind")
	unchanged(t, db, ErrInvalid, func() error { _, err := db.AppendAudit(ctx, AuditEntry{Action: "x", Kind: AuditChange}); return err }, "actor")
}

// TestKillNine starts a child process that appends audit entries and prints
// the id of each one after AppendAudit returns, kills it with SIGKILL in the
// middle of its work, and checks that every acknowledged entry is there.
func TestKillNine(t *testing.T) {
	if path := os.Getenv("EDGEWARDEN_STORE_KILL_CHILD"); path != "" {
		killChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "c.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillNine$")
	cmd.Env = append(os.Environ(), "EDGEWARDEN_STORE_KILL_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []int64
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 200 {
		id, err := strconv.ParseInt(strings.TrimPrefix(sc.Text(), "ack "), 10, 64)
		if err != nil {
			continue
		}
		acked = append(acked, id)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if len(acked) < 200 {
		t.Fatalf("child acknowledged only %d entries before it stopped", len(acked))
	}
	db := openAt(t, path)
	entries, err := db.ListAudit(context.Background(), AuditFilter{Limit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	have := map[int64]bool{}
	for _, e := range entries {
		have[e.ID] = true
	}
	for _, id := range acked {
		if !have[id] {
			t.Fatalf("acknowledged audit entry %d is missing after kill -9 (%d stored, %d acknowledged)", id, len(entries), len(acked))
		}
	}
}

func killChild(path string) {
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		e, err := db.AppendAudit(ctx, AuditEntry{Actor: "child", Action: "write", Target: strconv.Itoa(i), Kind: AuditChange})
		if err != nil {
			fmt.Println("append:", err)
			os.Exit(1)
		}
		fmt.Printf("ack %d\n", e.ID)
	}
}

// A device cannot date an event after it arrived: a forged far-future time
// would keep it at the top of every list and inside "the last 24 hours"
// for good.
func TestRecordEventsFutureTimeBounded(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustEnroll(t, db, "d1", nil)
	forged := protocol.Event{ID: "f1", At: t0.Add(100 * 365 * 24 * time.Hour), Kind: "sideload_blocked", Severity: "security", Message: "x"}
	if _, err := db.RecordEvents(ctx, "d1", []protocol.Event{forged}); err != nil {
		t.Fatal(err)
	}
	evs, err := db.ListEvents(ctx, EventFilter{})
	if err != nil || len(evs) != 1 || !evs[0].At.Equal(t0) {
		t.Fatalf("events %+v, %v; want the forged time bounded by its arrival %v", evs, err, t0)
	}
	counts, err := db.SecurityEventCounts(ctx, t0.Add(24*time.Hour))
	if err != nil || counts["d1"] != 0 {
		t.Fatalf("a day later, the forged event still counts as recent: %v, %v", counts, err)
	}
}

// One forged status with a huge sequence number must not freeze the
// controller's view: the genuine agent's next report, from its own run,
// replaces it; within one run, older reports are still ignored.
func TestRecordStatusForgedSeqDoesNotFreeze(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustEnroll(t, db, "d1", nil)
	run := t0.Add(-time.Hour)
	report := func(seq, applied uint64, startedAt time.Time) StatusUpdate {
		return StatusUpdate{DeviceID: "d1", At: t0, Report: protocol.StatusReport{Schema: 1, DeviceID: "d1", Seq: seq, AppliedRevision: applied, StartedAt: startedAt}}
	}
	if err := db.RecordStatus(ctx, []StatusUpdate{report(10, 3, run)}); err != nil {
		t.Fatal(err)
	}
	// Forged with a stolen key: another "run", seq at the maximum, a lie.
	if err := db.RecordStatus(ctx, []StatusUpdate{report(protocol.MaxSeq, 99, t0.Add(1000*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	if d, _ := db.GetDevice(ctx, "d1"); d.AppliedRevision != 99 {
		t.Fatalf("forged report not stored at all (%+v): the test does not exercise the rule", d)
	}
	// The genuine agent reports again: its report wins.
	if err := db.RecordStatus(ctx, []StatusUpdate{report(11, 4, run)}); err != nil {
		t.Fatal(err)
	}
	if d, _ := db.GetDevice(ctx, "d1"); d.AppliedRevision != 4 || d.StatusSeq != 11 {
		t.Fatalf("after the genuine report: %+v; the forged sequence number froze the device", d)
	}
	// Within the run, a stale report is still ignored.
	if err := db.RecordStatus(ctx, []StatusUpdate{report(9, 1, run)}); err != nil {
		t.Fatal(err)
	}
	if d, _ := db.GetDevice(ctx, "d1"); d.AppliedRevision != 4 {
		t.Fatalf("stale report of the same run applied: %+v", d)
	}
}

// TestDesiredSigners: the key ids that signed a record are kept beside its
// envelope (so a snapshot need not read envelopes): given by the caller,
// read from the envelope when not, and filled from the envelope by
// migration 10 for records stored before it.
func TestDesiredSigners(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustEnroll(t, db, "d1", nil)
	mustEnroll(t, db, "d2", nil)
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	env := []byte(`{"payloadType":"x","payload":"e30=","signatures":[{"keyid":"k1","sig":"AA=="},{"keyid":"k2","sig":"AA=="}]}`)
	recs := []DesiredRecord{
		{DeviceID: "d1", Revision: 1, Digest: "a", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), Envelope: env},
		{DeviceID: "d2", Revision: 1, Digest: "b", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), Signers: []string{"k3"}, Envelope: env},
	}
	if err := db.PutDesired(ctx, recs); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		snap, err := db.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := snap.Desired["d1"].Signers; !reflect.DeepEqual(got, []string{"k1", "k2"}) {
			t.Errorf("%s: d1 signers %q, want those of its envelope [k1 k2]", when, got)
		}
		if snap.Desired["d1"].Envelope != nil {
			t.Errorf("%s: the snapshot read an envelope", when)
		}
	}
	check("stored")
	if snap, _ := db.Snapshot(ctx); !reflect.DeepEqual(snap.Desired["d2"].Signers, []string{"k3"}) {
		t.Errorf("d2 signers %q, want the ones given [k3]", snap.Desired["d2"].Signers)
	}

	// As a database from before migration 10 has them: none, then the
	// migration's backfill.
	if _, err := db.write.ExecContext(ctx, `UPDATE desired SET signers = ''`); err != nil {
		t.Fatal(err)
	}
	if snap, _ := db.Snapshot(ctx); snap.Desired["d1"].Signers != nil {
		t.Fatalf("signers not cleared: %q", snap.Desired["d1"].Signers)
	}
	if _, err := db.write.ExecContext(ctx, backfillSigners); err != nil {
		t.Fatal(err)
	}
	check("backfilled")
}
