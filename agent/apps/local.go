package apps

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/edgewarden/edgewarden/agent/localapi"
	"github.com/edgewarden/edgewarden/agent/runtime"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

var _ localapi.Apps = (*Reconciler)(nil)

// List implements localapi.Apps.
func (r *Reconciler) List(ctx context.Context) ([]protocol.AppStatus, error) {
	return r.list(ctx), nil
}

// installedManifest returns the current manifest of an installed app, or an
// error wrapping localapi.ErrNoApp.
func (r *Reconciler) installedManifest(name string) (*manifest.Manifest, error) {
	if !manifest.NamePattern.MatchString(name) {
		return nil, fmt.Errorf("%w: app name %q is not valid", localapi.ErrInvalid, name)
	}
	cur, err := r.in.CurrentApp(name)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, fmt.Errorf("%w: %s is not installed on this device; see `local apps ls`", localapi.ErrNoApp, name)
	}
	return manifest.Parse(cur.Manifest)
}

func (r *Reconciler) status(ctx context.Context, name string) protocol.AppStatus {
	r.mu.Lock()
	e := *r.entryLocked(name)
	r.mu.Unlock()
	return r.statusOf(ctx, name, e)
}

// Start implements localapi.Apps: it starts the installed current version
// (also one its driver gave up on) and clears an operator stop.
func (r *Reconciler) Start(ctx context.Context, name string) (protocol.AppStatus, error) {
	m, err := r.installedManifest(name)
	if err != nil {
		return protocol.AppStatus{}, err
	}
	r.update(name, func(e *entry) { e.operatorStopped = false })
	if err := r.ensureRunning(ctx, name, m, true); err != nil {
		return r.status(ctx, name), fmt.Errorf("start %s: %w", name, err)
	}
	return r.status(ctx, name), nil
}

// Stop implements localapi.Apps. The app stays stopped until started again
// through the local API, a new version is installed, or the agent restarts.
func (r *Reconciler) Stop(ctx context.Context, name string) (protocol.AppStatus, error) {
	m, err := r.installedManifest(name)
	if err != nil {
		return protocol.AppStatus{}, err
	}
	drv := r.opts.Drivers[m.Runtime]
	if drv == nil {
		return protocol.AppStatus{}, fmt.Errorf("%w: runtime %q of %s is not supported by this agent", localapi.ErrNoRuntime, m.Runtime, name)
	}
	r.update(name, func(e *entry) { e.operatorStopped = true })
	r.runMu.Lock()
	err = drv.Stop(ctx, name)
	r.runMu.Unlock()
	if err != nil {
		return r.status(ctx, name), fmt.Errorf("stop %s: %w", name, err)
	}
	r.changed()
	return r.status(ctx, name), nil
}

// Logs implements localapi.Apps.
func (r *Reconciler) Logs(ctx context.Context, name string, lines int) ([]string, error) {
	m, err := r.installedManifest(name)
	if err != nil {
		return nil, err
	}
	drv := r.opts.Drivers[m.Runtime]
	if drv == nil {
		return nil, fmt.Errorf("%w: runtime %q of %s is not supported by this agent", localapi.ErrNoRuntime, m.Runtime, name)
	}
	l, err := drv.Logs(ctx, name, lines)
	if errors.Is(err, runtime.ErrNotFound) {
		return []string{}, nil // installed but never produced output
	}
	return l, err
}

// Install (sideloading a local package) is in sideload.go.

// Managed names the apps the reconciler manages: assigned in the document
// in force or installed from it and not yet removed. The sideload guard
// treats every other directory in the apps directory, including the apps
// sideloaded through Install, as sideloaded.
func (r *Reconciler) Managed() []string {
	r.mu.Lock()
	names := make(map[string]bool, len(r.apps))
	for n, e := range r.apps {
		if !e.sideloaded {
			names[n] = true
		}
	}
	r.mu.Unlock()
	if inst, err := r.in.Installed(); err == nil {
		for n := range inst {
			if !r.in.Sideloaded(n) { // the guard tracks those as sideloaded
				names[n] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(names))
}

// StopApp stops name in every runtime driver without reading its files
// (the sideload guard calls it before moving a tampered app to
// quarantine). An unknown name is already stopped.
func (r *Reconciler) StopApp(ctx context.Context, name string) error {
	if !manifest.NamePattern.MatchString(name) {
		return nil // not an app: nothing runs under that name
	}
	r.runMu.Lock()
	defer r.runMu.Unlock()
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(r.opts.Drivers)) {
		if err := r.opts.Drivers[k].Stop(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("stop %s (%s): %w", name, k, err))
		}
	}
	r.changed()
	return errors.Join(errs...)
}
