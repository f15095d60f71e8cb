package agent_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/agent"
	"github.com/edgewarden/edgewarden/agent/identity"
	"github.com/edgewarden/edgewarden/agent/state"
	"github.com/edgewarden/edgewarden/protocol"
)

func revision(a *agent.Agent) uint64 {
	if p := a.Policy(); p != nil {
		return p.Revision
	}
	return 0
}

func TestAgentAppliesAndReports(t *testing.T) {
	e := newEnv(t)
	a := e.start()
	waitFor(t, `"agent running" log`, func() bool { return len(a.logs.records("agent running")) == 1 })
	waitFor(t, "online presence", func() bool { return e.lastPresence() == protocol.Online })
	if a.Policy() != nil {
		t.Fatal("policy in force before any document")
	}
	waitFor(t, "first status report", func() bool { return e.lastStatus() != nil })
	first := e.lastStatus()

	d := e.doc(1, "line-1")
	e.publishDesired(e.sign(d))
	waitFor(t, "revision 1 in force", func() bool { return revision(a.Agent) == 1 })
	waitFor(t, "status with revision 1", func() bool { s := e.lastStatus(); return s.AppliedRevision == 1 })
	s := e.lastStatus()
	if s.Seq <= first.Seq || !s.PolicyExpiresAt.Equal(d.ExpiresAt) || s.LastRejected != nil || s.AgentVersion == "" {
		t.Fatalf("status after apply: %+v (first seq %d)", s, first.Seq)
	}
	recs := a.logs.records("applied")
	if len(recs) != 1 || recs[0]["revision"] != float64(1) {
		t.Fatalf(`"applied" log records: %v`, recs)
	}

	// Clean shutdown: retained offline presence.
	a.stop()
	if got := e.lastPresence(); got != protocol.Offline {
		t.Fatalf("presence after shutdown %q, want offline", got)
	}
}

func TestAgentReportsRejection(t *testing.T) {
	e := newEnv(t)
	a := e.start()
	e.publishDesired(e.sign(e.doc(2, "line-1")))
	waitFor(t, "revision 2 in force", func() bool { return revision(a.Agent) == 2 })

	e.publishDesired(e.sign(e.doc(1, "evil"))) // a replay of an older revision
	waitFor(t, "status reporting the rejection", func() bool {
		s := e.lastStatus()
		return s != nil && s.LastRejected != nil
	})
	s := e.lastStatus()
	if s.AppliedRevision != 2 || s.LastRejected.Reason != "replay" || s.LastRejected.Revision != 1 {
		t.Fatalf("status after rejection: %+v rejected %+v", s, s.LastRejected)
	}
	if p := a.Policy(); p.Revision != 2 || p.Doc.Groups[0] != "line-1" {
		t.Fatalf("policy after rejection: %+v", p)
	}
	waitFor(t, "rejection event delivered", func() bool { return len(e.events()) == 1 })
	ev := e.events()[0]
	if ev.Kind != "document_rejected" || ev.Severity != "warning" || ev.Details["reason"] != "replay" || len(ev.ID) != 32 {
		t.Fatalf("event %+v", ev)
	}
	waitFor(t, "outbox emptied", func() bool {
		st, err := agent.Status(context.Background(), agent.StatusOptions{StateDir: e.stateDir})
		return err == nil && st.PendingEvents == 0
	})

	// A newer good document clears the rejection.
	e.publishDesired(e.sign(e.doc(3, "line-1")))
	waitFor(t, "status with revision 3 and no rejection", func() bool {
		s := e.lastStatus()
		return s.AppliedRevision == 3 && s.LastRejected == nil
	})
}

func TestAgentRejectsOversizedMessageUnread(t *testing.T) {
	e := newEnv(t)
	a := e.start()
	e.publishDesired(e.sign(e.doc(1)))
	waitFor(t, "revision 1 in force", func() bool { return revision(a.Agent) == 1 })
	e.publishDesired([]byte(strings.Repeat("x", protocol.MaxEnvelopeBytes+1)))
	waitFor(t, "status reporting too_large", func() bool {
		s := e.lastStatus()
		return s != nil && s.LastRejected != nil && s.LastRejected.Reason == "too_large"
	})
	if revision(a.Agent) != 1 {
		t.Fatal("oversized message changed the policy")
	}
}

// After a restart the broker re-delivers the retained document in force:
// recognised, not re-applied, not reported as a rejection.
func TestAgentRestartDoesNotReapply(t *testing.T) {
	e := newEnv(t)
	a := e.start()
	e.publishDesired(e.sign(e.doc(1, "line-1")))
	waitFor(t, "revision 1 in force", func() bool { return revision(a.Agent) == 1 })
	appliedAt := a.Policy().AppliedAt
	a.stop()

	b := e.start()
	if p := b.Policy(); p == nil || p.Revision != 1 || !p.AppliedAt.Equal(appliedAt) {
		t.Fatalf("policy loaded after restart: %+v", p)
	}
	waitFor(t, "retained document re-delivered", func() bool { return len(b.logs.records("desired state unchanged")) > 0 })
	waitFor(t, "status after restart", func() bool { s := e.lastStatus(); return s != nil && s.StartedAt.After(appliedAt) })
	if got := b.logs.records("applied"); len(got) != 0 {
		t.Fatalf("re-applied after restart: %v", got)
	}
	if s := e.lastStatus(); s.LastRejected != nil || s.AppliedRevision != 1 {
		t.Fatalf("status after restart: %+v", s)
	}
	if n := len(e.events()); n != 0 {
		t.Fatalf("%d events after restart, want none", n)
	}
	if p := b.Policy(); !p.AppliedAt.Equal(appliedAt) {
		t.Fatal("policy re-applied after restart")
	}
}

// Events in the outbox survive a restart and stay there while the broker
// cannot be reached; once it acknowledges them they are removed, in
// batches of at most protocol.MaxEventsPerBatch.
func TestOutboxSurvivesRestartAndDrainsOnAck(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	st, err := state.Open(ctx, identity.Path(e.stateDir, identity.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	const n = protocol.MaxEventsPerBatch + 20
	for i := range n {
		ev := protocol.Event{ID: fmt.Sprintf("ev-%04d", i), At: time.Now().UTC(), Kind: "test", Severity: protocol.SeverityInfo, Message: "queued before start"}
		if err := st.Enqueue(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	// First run: the broker is unreachable (nothing listens there).
	e.writeState("tls://127.0.0.1:1")
	a := e.start()
	waitFor(t, "failed connection attempts", func() bool { return len(a.logs.records("cannot connect to broker; retrying")) >= 2 })
	a.stop()
	status, err := agent.Status(ctx, agent.StatusOptions{StateDir: e.stateDir})
	if err != nil {
		t.Fatal(err)
	}
	if status.PendingEvents != n {
		t.Fatalf("%d events pending after a run without broker, want %d", status.PendingEvents, n)
	}

	// Second run, broker reachable: everything delivered once, in order.
	e.writeState("tls://" + e.addr)
	e.start()
	waitFor(t, "all events delivered", func() bool { return len(e.events()) >= n })
	waitFor(t, "outbox emptied", func() bool {
		st, err := agent.Status(ctx, agent.StatusOptions{StateDir: e.stateDir})
		return err == nil && st.PendingEvents == 0
	})
	evs := e.events()
	if len(evs) != n {
		t.Fatalf("%d events delivered, want %d", len(evs), n)
	}
	for i, ev := range evs {
		if ev.ID != fmt.Sprintf("ev-%04d", i) {
			t.Fatalf("event %d is %s: out of order or duplicated", i, ev.ID)
		}
	}
	if batches := len(e.messages(protocol.KindEvents)); batches < 2 {
		t.Fatalf("%d events in %d batch(es), want at least 2 (limit %d per batch)", n, batches, protocol.MaxEventsPerBatch)
	}
}

// The broker drops the connection: the agent comes back (jittered
// backoff), re-subscribes, announces itself online and applies new
// documents.
func TestAgentReconnects(t *testing.T) {
	e := newEnv(t)
	a := e.start()
	waitFor(t, "online", func() bool { return e.lastPresence() == protocol.Online })
	cl, ok := e.broker.Clients.Get(deviceID)
	if !ok {
		t.Fatal("agent not connected to the broker")
	}
	cl.Stop(fmt.Errorf("test: drop connection"))
	waitFor(t, "last will: offline", func() bool { return e.lastPresence() == protocol.Offline })
	waitFor(t, "reconnected", func() bool { return len(a.logs.records("reconnected")) == 1 && e.lastPresence() == protocol.Online })
	e.publishDesired(e.sign(e.doc(5)))
	waitFor(t, "revision 5 in force", func() bool { return revision(a.Agent) == 5 })
}

func TestStatusBeforeAnyDocument(t *testing.T) {
	e := newEnv(t)
	st, err := agent.Status(context.Background(), agent.StatusOptions{StateDir: e.stateDir})
	if err != nil {
		t.Fatal(err)
	}
	if st.DeviceID != deviceID || st.AppliedRevision != 0 || st.Socket != agent.DefaultSocket || st.AppsDir == "" || st.Apps == nil {
		t.Fatalf("status: %+v", st)
	}
}

func TestNewRefusesUnenrolledDirectory(t *testing.T) {
	_, err := agent.New(context.Background(), agent.Options{StateDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "enroll") {
		t.Fatalf("New on an empty directory: %v", err)
	}
}
