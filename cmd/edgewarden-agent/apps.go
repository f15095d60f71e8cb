package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/edgewarden/edgewarden/agent"
	"github.com/edgewarden/edgewarden/agent/apps"
	"github.com/edgewarden/edgewarden/agent/config"
	"github.com/edgewarden/edgewarden/agent/identity"
	"github.com/edgewarden/edgewarden/agent/runtime"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// appRuntime is the agent's app side: the reconciler and its drivers.
// Directories (under the state directory unless apps_dir moves the apps):
//
//	apps/            installed apps (agent/install layout)
//	apps.staging/    downloads and apps being assembled (same file system)
//	appdata/NAME/    each app's writable data
//	applogs/         process-driver logs and pid files
type appRuntime struct {
	rec  *apps.Reconciler
	proc *runtime.Process
	wg   sync.WaitGroup
}

// newAppRuntime builds the reconciler. notify is called on every app state
// change (the agent publishes a status report).
func newAppRuntime(stateDir string, cfg *config.Config, log *slog.Logger, notify func()) (*appRuntime, error) {
	id, err := identity.Load(stateDir)
	if err != nil {
		return nil, err
	}
	tlsConf, err := identity.ClientTLS(stateDir)
	if err != nil {
		return nil, err
	}
	appsDir := cfg.AppsDir
	if appsDir == "" {
		appsDir = agent.AppsDir(stateDir)
	}
	fetch, err := apps.NewFetch(apps.FetchOptions{BaseURL: id.HTTPURL, TLS: tlsConf})
	if err != nil {
		return nil, err
	}
	proc, err := runtime.NewProcess(runtime.ProcessOptions{
		LogDir:   filepath.Join(stateDir, "applogs"),
		AppsRoot: appsDir,
		OnChange: func(string) { notify() },
		Logger:   log,
	})
	if err != nil {
		return nil, err
	}
	rec, err := apps.New(apps.Options{
		AppsDir:    appsDir,
		StagingDir: filepath.Clean(appsDir) + ".staging",
		DataDir:    filepath.Join(stateDir, "appdata"),
		Fetch:      fetch,
		Drivers: map[string]runtime.Driver{
			manifest.RuntimeProcess: proc,
			manifest.RuntimeSystemd: runtime.NewSystemd(runtime.SystemdOptions{UnitDir: cfg.SystemdUnitDir, User: cfg.AppUser}),
		},
		OnChange: notify,
		Logger:   log,
	})
	if err != nil {
		proc.Close()
		return nil, fmt.Errorf("app runtime: %w", err)
	}
	return &appRuntime{rec: rec, proc: proc}, nil
}

// start runs the reconciler's retry loop until ctx is done.
func (r *appRuntime) start(ctx context.Context) {
	r.wg.Go(func() { r.rec.Run(ctx) })
}

// close waits for the retry loop (cancel its ctx first) and stops the apps
// the agent runs itself (systemd keeps running its units).
func (r *appRuntime) close() {
	r.wg.Wait()
	r.proc.Close()
}
