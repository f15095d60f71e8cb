package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
)

// ingest stores one message a device published. The broker calls it before
// it acknowledges the message, so the embedded broker's PUBACK to the
// device means committed here. Once committed, an end-to-end
// acknowledgement goes to the device's ack topic (ack.go): an external
// broker's PUBACK does not mean stored, and only that ack lets the agent
// delete what it sent. A storage error is returned, so the message is not
// acknowledged and the agent sends it again. A malformed message can never
// become valid: it is logged, recorded in the audit log as a security event
// and dropped (PUBACKed, never acknowledged end to end; the agent re-sends
// it with backoff but it holds nothing else up).
func (s *Server) ingest(ctx context.Context, deviceID, kind string, payload []byte) error {
	err := s.store(ctx, deviceID, kind, payload)
	result := "stored"
	switch {
	case errors.Is(err, store.ErrNotFound):
		// A deleted device still connected to an external broker (which
		// cannot be told to drop it): nothing to store, and refusing the
		// message would only make the broker send it again.
		s.log.Warn("dropped message from an unknown or deleted device", "device", deviceID, "kind", kind)
		err, result = nil, "refused"
	case err != nil:
		result = "error"
	}
	s.metrics.deviceMessages.WithLabelValues(kind, result).Inc()
	return err
}

func (s *Server) store(ctx context.Context, deviceID, kind string, payload []byte) error {
	now := time.Now().UTC()
	switch kind {
	case protocol.KindStatus:
		if len(payload) == 0 {
			return nil // a cleared retained status
		}
		r, err := protocol.DecodeStatus(payload, deviceID)
		if err != nil {
			return s.refuse(deviceID, kind, err)
		}
		if err := s.statuses.submit(ctx, store.StatusUpdate{DeviceID: deviceID, Report: *r, At: now}); err != nil {
			return err
		}
		if r.Seq > 0 && r.Seq <= protocol.MaxSeq {
			s.acks.send(protocol.Ack{DeviceID: deviceID, StatusSeq: r.Seq})
		}
		if s.aheadOfUs(deviceID, r.AppliedRevision) {
			s.log.Warn("device applied a revision this controller never published (restored from an older backup?); issuing a newer one",
				"device", deviceID, "applied_revision", r.AppliedRevision)
			s.Changed()
		}
		return nil
	case protocol.KindEvents:
		b, err := protocol.DecodeEvents(payload, deviceID)
		if err != nil {
			return s.refuse(deviceID, kind, err)
		}
		n, err := s.db.RecordEvents(ctx, deviceID, b.Events)
		if err != nil {
			return err
		}
		if n > 0 {
			s.log.Info("device events", "device", deviceID, "new", n)
			s.securityStored() // siem.go
		}
		// Committed: the device may now delete the batch (duplicates
		// included: they were stored before).
		if b.Last > 0 {
			s.acks.send(protocol.Ack{DeviceID: deviceID, Events: &protocol.SeqRange{First: b.First, Last: b.Last}})
		}
		return nil
	case protocol.KindPresence:
		if len(payload) == 0 {
			return nil
		}
		p, err := protocol.DecodePresence(payload, deviceID)
		if err != nil {
			return s.refuse(deviceID, kind, err)
		}
		// Presence is recorded on the controller's clock, not the time the
		// device wrote (see store.RecordPresences and Device.Online).
		return s.presences.submit(ctx, store.PresenceUpdate{DeviceID: deviceID, Online: p.State == protocol.Online, At: now})
	}
	return fmt.Errorf("device %s published on unknown kind %q", deviceID, kind)
}

func (s *Server) refuse(deviceID, kind string, err error) error {
	s.metrics.deviceMessages.WithLabelValues(kind, "refused").Inc()
	s.log.Warn("dropped malformed device message", "device", deviceID, "kind", kind, "reason", protocol.Reason(err), "err", err)
	return s.refused.add(context.Background(), deviceID, kind, err) // refusals.go
}
