package apps

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/edgewarden/edgewarden/agent/apply"
	"github.com/edgewarden/edgewarden/agent/install"
	"github.com/edgewarden/edgewarden/agent/state"
	"github.com/edgewarden/edgewarden/protocol"
)

// Journal is the durable record of intents (record, then act): the agent's
// SQLite state (*state.Store) implements it. Each install records its plan
// before its first step and the step it is about to take before each one
// (install.StepDownload, StepUnpack, StepActivate, then StepStart); the
// app_installed event is queued in the same transaction that completes the
// plan. At start-up New finishes or rolls back what a crash left open and
// reports it, so every install is reported exactly once.
type Journal interface {
	RecordIntent(ctx context.Context, kind, id string, plan []byte) error
	UpdateIntent(ctx context.Context, id string, plan []byte) error
	// CompleteIntent queues events and forgets the intent, in one
	// transaction; completing a forgotten intent queues nothing.
	CompleteIntent(ctx context.Context, id string, events []protocol.Event) error
	OpenIntents(ctx context.Context, kind string) ([]state.Intent, error)
}

var _ Journal = (*state.Store)(nil)

// IntentInstall is the intent kind of an install.
const IntentInstall = "install"

// StepStart is the last step of an install, after the installer's: stop
// the previous version and start the new one.
const StepStart = "start"

// installPlan is an install's recorded intent.
type installPlan struct {
	ID       string `json:"id"`
	App      string `json:"app"`
	Version  string `json:"version"`
	Previous string `json:"previous,omitempty"` // the version current before, if any
	Step     string `json:"step"`               // the step about to act (or acting)
}

// hook lets tests stop the reconciler at a named stage (to kill the
// process at the worst moment).
var hook = func(stage string) {}

const journalTimeout = 10 * time.Second

// beginInstall records the plan of installing a over previous. Without a
// Journal it records nothing.
func (r *Reconciler) beginInstall(a protocol.AppAssignment, previous string) (*installPlan, error) {
	p := &installPlan{ID: apply.RandomID(), App: a.Name, Version: a.Version, Previous: previous, Step: "verify"}
	if r.opts.Journal == nil {
		return p, nil
	}
	b, _ := json.Marshal(p)
	ctx, cancel := context.WithTimeout(context.Background(), journalTimeout)
	defer cancel()
	if err := r.opts.Journal.RecordIntent(ctx, IntentInstall, p.ID, b); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.plans[a.Name] = p
	r.mu.Unlock()
	return p, nil
}

// step records that the install of name is about to take step
// (install.Options.Step, and StepStart).
func (r *Reconciler) step(name, version, step string) error {
	r.mu.Lock()
	p := r.plans[name]
	r.mu.Unlock()
	if r.opts.Journal == nil || p == nil || p.Version != version {
		return nil
	}
	next := *p
	next.Step = step
	b, _ := json.Marshal(&next)
	ctx, cancel := context.WithTimeout(context.Background(), journalTimeout)
	defer cancel()
	if err := r.opts.Journal.UpdateIntent(ctx, p.ID, b); err != nil {
		return err
	}
	r.mu.Lock()
	p.Step = step
	r.mu.Unlock()
	hook(step + "-recorded")
	return nil
}

// endInstall completes the plan, queueing events with it (none when the
// install did not happen: its failure shows in status).
func (r *Reconciler) endInstall(p *installPlan, events ...protocol.Event) {
	r.mu.Lock()
	if r.plans[p.App] == p {
		delete(r.plans, p.App)
	}
	r.mu.Unlock()
	if r.opts.Journal == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), journalTimeout)
	defer cancel()
	if err := r.opts.Journal.CompleteIntent(ctx, p.ID, events); err != nil {
		// It stays open: the next start finishes it and reports once.
		r.log.Error("could not complete the install record; it is finished at the next start", "app", p.App, "version", p.Version, "err", err)
	}
}

func (r *Reconciler) installedEvent(p *installPlan, recovered bool) protocol.Event {
	msg := fmt.Sprintf("app %s %s installed and started", p.App, p.Version)
	d := map[string]string{"app": p.App, "version": p.Version}
	if p.Previous != "" && p.Previous != p.Version {
		msg += ", replacing " + p.Previous
		d["previous"] = p.Previous
	}
	if recovered {
		msg = fmt.Sprintf("app %s %s installed (the agent restarted at its %s step; it is started with the next pass)", p.App, p.Version, p.Step)
		d["step"] = p.Step
	}
	return protocol.Event{ID: apply.RandomID(), At: r.opts.Now().UTC(), Kind: protocol.EventAppInstalled, Severity: protocol.SeverityInfo, Message: msg, Details: d}
}

// recoverInstalls finishes or rolls back the installs a crash left open
// (after the installer's Recover left exactly one current version per app)
// and reports each once: installed if the new version became current,
// interrupted otherwise (the previous version stays; the next pass installs
// it again under a new plan).
func (r *Reconciler) recoverInstalls(ctx context.Context) error {
	if r.opts.Journal == nil {
		return nil
	}
	open, err := r.opts.Journal.OpenIntents(ctx, IntentInstall)
	if err != nil {
		return err
	}
	for _, in := range open {
		var p installPlan
		if err := json.Unmarshal(in.Plan, &p); err != nil {
			r.log.Error("unreadable install record; dropped", "id", in.ID, "err", err)
			r.opts.Journal.CompleteIntent(ctx, in.ID, nil)
			continue
		}
		p.ID = in.ID
		cur, _ := r.in.Current(p.App)
		var ev protocol.Event
		if cur == p.Version && (p.Step == install.StepActivate || p.Step == StepStart) {
			ev = r.installedEvent(&p, true)
			r.log.Info("finished an install the agent was stopped in", "app", p.App, "version", p.Version, "step", p.Step)
		} else {
			d := map[string]string{"app": p.App, "version": p.Version, "step": p.Step}
			msg := fmt.Sprintf("the install of app %s %s was interrupted at its %s step (the agent stopped); it is retried", p.App, p.Version, p.Step)
			if cur != "" {
				d["current"] = cur
				msg += "; version " + cur + " stays current"
			}
			ev = protocol.Event{ID: apply.RandomID(), At: r.opts.Now().UTC(), Kind: protocol.EventAppInstallInterrupted, Severity: protocol.SeverityWarning, Message: msg, Details: d}
			r.log.Warn("rolled back an install the agent was stopped in", "app", p.App, "version", p.Version, "step", p.Step, "current", cur)
		}
		if err := r.opts.Journal.CompleteIntent(ctx, p.ID, []protocol.Event{ev}); err != nil {
			return err
		}
	}
	return nil
}
