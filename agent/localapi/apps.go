package localapi

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/edgewarden/edgewarden/protocol"
)

// Apps is what the local API needs from the app runtime. The app installer
// implements it; until it does, Unavailable stands in. Methods are called
// only after the caller was authorized. Errors wrapping ErrNoApp become
// 404, ErrNoRuntime 501, ErrInvalid 400, ErrConflict 409; others 500. Every
// error message is shown to the operator as is: say what failed, why and
// what to do.
type Apps interface {
	// List returns every app on the device (managed and sideloaded).
	List(ctx context.Context) ([]protocol.AppStatus, error)
	// Start and Stop start or stop an installed app and return its state.
	Start(ctx context.Context, name string) (protocol.AppStatus, error)
	Stop(ctx context.Context, name string) (protocol.AppStatus, error)
	// Logs returns up to lines of the app's latest log lines, oldest first.
	Logs(ctx context.Context, name string, lines int) ([]string, error)
	// Install sideloads a local package. The local API has checked that
	// the ban is lifted and that req.User holds device:sideload; the app
	// must be marked sideloaded.
	Install(ctx context.Context, req InstallRequest) (protocol.AppStatus, error)
}

// InstallRequest is a local package to sideload.
type InstallRequest struct {
	// User is the operator who installs it (for status and audit).
	User string
	// Filename is the package's file name as the operator gave it (base
	// name only; may be empty).
	Filename string
	// Package is the package content, bounded by Options.MaxInstallBytes.
	// Read it before Install returns.
	Package io.Reader
}

// Errors an Apps implementation wraps to choose the HTTP status.
var (
	ErrNoApp     = errors.New("no such app")
	ErrNoRuntime = errors.New("no apps runtime")
	ErrInvalid   = errors.New("invalid request")
	ErrConflict  = errors.New("conflict")
)

// Unavailable is a placeholder Apps for an agent built without an app
// runtime: every call fails with ErrNoRuntime. PLACEHOLDER until the app
// runtime (agent/apps) implements Apps; the agent uses it when it has no
// other.
type Unavailable struct{}

var _ Apps = Unavailable{}

var errUnavailable = fmt.Errorf("%w yet: this agent build does not manage apps; install an agent with the app runtime", ErrNoRuntime)

func (Unavailable) List(context.Context) ([]protocol.AppStatus, error) { return nil, errUnavailable }
func (Unavailable) Start(context.Context, string) (protocol.AppStatus, error) {
	return protocol.AppStatus{}, errUnavailable
}
func (Unavailable) Stop(context.Context, string) (protocol.AppStatus, error) {
	return protocol.AppStatus{}, errUnavailable
}
func (Unavailable) Logs(context.Context, string, int) ([]string, error) { return nil, errUnavailable }
func (Unavailable) Install(context.Context, InstallRequest) (protocol.AppStatus, error) {
	return protocol.AppStatus{}, errUnavailable
}
