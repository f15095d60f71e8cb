package server

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
)

// refusalWindow is the period refused device messages are summarised over.
const refusalWindow = time.Minute

// refusals keeps the audit log readable while a device floods it with
// messages the controller refuses (malformed, wrong device id, too large):
// the first refusal of a device in a window is written at once, with its
// detail; the rest of that window become one summary entry (how many, of
// which kinds and reasons) when the window closes. So a device costs at most
// two audit rows and two SIEM lines a minute, however fast it sends.
// Safe for concurrent use.
type refusals struct {
	db  *store.DB
	now func() time.Time
	// written is called after an entry of kind security is stored.
	written func()

	mu      sync.Mutex
	pending map[string]*refusalSummary // by device id
}

type refusalSummary struct {
	since   time.Time
	more    int            // refusals after the first, not yet written
	reasons map[string]int // "kind/reason" → count, of those
}

// add records one refused message; it writes the audit entry when it is the
// device's first in the window.
func (r *refusals) add(ctx context.Context, deviceID, kind string, err error) error {
	now := r.now().UTC()
	r.mu.Lock()
	sum := r.pending[deviceID]
	first := sum == nil || now.Sub(sum.since) >= refusalWindow
	var closed *refusalSummary
	if first {
		closed = sum
		if r.pending == nil {
			r.pending = map[string]*refusalSummary{}
		}
		r.pending[deviceID] = &refusalSummary{since: now, reasons: map[string]int{}}
	} else {
		sum.more++
		sum.reasons[kind+"/"+protocol.Reason(err)]++
	}
	r.mu.Unlock()
	if closed != nil && closed.more > 0 {
		if err := r.writeSummary(ctx, deviceID, closed); err != nil {
			return err
		}
	}
	if !first {
		return nil
	}
	return r.write(ctx, store.AuditEntry{
		At: now, Actor: "device:" + deviceID, Action: "device.message-refused", Target: deviceID,
		Detail: fmt.Sprintf("%s message dropped: %v (further refusals from this device in the next minute are summarised in one entry)", kind, err),
		Kind:   store.AuditSecurity,
	})
}

// flush writes the summaries of windows that have closed by now; with all,
// every pending summary (at shutdown).
func (r *refusals) flush(ctx context.Context, all bool) error {
	now := r.now().UTC()
	r.mu.Lock()
	due := map[string]*refusalSummary{}
	for id, sum := range r.pending {
		if all || now.Sub(sum.since) >= refusalWindow {
			due[id] = sum
			delete(r.pending, id)
		}
	}
	r.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(due)) {
		if sum := due[id]; sum.more > 0 {
			if err := r.writeSummary(ctx, id, sum); err != nil {
				return err
			}
		}
	}
	return nil
}

// run flushes closed windows until ctx ends.
func (r *refusals) run(ctx context.Context) {
	t := time.NewTicker(refusalWindow / 6)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// On a store error the summary is lost (the refusals still
			// count in edgewarden_controller_device_messages_total).
			_ = r.flush(ctx, false)
		}
	}
}

func (r *refusals) writeSummary(ctx context.Context, deviceID string, sum *refusalSummary) error {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(sum.reasons)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, sum.reasons[k]))
	}
	return r.write(ctx, store.AuditEntry{
		At: r.now().UTC(), Actor: "device:" + deviceID, Action: "device.messages-refused", Target: deviceID,
		Detail: fmt.Sprintf("%d more messages refused in the minute from %s: %s", sum.more, sum.since.Format(time.RFC3339), strings.Join(parts, ", ")),
		Kind:   store.AuditSecurity,
	})
}

func (r *refusals) write(ctx context.Context, e store.AuditEntry) error {
	if _, err := r.db.AppendAudit(context.WithoutCancel(ctx), e); err != nil {
		return err
	}
	if r.written != nil {
		r.written()
	}
	return nil
}
