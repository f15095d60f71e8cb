package sideload

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgewarden/edgewarden/protocol"
)

// respond stops the app, moves it to quarantine and reports the findings
// (one event per kind of finding) and the quarantine.
func (g *Guard) respond(ctx context.Context, r result, wasSideloaded bool) {
	src := filepath.Join(g.opts.AppsDir, r.name)
	var actions []string
	if g.opts.Stop != nil {
		if err := g.opts.Stop(ctx, r.name); err != nil {
			actions = append(actions, "stop failed: "+err.Error())
			g.log.Error("sideload guard: could not stop app", "app", r.name, "err", err)
		} else {
			actions = append(actions, "stopped")
		}
	}
	dst, qerr := g.quarantine(src, r.name)
	if qerr != nil {
		actions = append(actions, "quarantine failed: "+qerr.Error()+"; will retry at the next scan")
		g.log.Error("sideload guard: could not quarantine", "app", r.name, "path", src, "err", qerr)
	} else {
		actions = append(actions, "quarantined to "+dst)
	}
	action := strings.Join(actions, "; ")

	// Findings by kind, in order of first appearance.
	var kinds []string
	byKind := map[string][]Finding{}
	for _, f := range r.findings {
		if _, ok := byKind[f.Kind]; !ok {
			kinds = append(kinds, f.Kind)
		}
		byKind[f.Kind] = append(byKind[f.Kind], f)
	}
	sig := fmt.Sprint(r.total, r.findings)
	if qerr != nil && g.reported[r.name] == sig {
		return // already reported; quarantine keeps failing
	}
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
			"action":   action,
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
		g.report(ctx, protocol.Event{Kind: k, Message: msg, Details: d})
	}
	if qerr == nil {
		g.report(ctx, protocol.Event{Kind: protocol.EventQuarantined,
			Message: fmt.Sprintf("%s moved to quarantine at %s (kept for forensics)", r.name, dst),
			Details: map[string]string{"app": r.name, "path": src, "quarantine_path": dst, "reason": kinds[0], "action": action}})
		g.mu.Lock()
		g.quarantined = append(g.quarantined, Quarantine{App: r.name, Path: dst, Kind: kinds[0], At: g.opts.Now().UTC()})
		if len(g.quarantined) > maxQuarantineLog {
			g.quarantined = g.quarantined[len(g.quarantined)-maxQuarantineLog:]
		}
		g.mu.Unlock()
		delete(g.reported, r.name)
		g.changed()
	} else {
		g.reported[r.name] = sig
	}
}

// quarantine renames src to QuarantineDir/<timestamp>-<name>[-N].
func (g *Guard) quarantine(src, name string) (string, error) {
	g.unwatch(src)
	base := g.opts.Now().UTC().Format("20060102T150405.000000000Z") + "-" + safeName(name)
	dst := filepath.Join(g.opts.QuarantineDir, base)
	for i := 2; i < 1000; i++ {
		if _, err := os.Lstat(dst); err != nil {
			break // free, or the rename below says why not
		}
		dst = filepath.Join(g.opts.QuarantineDir, fmt.Sprintf("%s-%d", base, i))
	}
	if err := os.Rename(src, dst); err != nil {
		return "", fmt.Errorf("move %s to %s: %w (the quarantine directory must be on the same file system as the apps directory)", src, dst, err)
	}
	g.log.Warn("sideload guard: quarantined", "app", name, "from", src, "to", dst)
	return dst, nil
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

// report fills in an event and queues it; a failure is logged.
func (g *Guard) report(ctx context.Context, ev protocol.Event) {
	ev.ID = g.opts.NewEventID()
	ev.At = g.opts.Now().UTC()
	ev.Severity = protocol.SeveritySecurity
	g.log.Warn("sideload guard: "+ev.Message, "kind", ev.Kind)
	if g.opts.Report == nil {
		return
	}
	if err := g.opts.Report(ctx, ev); err != nil {
		g.log.Error("sideload guard: could not queue security event", "kind", ev.Kind, "err", err)
	}
}
