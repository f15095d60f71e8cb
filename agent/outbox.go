package agent

import (
	"context"
	"errors"
	"time"

	"github.com/edgewarden/edgewarden/agent/apply"
	"github.com/edgewarden/edgewarden/agent/outbox"
	"github.com/edgewarden/edgewarden/protocol"
)

// newOutbox builds the sender of the durable outbox (agent/outbox): events
// leave the outbox only on the controller's acknowledgement.
func (a *Agent) newOutbox() (*outbox.Sender, error) {
	return outbox.New(outbox.Options{
		DeviceID:       a.id.DeviceID,
		Store:          a.store,
		Link:           a.link,
		AckTimeout:     a.opts.AckTimeout,
		PublishTimeout: a.opts.PublishTimeout,
		NewID:          apply.RandomID,
		Now:            a.opts.Now,
		Logger:         a.log,
	})
}

// drainOutbox sends a bounded part of the outbox; if more is waiting, the
// loop comes back to it after whatever else is pending.
func (a *Agent) drainOutbox(ctx context.Context) {
	if a.outbox.Drain(ctx) {
		notify(a.drain)
	}
}

// onAck handles the controller's acknowledgement (link delivery goroutine).
// Its numbers are checked against what was sent: a forged or stale one
// deletes nothing.
func (a *Agent) onAck(raw []byte) {
	ack, err := protocol.DecodeAck(raw, a.id.DeviceID)
	if err != nil {
		a.log.Warn("ignoring a malformed acknowledgement", "err", err)
		return
	}
	if ack.StatusSeq != 0 && !a.outbox.AckStatus(ack.StatusSeq) {
		a.log.Warn("ignoring an acknowledgement of a status report never sent", "seq", ack.StatusSeq)
	}
	if ack.Events == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := a.outbox.Ack(ctx, *ack.Events)
	switch {
	case errors.Is(err, outbox.ErrUnknownRange):
		// A late acknowledgement of a batch cut differently before a
		// reconnect, or a forged one: its events are sent again.
		a.log.Debug("ignoring an acknowledgement", "err", err)
		return
	case err != nil:
		a.log.Error("could not remove acknowledged events; they will be sent again", "err", err)
		return
	}
	a.log.Debug("controller stored events", "events", n, "first", ack.Events.First, "last", ack.Events.Last)
	notify(a.drain) // the window has room
}
