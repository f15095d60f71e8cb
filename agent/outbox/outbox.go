// Package outbox sends the agent's durable outbox (agent/state) to the
// controller and deletes an entry only when the controller says it stored
// it (protocol.Ack on the device's ack topic), never on the broker's PUBACK:
// a broker that acknowledges and then loses a message (an external
// mosquitto killed before its autosave) cannot lose events.
//
// A Sender sends batches in outbox order, each naming the outbox positions
// it covers; at most Window batches wait for their acknowledgement at a
// time, and one Drain call sends at most MaxBatchesPerDrain, so a large
// backlog does not starve the agent's loop. What is not acknowledged is sent
// again after a reconnect (Reset) and after AckTimeout, which doubles after
// every re-send without progress (up to MaxAckTimeout). The controller keeps
// each event id once, so a re-sent event is stored once.
//
// Acknowledgements are not trusted further than what was sent: an Ack
// deletes entries only if it names exactly the range of a batch this Sender
// sent, so a forged or confused one (a range above anything sent, or
// spanning several batches) deletes nothing.
//
// The Sender also tracks the status report: Overdue says when the last one
// published was not acknowledged in time, so the agent publishes a fresh
// one.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/edgewarden/edgewarden/agent/state"
	"github.com/edgewarden/edgewarden/protocol"
)

// Store is the durable outbox; *state.Store implements it.
type Store interface {
	Pending(ctx context.Context, after int64, limit int) ([]state.Entry, error)
	DeleteRange(ctx context.Context, first, last int64) (int, error)
	DeleteEvents(ctx context.Context, ids []string) error
	ReportDrops(ctx context.Context, id string, now time.Time) (bool, error)
}

var _ Store = (*state.Store)(nil)

// Link publishes to the broker; *link.Link implements it.
type Link interface {
	Publish(ctx context.Context, topic string, retained bool, payload []byte) error
	Connected() bool
}

// Defaults of Options.
const (
	DefaultMaxBatchesPerDrain = 4
	DefaultWindow             = 8
	DefaultAckTimeout         = 30 * time.Second
	DefaultMaxAckTimeout      = 10 * time.Minute
	DefaultPublishTimeout     = 10 * time.Second
)

// Options configure a Sender.
type Options struct {
	DeviceID string
	Store    Store
	Link     Link
	// MaxBatchesPerDrain bounds the batches one Drain sends. Zero means
	// DefaultMaxBatchesPerDrain.
	MaxBatchesPerDrain int
	// Window bounds the batches sent and not yet acknowledged. Zero means
	// DefaultWindow.
	Window int
	// AckTimeout is how long the oldest unacknowledged batch (or status
	// report) waits before everything unacknowledged is sent again; it
	// doubles after each re-send without progress, up to MaxAckTimeout.
	// Zero means DefaultAckTimeout and DefaultMaxAckTimeout.
	AckTimeout, MaxAckTimeout time.Duration
	// PublishTimeout bounds the wait for the broker's PUBACK. Zero means
	// DefaultPublishTimeout.
	PublishTimeout time.Duration
	// NewID makes the id of a drop report (state.ReportDrops). Required.
	NewID func() string
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger. Nil means slog.Default().
	Logger *slog.Logger
}

type sentBatch struct {
	r  protocol.SeqRange
	at time.Time
}

// Sender sends the outbox. Drain is called from one goroutine (the agent's
// loop); Ack, AckStatus and Reset may be called from any goroutine.
type Sender struct {
	opts Options

	mu       sync.Mutex
	gen      uint64      // incremented by every reset: a Drain in flight does not move the cursor of a newer connection
	cursor   int64       // highest position sent since the last reset
	inflight []sentBatch // sent since the last reset, unacknowledged, oldest first
	sent     map[protocol.SeqRange]bool
	order    []protocol.SeqRange // sent's keys, oldest first, to bound it
	wait     time.Duration
	stats    Stats

	statusSeq    uint64 // last status report published
	statusAt     time.Time
	statusAcked  uint64
	statusWaited time.Duration
}

// Stats count what the Sender did, for metrics.
type Stats struct {
	Batches  uint64 // batches published (PUBACKed by the broker)
	Acked    uint64 // batches acknowledged by the controller
	Deleted  uint64 // outbox entries deleted on acknowledgement
	Resends  uint64 // times everything unacknowledged was sent again after a timeout
	Refused  uint64 // acknowledgements that named no batch sent (ignored)
	Unacked  int    // batches waiting for their acknowledgement
	TooLarge uint64 // events dropped because alone they exceed a batch
}

// maxSent bounds the remembered sent ranges: late acknowledgements of
// older ones are ignored (their entries are sent again and deduplicated).
const maxSent = 1024

// New prepares a Sender.
func New(opts Options) (*Sender, error) {
	if opts.Store == nil || opts.Link == nil || opts.NewID == nil {
		return nil, errors.New("outbox: Store, Link and NewID are required")
	}
	if err := protocol.ValidateDeviceID(opts.DeviceID); err != nil {
		return nil, err
	}
	if opts.MaxBatchesPerDrain <= 0 {
		opts.MaxBatchesPerDrain = DefaultMaxBatchesPerDrain
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = DefaultAckTimeout
	}
	if opts.MaxAckTimeout <= 0 {
		opts.MaxAckTimeout = DefaultMaxAckTimeout
	}
	opts.MaxAckTimeout = max(opts.MaxAckTimeout, opts.AckTimeout)
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = DefaultPublishTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Sender{opts: opts, sent: map[protocol.SeqRange]bool{}, wait: opts.AckTimeout, statusWaited: opts.AckTimeout}, nil
}

// Reset makes the next Drain send everything unacknowledged again, from
// the oldest entry: call it after every (re)connect. Acknowledgements of
// batches sent before still count.
func (s *Sender) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

func (s *Sender) resetLocked() {
	s.gen++
	s.cursor = 0
	s.inflight = nil
}

// Stats returns the Sender's counters.
func (s *Sender) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Unacked = len(s.inflight)
	return st
}

// Drain sends up to MaxBatchesPerDrain batches of what was not sent yet,
// within the window. It returns true if it stopped with more to send
// (call it again soon), false when there is nothing more to send now (the
// outbox is empty, the window is full, or the link is down).
func (s *Sender) Drain(ctx context.Context) bool {
	if !s.opts.Link.Connected() {
		return false
	}
	s.checkTimeout()
	for range s.opts.MaxBatchesPerDrain {
		if ctx.Err() != nil || !s.opts.Link.Connected() {
			return false
		}
		s.mu.Lock()
		full, after, gen := len(s.inflight) >= s.opts.Window, s.cursor, s.gen
		s.mu.Unlock()
		if full {
			return false
		}
		entries, err := s.opts.Store.Pending(ctx, after, protocol.MaxEventsPerBatch)
		if err != nil {
			s.opts.Logger.Error("read outbox", "err", err)
			return false
		}
		if len(entries) == 0 {
			return false
		}
		b, n, err := encodeBatch(s.opts.DeviceID, entries)
		if errors.Is(err, errEventTooLarge) {
			// It can never be sent; keeping it would block the outbox.
			s.opts.Logger.Error("dropping undeliverable event", "err", err)
			if err := s.opts.Store.DeleteEvents(ctx, []string{entries[0].Event.ID}); err != nil {
				s.opts.Logger.Error("remove undeliverable event", "err", err)
				return false
			}
			s.mu.Lock()
			s.stats.TooLarge++
			s.mu.Unlock()
			continue
		}
		if err != nil {
			s.opts.Logger.Error("encode event batch", "err", err)
			return false
		}
		r := protocol.SeqRange{First: uint64(entries[0].Pos), Last: uint64(entries[n-1].Pos)}
		// Recorded before publishing: the controller's acknowledgement
		// can arrive before the broker's PUBACK.
		s.mu.Lock()
		if gen != s.gen {
			s.mu.Unlock()
			continue // reconnected meanwhile: start again from the oldest
		}
		s.cursor = entries[n-1].Pos
		s.inflight = append(s.inflight, sentBatch{r: r, at: s.opts.Now()})
		s.remember(r)
		s.mu.Unlock()

		pctx, cancel := context.WithTimeout(ctx, s.opts.PublishTimeout)
		err = s.opts.Link.Publish(pctx, protocol.EventsTopic(s.opts.DeviceID), false, b)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.opts.Logger.Warn("could not send events; keeping them queued", "events", n, "err", err)
			}
			s.mu.Lock()
			if gen == s.gen {
				s.resetLocked()
			}
			s.mu.Unlock()
			return false
		}
		s.mu.Lock()
		s.stats.Batches++
		s.mu.Unlock()
		s.opts.Logger.Debug("sent events; waiting for the controller's acknowledgement", "events", n, "first", r.First, "last", r.Last)
	}
	return true
}

// remember records r as sent, forgetting the oldest beyond maxSent.
func (s *Sender) remember(r protocol.SeqRange) {
	if s.sent[r] {
		return
	}
	s.sent[r] = true
	s.order = append(s.order, r)
	if len(s.order) > maxSent {
		delete(s.sent, s.order[0])
		s.order = s.order[1:]
	}
}

// checkTimeout starts a re-send of everything unacknowledged when the
// oldest batch waited longer than the current timeout, and doubles it.
func (s *Sender) checkTimeout() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.inflight) == 0 || s.opts.Now().Sub(s.inflight[0].at) < s.wait {
		return
	}
	s.opts.Logger.Warn("events not acknowledged by the controller in time; sending them again",
		"batches", len(s.inflight), "waited", s.wait, "next_wait", min(2*s.wait, s.opts.MaxAckTimeout))
	s.stats.Resends++
	s.wait = min(2*s.wait, s.opts.MaxAckTimeout)
	s.resetLocked()
}

// ErrUnknownRange is returned by Ack for a range no batch had.
var ErrUnknownRange = errors.New("acknowledgement names no batch this agent sent")

// Ack deletes the entries of the batch r names, once the controller
// stored it, and returns how many were deleted. A range that is not
// exactly one this Sender sent deletes nothing (ErrUnknownRange). After
// deleting, it queues a report of events dropped while the outbox was
// full, if any.
func (s *Sender) Ack(ctx context.Context, r protocol.SeqRange) (int, error) {
	s.mu.Lock()
	known := s.sent[r]
	if !known {
		s.stats.Refused++
	}
	s.mu.Unlock()
	if !known {
		return 0, fmt.Errorf("%w: %d-%d", ErrUnknownRange, r.First, r.Last)
	}
	// Forgotten only once deleted: if the delete fails (a full disk) the
	// batch stays in flight and is sent again after the timeout.
	n, err := s.opts.Store.DeleteRange(ctx, int64(r.First), int64(r.Last))
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	delete(s.sent, r)
	for i, b := range s.inflight {
		if b.r == r {
			s.inflight = append(s.inflight[:i], s.inflight[i+1:]...)
			break
		}
	}
	s.wait = s.opts.AckTimeout // progress
	s.stats.Acked++
	s.stats.Deleted += uint64(n)
	s.mu.Unlock()
	if _, err := s.opts.Store.ReportDrops(ctx, s.opts.NewID(), s.opts.Now()); err != nil {
		s.opts.Logger.Warn("could not queue the report of dropped events; it is tried again with the next acknowledgement", "err", err)
	}
	return n, nil
}

// SentStatus records that the status report seq is being published: call
// it before publishing, since the controller's acknowledgement can arrive
// before the broker's PUBACK.
func (s *Sender) SentStatus(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.statusSeq, s.statusAt = seq, s.opts.Now()
}

// AckStatus records the controller's acknowledgement of status report seq.
// A seq never published is ignored (and reported false).
func (s *Sender) AckStatus(seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq == 0 || seq > s.statusSeq {
		s.stats.Refused++
		return false
	}
	if seq > s.statusAcked {
		s.statusAcked = seq
	}
	s.statusWaited = s.opts.AckTimeout
	return true
}

// StatusOverdue reports whether the last status report published was not
// acknowledged within the timeout; it then doubles the timeout (up to
// MaxAckTimeout), so the caller publishes a fresh report with backoff.
func (s *Sender) StatusOverdue() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.statusSeq == 0 || s.statusAcked >= s.statusSeq || s.opts.Now().Sub(s.statusAt) < s.statusWaited {
		return false
	}
	s.statusWaited = min(2*s.statusWaited, s.opts.MaxAckTimeout)
	s.statusAt = s.opts.Now()
	return true
}

var errEventTooLarge = errors.New("event too large")

// encodeBatch encodes as many of entries (in order) as fit in one
// EventBatch under protocol.MaxEventsBytes, and returns how many it took.
func encodeBatch(deviceID string, entries []state.Entry) ([]byte, int, error) {
	evs := make([]protocol.Event, len(entries))
	for i, e := range entries {
		evs[i] = e.Event
	}
	n := len(evs)
	for {
		b, err := json.Marshal(protocol.EventBatch{Schema: protocol.Schema, DeviceID: deviceID, Events: evs[:n],
			First: uint64(entries[0].Pos), Last: uint64(entries[n-1].Pos)})
		if err != nil {
			return nil, 0, err
		}
		if len(b) <= protocol.MaxEventsBytes {
			return b, n, nil
		}
		if n == 1 {
			return nil, 0, fmt.Errorf("%w: event %s (%s) alone is %d bytes, limit %d", errEventTooLarge, evs[0].ID, evs[0].Kind, len(b), protocol.MaxEventsBytes)
		}
		n /= 2
	}
}
