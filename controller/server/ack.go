package server

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/edgewarden/edgewarden/protocol"
)

// acker publishes end-to-end acknowledgements (protocol.Ack) on each
// device's ack topic once what the device sent is committed. The agent
// deletes events from its outbox only on these, so no broker (embedded or
// external, which may acknowledge and then lose a message) is trusted with
// them.
//
// Acks are queued and published by a few workers, so a slow external broker
// does not hold up ingest. An ack that cannot be queued or published is
// dropped and counted: the agent sends the batch again after its timeout,
// the store keeps each event id once, and the new copy is acknowledged.
type acker struct {
	queue   chan protocol.Ack
	publish func(ctx context.Context, topic string, payload []byte, retain bool) error
	result  func(result string) // metrics: sent, dropped, failed
	log     interface {
		Warn(msg string, args ...any)
	}
}

// ackQueue bounds the acknowledgements waiting to be published; ackWorkers
// publish them concurrently.
const (
	ackQueue   = 4096
	ackWorkers = 4
)

func newAcker(s *Server) *acker {
	return &acker{
		queue: make(chan protocol.Ack, ackQueue),
		publish: func(ctx context.Context, topic string, payload []byte, retain bool) error {
			return s.transport.Publish(ctx, topic, payload, retain)
		},
		result: func(r string) { s.metrics.acks.WithLabelValues(r).Inc() },
		log:    s.log,
	}
}

// send queues an acknowledgement without blocking.
func (a *acker) send(ack protocol.Ack) {
	if a == nil {
		return
	}
	ack.Schema = protocol.Schema
	select {
	case a.queue <- ack:
	default:
		a.result("dropped")
	}
}

// run publishes queued acknowledgements until ctx is done.
func (a *acker) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range ackWorkers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case ack := <-a.queue:
					a.publishOne(ctx, ack)
				}
			}
		})
	}
	wg.Wait()
}

func (a *acker) publishOne(ctx context.Context, ack protocol.Ack) {
	b, err := json.Marshal(ack)
	if err != nil {
		a.result("failed")
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := a.publish(pctx, protocol.AckTopic(ack.DeviceID), b, false); err != nil {
		if ctx.Err() == nil {
			a.log.Warn("could not acknowledge a device's report; the device will send it again", "device", ack.DeviceID, "err", err)
		}
		a.result("failed")
		return
	}
	a.result("sent")
}
