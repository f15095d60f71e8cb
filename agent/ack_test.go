package agent_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/agent"
	"github.com/edgewarden/edgewarden/agent/identity"
	"github.com/edgewarden/edgewarden/agent/state"
	"github.com/edgewarden/edgewarden/protocol"
)

func pending(t *testing.T, stateDir string) int {
	t.Helper()
	st, err := agent.Status(context.Background(), agent.StatusOptions{StateDir: stateDir})
	if err != nil {
		t.Fatal(err)
	}
	return st.PendingEvents
}

// The broker's PUBACK is not enough: events stay in the outbox until the
// controller acknowledges them. Acknowledgements that name anything but a
// batch the agent sent (forged through the broker, another device's, a
// range above what was sent, malformed) delete nothing. Once the
// controller is back, unacknowledged batches are sent again after the
// timeout, and every event ends delivered.
func TestEventsStayUntilControllerAcknowledges(t *testing.T) {
	e := newEnv(t)
	e.noAck.Store(true) // the controller is down; the broker still answers
	ctx := context.Background()
	st, err := state.Open(ctx, identity.Path(e.stateDir, identity.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	const n = 700
	for i := range n {
		if err := st.Enqueue(ctx, protocol.Event{ID: fmt.Sprintf("ev-%04d", i), At: time.Now().UTC(), Kind: "test", Severity: "info"}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	a := e.startWith(func(o *agent.Options) { o.AckTimeout = 300 * time.Millisecond })
	waitFor(t, "both batches published and PUBACKed", func() bool { return len(e.events()) >= n })
	if got := pending(t, e.stateDir); got != n {
		t.Fatalf("%d events left after the broker's PUBACK, want all %d kept", got, n)
	}

	forged := []protocol.Ack{
		{DeviceID: deviceID, Events: &protocol.SeqRange{First: 1, Last: protocol.MaxSeq}},
		{DeviceID: deviceID, Events: &protocol.SeqRange{First: n + 1, Last: n + 1000}},
		{DeviceID: deviceID, Events: &protocol.SeqRange{First: 1, Last: n}}, // spans both batches
		{DeviceID: deviceID, Events: &protocol.SeqRange{First: 2, Last: 500}},
		{DeviceID: "other-device", Events: &protocol.SeqRange{First: 1, Last: 500}},
		{DeviceID: deviceID, Events: &protocol.SeqRange{First: 500, Last: 1}},
	}
	for _, ack := range forged {
		e.sendAck(ack)
	}
	e.broker.Publish(protocol.AckTopic(deviceID), []byte("not json"), false, 1)
	waitFor(t, "forged acknowledgements handled", func() bool {
		return len(a.logs.records("ignoring a malformed acknowledgement")) >= 3
	})
	if got := pending(t, e.stateDir); got != n {
		t.Fatalf("forged acknowledgements deleted %d events", n-got)
	}

	// The controller is back: the timeout re-sends, the acks delete.
	e.noAck.Store(false)
	waitFor(t, "outbox emptied by acknowledgements", func() bool { return pending(t, e.stateDir) == 0 })
	seen := map[string]bool{}
	for _, ev := range e.events() {
		seen[ev.ID] = true
	}
	for i := range n {
		if !seen[fmt.Sprintf("ev-%04d", i)] {
			t.Fatalf("event ev-%04d never delivered", i)
		}
	}
	if len(a.logs.records("events not acknowledged by the controller in time; sending them again")) == 0 {
		t.Fatal("no re-send after the timeout")
	}
}
