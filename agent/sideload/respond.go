package sideload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgewarden/edgewarden/protocol"
)

// quarantinePlan is what the guard records before it moves anything: the
// directory, where it goes, and the events it will report (ids assigned,
// "action" filled in once the outcome is known). See Journal.
type quarantinePlan struct {
	App    string           `json:"app"`
	Src    string           `json:"src"`
	Dst    string           `json:"dst"`
	Events []protocol.Event `json:"events"` // the findings, then the quarantine
}

// IntentQuarantine is the kind of the guard's intents in the Journal.
const IntentQuarantine = "sideload.quarantine"

// respond stops the app, moves it to quarantine and reports the findings
// (one event per kind of finding) and the quarantine. Record, then act:
// the plan with its events is committed before anything moves, and
// completed (the events queued) after, so a crash in between leaves a plan
// that Run finishes at start-up (recoverPlans) instead of a directory
// moved without a report.
func (g *Guard) respond(ctx context.Context, r result, wasSideloaded bool) {
	sig := fmt.Sprint(r.total, r.findings)
	src := filepath.Join(g.opts.AppsDir, r.name)
	plan := quarantinePlan{App: r.name, Src: src, Dst: g.quarantinePath(r.name), Events: g.findingEvents(r, wasSideloaded)}
	plan.Events = append(plan.Events, g.event(protocol.Event{Kind: protocol.EventQuarantined,
		Message: fmt.Sprintf("%s moved to quarantine at %s (kept for forensics)", r.name, plan.Dst),
		Details: map[string]string{"app": r.name, "path": src, "quarantine_path": plan.Dst, "reason": plan.Events[0].Kind}}))
	id := g.opts.NewEventID()
	if g.reported[r.name] != sig { // a quarantine failing again is not recorded (nor reported) again
		if err := g.record(ctx, id, plan); err != nil {
			// Act all the same: containment matters more than the report,
			// which is still queued below if the disk lets us.
			g.log.Error("sideload guard: could not record the quarantine plan; quarantining anyway", "app", r.name, "err", err)
		}
	}
	var actions []string
	if g.opts.Stop != nil {
		if err := g.opts.Stop(ctx, r.name); err != nil {
			actions = append(actions, "stop failed: "+err.Error())
			g.log.Error("sideload guard: could not stop app", "app", r.name, "err", err)
		} else {
			actions = append(actions, "stopped")
		}
	}
	qerr := g.quarantine(src, plan.Dst, r.name)
	if qerr != nil {
		actions = append(actions, "quarantine failed: "+qerr.Error()+"; will retry at the next scan")
		g.log.Error("sideload guard: could not quarantine", "app", r.name, "path", src, "err", qerr)
	} else {
		actions = append(actions, "quarantined to "+plan.Dst)
	}
	if qerr != nil && g.reported[r.name] == sig {
		return // already reported; quarantine keeps failing
	}
	g.complete(ctx, id, plan, strings.Join(actions, "; "), qerr == nil)
	if qerr == nil {
		delete(g.reported, r.name)
	} else {
		g.reported[r.name] = sig
	}
}

// findingEvents makes one event per kind of finding, in order of first
// appearance.
func (g *Guard) findingEvents(r result, wasSideloaded bool) []protocol.Event {
	var kinds []string
	byKind := map[string][]Finding{}
	for _, f := range r.findings {
		if _, ok := byKind[f.Kind]; !ok {
			kinds = append(kinds, f.Kind)
		}
		byKind[f.Kind] = append(byKind[f.Kind], f)
	}
	var evs []protocol.Event
	for _, k := range kinds {
		fs := byKind[k]
		f := fs[0]
		msg := f.Message
		if wasSideloaded && k == protocol.EventSideloadBlocked {
			msg = fmt.Sprintf("sideloaded app %s is no longer allowed: the sideload ban is back on", r.name)
		}
		if len(fs) > 1 {
			msg += fmt.Sprintf(" (and %d more)", len(fs)-1)
		}
		d := map[string]string{
			"app":      r.name,
			"path":     f.Path,
			"expected": f.Expected,
			"found":    f.Found,
			"findings": fmt.Sprint(len(fs)),
		}
		if r.total > len(r.findings) {
			d["findings_total"] = fmt.Sprint(r.total)
		}
		if len(fs) > 1 {
			var ps []string
			for _, x := range fs {
				ps = append(ps, x.Path)
			}
			d["paths"] = strings.Join(ps, "\n")
		}
		evs = append(evs, g.event(protocol.Event{Kind: k, Message: msg, Details: d}))
	}
	return evs
}

// record commits the plan (Options.Journal; without one nothing is kept).
func (g *Guard) record(ctx context.Context, id string, plan quarantinePlan) error {
	if g.opts.Journal == nil {
		return nil
	}
	b, err := json.Marshal(plan)
	if err != nil {
		return err
	}
	return g.opts.Journal.RecordIntent(ctx, IntentQuarantine, id, b)
}

// complete reports the plan's outcome: the findings with the action taken
// and, if the directory was moved, the quarantine; in one transaction with
// forgetting the plan.
func (g *Guard) complete(ctx context.Context, id string, plan quarantinePlan, action string, moved bool) {
	evs := make([]protocol.Event, 0, len(plan.Events))
	for _, ev := range plan.Events {
		if ev.Kind == protocol.EventQuarantined && !moved {
			continue
		}
		ev.Details = maps.Clone(ev.Details)
		ev.Details["action"] = action
		if ev.Kind == protocol.EventQuarantined {
			ev.Details["quarantine_path"] = plan.Dst
			ev.Message = fmt.Sprintf("%s moved to quarantine at %s (kept for forensics)", plan.App, plan.Dst)
		}
		g.log.Warn("sideload guard: "+ev.Message, "kind", ev.Kind)
		evs = append(evs, ev)
	}
	if moved {
		g.mu.Lock()
		g.quarantined = append(g.quarantined, Quarantine{App: plan.App, Path: plan.Dst, Kind: plan.Events[0].Kind, At: g.opts.Now().UTC()})
		if len(g.quarantined) > maxQuarantineLog {
			g.quarantined = g.quarantined[len(g.quarantined)-maxQuarantineLog:]
		}
		g.mu.Unlock()
		g.changed()
	}
	var err error
	if g.opts.Journal != nil {
		err = g.opts.Journal.CompleteIntent(ctx, id, evs)
	} else if g.opts.Report != nil {
		for _, ev := range evs {
			err = errors.Join(err, g.opts.Report(ctx, ev))
		}
	}
	if err != nil {
		g.log.Error("sideload guard: could not queue security events", "app", plan.App, "err", err)
		return
	}
	if g.opts.OnReport != nil {
		for _, ev := range evs {
			g.opts.OnReport(ev)
		}
	}
}

// recoverPlans finishes every quarantine plan a crash left open, before
// the first scan: it moves the directory if it is still in place, and
// reports the plan's events with what was done.
func (g *Guard) recoverPlans(ctx context.Context) {
	if g.opts.Journal == nil {
		return
	}
	open, err := g.opts.Journal.OpenIntents(ctx, IntentQuarantine)
	if err != nil {
		g.log.Error("sideload guard: cannot read open quarantine plans; the start-up scan still runs", "err", err)
		return
	}
	for _, in := range open {
		var plan quarantinePlan
		if err := json.Unmarshal(in.Plan, &plan); err != nil || len(plan.Events) == 0 || filepath.Dir(plan.Src) != g.opts.AppsDir {
			g.log.Error("sideload guard: dropping an unreadable quarantine plan", "id", in.ID, "err", err)
			g.opts.Journal.CompleteIntent(ctx, in.ID, nil)
			continue
		}
		_, srcErr := os.Lstat(plan.Src)
		_, dstErr := os.Lstat(plan.Dst)
		var action string
		moved := true
		switch {
		case srcErr == nil: // not moved yet
			if dstErr == nil { // taken meanwhile (complete sets the event's path)
				plan.Dst = g.quarantinePath(plan.App)
			}
			var actions []string
			if g.opts.Stop != nil {
				if err := g.opts.Stop(ctx, plan.App); err != nil {
					actions = append(actions, "stop failed: "+err.Error())
				} else {
					actions = append(actions, "stopped")
				}
			}
			if err := g.quarantine(plan.Src, plan.Dst, plan.App); err != nil {
				actions = append(actions, "quarantine failed: "+err.Error()+"; will retry at the next scan")
				moved = false
			} else {
				actions = append(actions, "quarantined to "+plan.Dst)
			}
			action = strings.Join(actions, "; ") + " (finished after an agent restart)"
		case dstErr == nil: // moved before the crash
			action = "stopped; quarantined to " + plan.Dst + " (reported after an agent restart)"
		default:
			action = "none: the files had left " + plan.Src + " when the agent restarted, and are not in quarantine"
			moved = false
		}
		g.log.Warn("sideload guard: finishing a quarantine left open by a crash", "app", plan.App, "action", action)
		g.complete(ctx, in.ID, plan, action, moved)
	}
}

// quarantinePath picks a free QuarantineDir/<timestamp>-<name>[-N].
func (g *Guard) quarantinePath(name string) string {
	base := g.opts.Now().UTC().Format("20060102T150405.000000000Z") + "-" + safeName(name)
	dst := filepath.Join(g.opts.QuarantineDir, base)
	for i := 2; i < 1000; i++ {
		if _, err := os.Lstat(dst); err != nil {
			break // free, or the rename says why not
		}
		dst = filepath.Join(g.opts.QuarantineDir, fmt.Sprintf("%s-%d", base, i))
	}
	return dst
}

// quarantine renames src to dst.
func (g *Guard) quarantine(src, dst, name string) error {
	g.unwatch(src)
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("move %s to %s: %w (the quarantine directory must be on the same file system as the apps directory)", src, dst, err)
	}
	g.log.Warn("sideload guard: quarantined", "app", name, "from", src, "to", dst)
	return nil
}

// safeName keeps [A-Za-z0-9._-] of an entry name for the quarantine path.
func safeName(n string) string {
	b := []byte(n)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > 100 {
		b = b[:100]
	}
	return string(b)
}

// event fills in an event's id, time and severity.
func (g *Guard) event(ev protocol.Event) protocol.Event {
	ev.ID = g.opts.NewEventID()
	ev.At = g.opts.Now().UTC()
	ev.Severity = protocol.SeveritySecurity
	return ev
}

// report queues one event at once (outside any plan); a failure is logged.
func (g *Guard) report(ctx context.Context, ev protocol.Event) {
	ev = g.event(ev)
	g.log.Warn("sideload guard: "+ev.Message, "kind", ev.Kind)
	if g.opts.Report == nil {
		return
	}
	if err := g.opts.Report(ctx, ev); err != nil {
		g.log.Error("sideload guard: could not queue security event", "kind", ev.Kind, "err", err)
		return
	}
	if g.opts.OnReport != nil {
		g.opts.OnReport(ev)
	}
}
