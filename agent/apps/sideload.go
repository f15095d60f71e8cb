package apps

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/edgewarden/edgewarden/agent/apply"
	"github.com/edgewarden/edgewarden/agent/install"
	"github.com/edgewarden/edgewarden/agent/localapi"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// Sideloaded apps: installed from a local package through the local API
// (Install) where the document lifts the sideload ban, under the same
// layout as managed apps but marked sideloaded (install.InstallLocal).
// They are not the document's: a pass neither removes them nor checks a
// signature, and Managed leaves them out, so the sideload guard
// (agent/sideload) tracks them as sideloaded while the ban is lifted and
// stops and quarantines them when it returns. A pass with the ban on stops
// them and never starts them; with it lifted it starts them like managed
// apps (after an agent restart, say). An app the document assigns under
// the name of a sideloaded one replaces it.

// Install implements localapi.Apps: it installs a local package (a tar.gz
// of manifest.json and its files; see install.InstallLocal) as a
// sideloaded app and starts it. The local API has checked the ban and the
// operator's device:sideload; Install checks the ban again against the
// document the reconciler works with, and refuses a name that a managed
// app holds.
func (r *Reconciler) Install(ctx context.Context, req localapi.InstallRequest) (protocol.AppStatus, error) {
	r.mu.Lock()
	p := r.policy
	r.mu.Unlock()
	if p == nil || p.Doc == nil || !p.Doc.Sideload.Allowed {
		return protocol.AppStatus{}, fmt.Errorf("%w: the sideload ban is on for this device (in the document the app runtime works with); local installs are refused", localapi.ErrConflict)
	}
	r.passMu.Lock()
	defer r.passMu.Unlock()
	m, err := r.in.InstallLocal(ctx, req.Package, install.LocalOptions{
		Record: install.SideloadRecord{User: req.User, At: r.opts.Now().UTC(), Filename: req.Filename},
		Check:  func(m *manifest.Manifest) error { return r.checkSideload(p, m) },
	})
	switch {
	case err == nil:
	case errors.Is(err, install.ErrArtifact), errors.Is(err, install.ErrVerify):
		return protocol.AppStatus{}, fmt.Errorf("%w: %w", localapi.ErrInvalid, err)
	default:
		return protocol.AppStatus{}, err
	}

	r.runMu.Lock()
	r.stopAll(ctx, m.Name) // the sideloaded version it replaces, if any
	startErr := r.start(ctx, r.opts.Drivers[m.Runtime], m.Name, m)
	r.runMu.Unlock()
	r.update(m.Name, func(e *entry) {
		e.version, e.runtime, e.sideloaded, e.flag, e.operatorStopped = m.Version, m.Runtime, true, "", false
		e.phase, e.target, e.reason, e.attempts, e.retryAt = "", "", "", 0, time.Time{}
		e.startErr = ""
		if startErr != nil {
			e.startErr = startErr.Error()
		}
	})
	st := r.status(ctx, m.Name)
	if startErr != nil {
		return st, fmt.Errorf("%s@%s is installed (sideloaded) but did not start: %w; see `local apps logs %s`", m.Name, m.Version, startErr, m.Name)
	}
	return st, nil
}

// checkSideload refuses a package whose name a managed app holds (assigned
// in the document, or installed from it) or whose runtime this agent
// lacks.
func (r *Reconciler) checkSideload(p *apply.Policy, m *manifest.Manifest) error {
	for _, a := range p.Doc.Apps {
		if a.Name == m.Name {
			return fmt.Errorf("%w: %s is assigned to this device by the controller; a sideloaded package cannot replace a managed app — give it another name", localapi.ErrConflict, m.Name)
		}
	}
	if v, err := r.in.Current(m.Name); err == nil && v != "" && !r.in.Sideloaded(m.Name) {
		return fmt.Errorf("%w: %s@%s is installed as a managed app; a sideloaded package cannot replace it — give it another name", localapi.ErrConflict, m.Name, v)
	}
	if r.opts.Drivers[m.Runtime] == nil {
		return fmt.Errorf("%w: runtime %q of %s is not supported by this agent (it runs %v)", localapi.ErrInvalid, m.Runtime, m.Name, slices.Sorted(maps.Keys(r.opts.Drivers)))
	}
	return nil
}

// sideloadedApps takes the sideloaded apps out of installed (the pass must
// not remove them as unassigned) and brings them in line with p: started
// with the ban lifted, stopped with it on (the guard quarantines them). A
// sideloaded app whose name the document now assigns is removed, so the
// managed app can be installed. It returns the sideloaded apps kept.
func (r *Reconciler) sideloadedApps(ctx context.Context, p *apply.Policy, installed map[string]string, desired map[string]protocol.AppAssignment) map[string]bool {
	side := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(installed)) {
		if !r.in.Sideloaded(name) {
			continue
		}
		delete(installed, name)
		if _, assigned := desired[name]; assigned {
			r.log.Warn("sideloaded app replaced by the app the document assigns under its name", "app", name)
			if err := r.remove(ctx, name); err != nil {
				r.log.Error("remove sideloaded app", "app", name, "err", err)
			}
			continue
		}
		side[name] = true
		cur, err := r.in.CurrentApp(name)
		var m *manifest.Manifest
		if err == nil {
			m, err = manifest.Parse(cur.Manifest)
		}
		if err != nil {
			r.update(name, func(e *entry) { e.sideloaded, e.startErr = true, "installed manifest unreadable: "+err.Error() })
			continue
		}
		flag := ""
		if !p.Doc.Sideload.Allowed {
			flag = "the sideload ban is on: stopped, and the sideload guard quarantines it"
		}
		r.mu.Lock()
		e := r.entryLocked(name)
		e.version, e.runtime, e.sideloaded, e.flag = cur.Version, m.Runtime, true, flag
		stopped := e.operatorStopped
		r.mu.Unlock()
		if !p.Doc.Sideload.Allowed {
			r.runMu.Lock()
			r.stopAll(ctx, name)
			r.runMu.Unlock()
			r.changed()
			continue
		}
		if !stopped {
			r.ensureRunning(ctx, name, m, false)
		}
	}
	return side
}
