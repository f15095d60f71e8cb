// Package runtime runs installed apps on the device. A Driver starts, stops
// and reports one app per name; the manifest's runtime field picks the
// driver:
//
//   - Process (manifest runtime "process"): the agent itself starts the
//     manifest's command from the app's directory, supervises it (restarts
//     with exponential backoff and jitter, gives up after repeated fast
//     crashes), stops it (SIGTERM to its process group, SIGKILL after a grace
//     period) and captures its output into a size-bounded rotating log.
//   - Systemd (manifest runtime "systemd"): the agent writes a hardened unit
//     edgewarden-app-NAME.service and drives it through systemctl.
//
// The Driver interface leaves room for a container driver later: an App
// carries everything a driver needs (directory, command, data directory).
package runtime

import (
	"context"
	"errors"

	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// App is one app version to run.
type App struct {
	Name    string
	Version string
	// Dir is the app's directory (for installed apps, the installer's
	// NAME/current link). Drivers resolve it once at start, so a running
	// version keeps its own files while the link moves on.
	Dir string
	// DataDir is the app's writable data directory (the only place a
	// systemd unit may write besides its private /tmp). Created by the
	// caller.
	DataDir string
	// Exec is the manifest's command, relative to Dir.
	Exec manifest.Exec
}

// Status is what a driver knows about one app.
type Status struct {
	// Version is the version last started ("" if the driver has no record).
	Version string
	// State is protocol.AppRunning, protocol.AppStopped or
	// protocol.AppFailed; "" when the driver has no record of the app.
	State string
	// Reason says why the app failed or stopped, if it did.
	Reason string
	// PID is the main process id while running (0 if unknown).
	PID int
	// Restarts counts restarts after exits since the last Start.
	Restarts int
}

// Driver runs apps. Methods are safe for concurrent use; names are app
// names (manifest.NamePattern).
type Driver interface {
	// Start starts app (replacing any stopped or failed record of the same
	// name). Starting an app already running at the same version does
	// nothing; at another version it is an error: stop it first.
	Start(ctx context.Context, app App) error
	// Stop stops the app and waits for it to exit. Stopping an app that is
	// not running is not an error.
	Stop(ctx context.Context, name string) error
	// Remove stops the app and deletes what the driver keeps for it
	// (logs, unit file).
	Remove(ctx context.Context, name string) error
	// Status reports the app's state.
	Status(ctx context.Context, name string) Status
	// Logs returns up to lines of the app's latest output lines, oldest
	// first.
	Logs(ctx context.Context, name string, lines int) ([]string, error)
}

// ErrRunning is returned by Start when another version of the app runs.
var ErrRunning = errors.New("app is running")

// ErrNotFound is returned by Logs for an app the driver has no record of.
var ErrNotFound = errors.New("app not known to the driver")
