package state_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/agent/state"
	"github.com/edgewarden/edgewarden/protocol"
)

func open(t *testing.T, path string) *state.Store {
	t.Helper()
	s, err := state.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMigrationsAreIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	s := open(t, path)
	v1, err := s.SchemaVersion(context.Background())
	if err != nil || v1 < 1 {
		t.Fatalf("schema version %d, %v", v1, err)
	}
	s.Close()
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	v2, err := open(t, path).SchemaVersion(context.Background())
	if err != nil || v2 != v1 {
		t.Fatalf("reopened schema version %d (%v), want %d", v2, err, v1)
	}
}

func TestSeqOnlyGrowsAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	s := open(t, path)
	var last uint64
	for range 3 {
		n, err := s.NextSeq(context.Background())
		if err != nil || n <= last {
			t.Fatalf("seq %d after %d (%v)", n, last, err)
		}
		last = n
	}
	s.Close()
	n, err := open(t, path).NextSeq(context.Background())
	if err != nil || n <= last {
		t.Fatalf("seq after reopen %d, last was %d (%v)", n, last, err)
	}
}

func TestAppliedRoundTrip(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "agent.db"))
	ctx := context.Background()
	if d, err := s.Applied(ctx); d != nil || err != nil {
		t.Fatalf("empty store: %+v %v", d, err)
	}
	issued := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	want := state.AppliedDoc{Envelope: []byte("env"), Applied: protocol.Applied{Revision: 9, ContentDigest: "abc", IssuedAt: issued},
		ExpiresAt: issued.Add(time.Hour), AppliedAt: issued.Add(time.Second)}
	if err := s.RecordRejection(ctx, state.StoredRejection{Rejection: protocol.Rejection{Reason: "replay", Message: "m", At: issued}, Digest: "d"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveApplied(ctx, want, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.Applied(ctx)
	if err != nil || string(got.Envelope) != "env" || got.Revision != 9 || !got.IssuedAt.Equal(issued) || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("applied %+v, %v", got, err)
	}
	if rej, _ := s.LastRejection(ctx); rej != nil {
		t.Fatal("applying did not clear the last rejection")
	}
}

func TestOutbox(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "agent.db"))
	ctx := context.Background()
	for i := range 5 {
		if err := s.Enqueue(ctx, protocol.Event{ID: fmt.Sprint("e", i), Kind: "k", At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	// The same id again is the same event.
	if err := s.Enqueue(ctx, protocol.Event{ID: "e0", Kind: "dup"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(ctx, protocol.Event{ID: "", Kind: "k"}); err == nil {
		t.Fatal("event without id accepted")
	}
	evs, err := s.PendingEvents(ctx, 3)
	if err != nil || len(evs) != 3 || evs[0].ID != "e0" || evs[0].Kind != "k" || evs[2].ID != "e2" {
		t.Fatalf("pending %+v, %v", evs, err)
	}
	if err := s.DeleteEvents(ctx, []string{"e0", "e1", "e2"}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.CountEvents(ctx); n != 2 {
		t.Fatalf("%d events left, want 2", n)
	}
}
