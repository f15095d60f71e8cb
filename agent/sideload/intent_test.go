package sideload

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgewarden/edgewarden/agent/state"
	"github.com/edgewarden/edgewarden/protocol"
)

// crashingJournal is the real store, except that completing fails as if
// the agent died before that transaction committed.
type crashingJournal struct{ *state.Store }

func (crashingJournal) CompleteIntent(context.Context, string, []protocol.Event) error {
	return errors.New("the agent died here")
}

// Record, then act: a crash at any point of a quarantine leaves a plan the
// next start finishes before its first scan, so every blocked directory is
// quarantined and reported exactly once: recorded but not moved (moved at
// start-up), moved but not reported (reported), and files gone meanwhile
// (the finding reported, no quarantine claimed).
func TestQuarantinePlanFinishedAfterCrash(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	store, err := state.Open(ctx, filepath.Join(f.root, "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	// Moved, not reported: the real guard, dying before it completes.
	f.journal = crashingJournal{store}
	if err := os.MkdirAll(filepath.Join(f.apps, "moved"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(f.apps, "moved", "run.sh"), []byte("#!/bin/sh\n"), 0o755)
	ctx1, stop1 := context.WithCancel(ctx)
	g1 := f.newGuard()
	done := make(chan error)
	go func() { done <- g1.Run(ctx1) }()
	eventually(t, "the first guard moved it", func() bool { return f.quarantined("moved") != "" })
	stop1()
	<-done
	if evs, _ := store.PendingEvents(ctx, 100); len(evs) != 0 {
		t.Fatalf("events queued although the completion never committed: %v", evs)
	}

	// Recorded, not moved; and recorded, then the files vanished.
	g1.opts.Journal = store
	os.MkdirAll(filepath.Join(f.apps, "recorded"), 0o755)
	for _, name := range []string{"recorded", "vanished"} {
		src := filepath.Join(f.apps, name)
		plan := quarantinePlan{App: name, Src: src, Dst: g1.quarantinePath(name)}
		plan.Events = []protocol.Event{
			g1.event(protocol.Event{Kind: protocol.EventSideloadBlocked, Message: name + " blocked", Details: map[string]string{"app": name}}),
			g1.event(protocol.Event{Kind: protocol.EventQuarantined, Message: "", Details: map[string]string{"app": name}}),
		}
		if err := g1.record(ctx, "plan-"+name, plan); err != nil {
			t.Fatal(err)
		}
	}
	open, _ := store.OpenIntents(ctx, IntentQuarantine)
	if len(open) != 3 {
		t.Fatalf("%d open plans, want 3", len(open))
	}

	// The next start.
	f.journal = store
	for restart := range 2 { // the second start finds nothing left to do
		g := f.newGuard()
		ctx2, stop2 := context.WithCancel(ctx)
		go func() { done <- g.Run(ctx2) }()
		eventually(t, "start-up scan", func() bool { n, _ := g.Scans(); return n >= 1 })
		stop2()
		<-done
		if open, _ := store.OpenIntents(ctx, IntentQuarantine); len(open) != 0 {
			t.Fatalf("start %d: %d plans left open", restart, len(open))
		}
		evs, err := store.PendingEvents(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][]string{}
		ids := map[string]bool{}
		for _, ev := range evs {
			got[ev.Details["app"]] = append(got[ev.Details["app"]], ev.Kind)
			if ids[ev.ID] {
				t.Fatalf("event %s queued twice", ev.ID)
			}
			ids[ev.ID] = true
		}
		want := map[string][]string{
			"moved":    {protocol.EventSideloadBlocked, protocol.EventQuarantined},
			"recorded": {protocol.EventSideloadBlocked, protocol.EventQuarantined},
			"vanished": {protocol.EventSideloadBlocked},
		}
		b1, _ := json.Marshal(got)
		b2, _ := json.Marshal(want)
		if string(b1) != string(b2) {
			t.Fatalf("start %d: queued %s, want each reported exactly once: %s", restart, b1, b2)
		}
		for _, name := range []string{"moved", "recorded"} {
			if f.quarantined(name) == "" {
				t.Fatalf("%s is not in quarantine", name)
			}
			if _, err := os.Lstat(filepath.Join(f.apps, name)); !os.IsNotExist(err) {
				t.Fatalf("%s is still in the apps directory", name)
			}
		}
		if !f.wasStopped("recorded") {
			t.Fatal("the app of the open plan was not stopped before it was moved")
		}
	}
}
