package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/agent/outbox"
	"github.com/edgewarden/edgewarden/agent/state"
	"github.com/edgewarden/edgewarden/protocol"
)

// link records what was published; up can be switched off.
type link struct {
	mu      sync.Mutex
	up      bool
	batches []*protocol.EventBatch
}

func (l *link) Connected() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.up }

func (l *link) Publish(_ context.Context, topic string, _ bool, payload []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.up {
		return errors.New("not connected")
	}
	b, err := protocol.DecodeEvents(payload, "dev-1")
	if err != nil || topic != protocol.EventsTopic("dev-1") {
		return fmt.Errorf("bad publish on %s: %v", topic, err)
	}
	l.batches = append(l.batches, b)
	return nil
}

func (l *link) sent() []*protocol.EventBatch {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*protocol.EventBatch(nil), l.batches...)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	store *state.Store
	link  *link
	clock *clock
	s     *outbox.Sender
}

func newFixture(t *testing.T, events int, opt func(*outbox.Options)) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := state.Open(ctx, filepath.Join(t.TempDir(), "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for i := range events {
		if err := st.Enqueue(ctx, protocol.Event{ID: fmt.Sprintf("ev-%05d", i), Kind: "test", Severity: "info", At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{store: st, link: &link{up: true}, clock: &clock{t: time.Unix(1700000000, 0)}}
	o := outbox.Options{DeviceID: "dev-1", Store: st, Link: f.link, NewID: func() string { return "id" }, Now: f.clock.now, AckTimeout: time.Minute}
	if opt != nil {
		opt(&o)
	}
	if f.s, err = outbox.New(o); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) pending(t *testing.T) int {
	t.Helper()
	n, err := f.store.CountEvents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Never trust a peer's numbers: an acknowledgement deletes entries only if
// it names exactly a batch that was sent. Ranges above what was sent,
// ranges spanning or covering several batches, and ranges never sent
// delete nothing; the real acknowledgement then deletes exactly its batch.
func TestForgedAcksDeleteNothing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 1200, func(o *outbox.Options) { o.MaxBatchesPerDrain = 1 })
	f.s.Drain(ctx)
	sent := f.link.sent()
	if len(sent) != 1 || sent[0].First != 1 || sent[0].Last != protocol.MaxEventsPerBatch {
		t.Fatalf("first drain sent %d batches: %+v", len(sent), sent)
	}
	for _, r := range []protocol.SeqRange{
		{First: 1201, Last: 1300},         // above anything queued
		{First: 501, Last: 1000},          // queued, never sent
		{First: 1, Last: protocol.MaxSeq}, // covers everything
		{First: 1, Last: 1200},            // covers sent and unsent
		{First: 2, Last: 500},             // part of the batch
		{First: 1, Last: 499},             // part of the batch
		{First: 500, Last: 500},           // its last position only
		{First: 1 << 40, Last: 1<<40 + 1}, // far away
		{First: 1, Last: 500 + 1<<32},     // wraps in 32 bits
		{First: protocol.MaxSeq, Last: protocol.MaxSeq},
	} {
		if n, err := f.s.Ack(ctx, r); !errors.Is(err, outbox.ErrUnknownRange) || n != 0 {
			t.Errorf("forged ack %+v: deleted %d, err %v", r, n, err)
		}
	}
	if n := f.pending(t); n != 1200 {
		t.Fatalf("%d events left after forged acks, want 1200", n)
	}
	if n, err := f.s.Ack(ctx, protocol.SeqRange{First: 1, Last: 500}); err != nil || n != 500 {
		t.Fatalf("real ack deleted %d, %v", n, err)
	}
	// The same acknowledgement again (a replay) deletes nothing more.
	if n, err := f.s.Ack(ctx, protocol.SeqRange{First: 1, Last: 500}); !errors.Is(err, outbox.ErrUnknownRange) || n != 0 {
		t.Fatalf("replayed ack: %d, %v", n, err)
	}
	if n := f.pending(t); n != 700 {
		t.Fatalf("%d events left, want 700", n)
	}
	if st := f.s.Stats(); st.Refused != 11 || st.Acked != 1 || st.Deleted != 500 {
		t.Fatalf("stats %+v", st)
	}
	// A status seq never published is refused too.
	if f.s.AckStatus(7) {
		t.Fatal("acknowledgement of an unsent status report accepted")
	}
}

// One Drain sends a bounded number of batches, and no more than the
// window waits for acknowledgements, so a huge backlog neither starves the
// agent's loop nor floods the broker.
func TestDrainIsBounded(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 4*protocol.MaxEventsPerBatch, func(o *outbox.Options) { o.MaxBatchesPerDrain = 2; o.Window = 3 })
	if more := f.s.Drain(ctx); !more || len(f.link.sent()) != 2 {
		t.Fatalf("first drain: more=%v, %d batches", more, len(f.link.sent()))
	}
	if more := f.s.Drain(ctx); more || len(f.link.sent()) != 3 {
		t.Fatalf("window of 3: more=%v, %d batches", more, len(f.link.sent()))
	}
	if f.s.Drain(ctx); len(f.link.sent()) != 3 {
		t.Fatal("sent beyond the window")
	}
	b := f.link.sent()[0]
	if _, err := f.s.Ack(ctx, protocol.SeqRange{First: b.First, Last: b.Last}); err != nil {
		t.Fatal(err)
	}
	if f.s.Drain(ctx); len(f.link.sent()) != 4 {
		t.Fatalf("%d batches after one ack, want 4", len(f.link.sent()))
	}
	// Batches follow each other without gaps or overlaps.
	var next uint64 = 1
	for _, b := range f.link.sent() {
		if b.First != next || b.Last != b.First+protocol.MaxEventsPerBatch-1 || len(b.Events) != protocol.MaxEventsPerBatch {
			t.Fatalf("batch %d-%d with %d events, want it to start at %d", b.First, b.Last, len(b.Events), next)
		}
		next = b.Last + 1
	}
}

// Unacknowledged batches are sent again after a reconnect and after the
// timeout, which doubles while nothing is acknowledged; everything ends
// acknowledged exactly once in the store, with nothing lost.
func TestResendAfterReconnectAndTimeout(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 3, func(o *outbox.Options) { o.AckTimeout = time.Minute; o.MaxAckTimeout = 3 * time.Minute })
	f.s.Drain(ctx)
	if len(f.link.sent()) != 1 {
		t.Fatal("nothing sent")
	}
	f.s.Drain(ctx)
	if len(f.link.sent()) != 1 {
		t.Fatal("sent again before the timeout")
	}
	// Reconnect: sent again at once.
	f.s.Reset()
	f.s.Drain(ctx)
	if len(f.link.sent()) != 2 {
		t.Fatal("not sent again after a reconnect")
	}
	// Timeout: sent again, then the wait doubles (1m, 2m, capped at 3m).
	for i, wait := range []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute, 3 * time.Minute} {
		f.clock.add(wait - time.Second)
		f.s.Drain(ctx)
		if got := len(f.link.sent()); got != 2+i {
			t.Fatalf("re-sent before waiting %s (%d sends)", wait, got)
		}
		f.clock.add(time.Second)
		f.s.Drain(ctx)
		if got := len(f.link.sent()); got != 3+i {
			t.Fatalf("not re-sent after %s (%d sends)", wait, got)
		}
	}
	// An acknowledgement of the first send still counts.
	if n, err := f.s.Ack(ctx, protocol.SeqRange{First: 1, Last: 3}); err != nil || n != 3 {
		t.Fatalf("ack after re-sends: %d %v", n, err)
	}
	if n := f.pending(t); n != 0 {
		t.Fatalf("%d left", n)
	}
	// The link down: nothing is sent, nothing lost.
	f.store.Enqueue(ctx, protocol.Event{ID: "late", Kind: "k", Severity: "info"})
	f.link.mu.Lock()
	f.link.up = false
	f.link.mu.Unlock()
	if f.s.Drain(ctx) || f.pending(t) != 1 {
		t.Fatal("drained while down")
	}
}

func TestStatusOverdue(t *testing.T) {
	f := newFixture(t, 0, nil)
	if f.s.StatusOverdue() {
		t.Fatal("overdue before any report")
	}
	f.s.SentStatus(4)
	f.clock.add(2 * time.Minute)
	if !f.s.StatusOverdue() {
		t.Fatal("unacknowledged report not overdue")
	}
	if f.s.StatusOverdue() {
		t.Fatal("overdue again without waiting the doubled timeout")
	}
	if f.s.AckStatus(5) {
		t.Fatal("acknowledgement of a later seq than sent accepted")
	}
	if !f.s.AckStatus(4) {
		t.Fatal("acknowledgement refused")
	}
	f.clock.add(time.Hour)
	if f.s.StatusOverdue() {
		t.Fatal("acknowledged report overdue")
	}
}
