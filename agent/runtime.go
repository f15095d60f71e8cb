package agent

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/edgewarden/edgewarden/agent/apps"
	"github.com/edgewarden/edgewarden/agent/identity"
	"github.com/edgewarden/edgewarden/agent/runtime"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// RuntimeOptions configure the app runtime New builds (Options.Runtime).
type RuntimeOptions struct {
	// SystemdUnitDir is where the systemd driver writes units. Empty:
	// /etc/systemd/system.
	SystemdUnitDir string
	// AppUser is the user systemd apps run as. Empty: edgewarden-app.
	AppUser string
}

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
}

// newAppRuntime builds the reconciler. notify is called on every app state
// change (the agent publishes a status report).
func newAppRuntime(stateDir, appsDir string, id *identity.Identity, tlsConf *tls.Config, ro RuntimeOptions, journal apps.Journal, log *slog.Logger, notify func()) (*appRuntime, error) {
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
			manifest.RuntimeSystemd: runtime.NewSystemd(runtime.SystemdOptions{UnitDir: ro.SystemdUnitDir, User: ro.AppUser}),
		},
		OnChange: notify,
		Journal:  journal, // record, then act: install steps and their events
		Logger:   log,
	})
	if err != nil {
		proc.Close()
		return nil, fmt.Errorf("app runtime: %w", err)
	}
	return &appRuntime{rec: rec, proc: proc}, nil
}

// close stops the apps the agent runs itself (systemd keeps running its
// units). Call it after Run returned.
func (r *appRuntime) close() { r.proc.Close() }
