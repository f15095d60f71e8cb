package agent

import (
	"context"
	"path/filepath"

	"github.com/edgewarden/edgewarden/agent/sideload"
	"github.com/edgewarden/edgewarden/protocol"
)

// managedLister is implemented by an app reconciler that can name the apps
// it manages (assigned or installed and not yet removed) cheaply.
type managedLister interface{ Managed() []string }

// appStopper is implemented by an app reconciler that can stop an app in
// every runtime driver without reading its (possibly tampered) files.
type appStopper interface {
	StopApp(ctx context.Context, name string) error
}

// newGuard builds the sideload guard (agent/sideload) on the apps
// directory: the policy comes from the document in force and the
// reconciler's managed apps, apps are stopped through the runtime, and
// security events go to the durable outbox. Quarantined apps are moved to
// a "quarantine" directory next to the apps directory (same file system).
func (a *Agent) newGuard() (*sideload.Guard, error) {
	appsDir := a.opts.AppsDir
	stop := a.opts.StopApp
	if s, ok := a.opts.Apps.(appStopper); ok && stop == nil {
		stop = s.StopApp
	}
	return sideload.New(sideload.Options{
		AppsDir:       appsDir,
		QuarantineDir: filepath.Join(filepath.Dir(filepath.Clean(appsDir)), "quarantine"),
		ScanInterval:  a.opts.SideloadScanInterval,
		Policy:        a.sideloadPolicy,
		Stop:          stop,
		Report:        a.store.Enqueue,
		Journal:       a.store, // record, then act
		OnReport: func(ev protocol.Event) {
			a.metrics.securityEvent(ev.Kind)
			notify(a.changed) // deliver it and report the new app states
		},
		OnChange: func() { notify(a.changed) },
		Logger:   a.log,
		Now:      a.opts.Now,
	})
}

// sideloadPolicy is the guard's view of the policy in force: banned and
// nothing managed until a document is applied (fail closed).
func (a *Agent) sideloadPolicy() sideload.Policy {
	var doc *protocol.DesiredState
	if p := a.applier.Current(); p != nil {
		doc = p.Doc
	}
	var managed []string
	switch r := a.opts.Apps.(type) {
	case managedLister:
		managed = r.Managed()
	case AppReconciler:
		for _, s := range r.Apps() {
			managed = append(managed, s.Name)
		}
	}
	return sideload.PolicyFrom(doc, managed)
}

// withGuardApps adds the guard's sideloaded and quarantined apps to a
// status report's apps (those the reconciler does not already list).
func (a *Agent) withGuardApps(apps []protocol.AppStatus) []protocol.AppStatus {
	if a.guard == nil {
		return apps
	}
	seen := make(map[string]bool, len(apps))
	for _, s := range apps {
		seen[s.Name] = true
	}
	for _, s := range a.guard.Apps() {
		if len(apps) >= protocol.MaxAppsPerDevice {
			break
		}
		if !seen[s.Name] {
			seen[s.Name] = true
			apps = append(apps, s)
		}
	}
	return apps
}
