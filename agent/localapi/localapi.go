// Package localapi is the agent's local API: JSON over HTTP on a unix socket
// (default /run/edgewarden/agent.sock), for operators on the device
// (`edgewarden local`) and for other local services, such as a reverse
// proxy in front of an app's web UI (nginx auth_request).
//
// Every request but GET /v1/banner carries "Authorization: Bearer <operator
// token>". The token is verified offline against the token keys of the
// policy in force (protocol/optoken: pinned keys, fixed algorithms, audience,
// expiry required, small leeway), then the action is decided against the
// grants of that same policy for this device (protocol/access). Both come
// compiled with the policy (apply.Policy.Access and .Tokens), which the
// applier swaps atomically: a request sees one whole document, a removed
// grant or revoked token is refused from the next document on, and before
// any document (or once the one in force has expired) every request is
// refused. Every refusal is queued as a "local_access_denied" security event
// in the agent's outbox, so it reaches the controller's audit log.
//
// Endpoints (see localwire for the messages):
//
//	GET  /v1/banner                  the system-use notification; no token
//	GET  /v1/status                  device:view
//	GET  /v1/apps                    device:view
//	POST /v1/apps/{name}/start       device:app-operate
//	POST /v1/apps/{name}/stop        device:app-operate
//	GET  /v1/apps/{name}/logs        device:logs (?lines=N, default 100)
//	POST /v1/apps/install            device:sideload, and the sideload ban lifted
//	POST /v1/authorize {"action":A}  the action asked (200 allowed, 403 denied)
//	GET  /v1/authorize?action=A      the same, for nginx auth_request (any
//	                                 method works with ?action=)
//
// In front of an app's web UI, nginx asks the agent on every request (the
// client sends its operator token as "Authorization: Bearer ..."; the
// allowed user comes back in the X-Edgewarden-User header):
//
//	location / {
//	    auth_request /_edgewarden;
//	    auth_request_set $ew_user $upstream_http_x_edgewarden_user;
//	    proxy_set_header X-Remote-User $ew_user;
//	    proxy_pass http://127.0.0.1:8080;
//	}
//	location = /_edgewarden {
//	    internal;
//	    proxy_pass http://unix:/run/edgewarden/agent.sock:/v1/authorize?action=device:app-access;
//	    proxy_pass_request_body off;
//	    proxy_set_header Content-Length "";
//	}
//
// The socket is created with mode 0660: its owner is the agent's user, its
// group the agent's group (or Options.Group), so local users and services
// in that group may connect; everyone else cannot. Connecting only reaches
// the API: every request still needs a token. A stale socket file left by a
// crashed agent is removed at start; a socket another process still serves
// is not.
package localapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/edgewarden/edgewarden/agent/apply"
	"github.com/edgewarden/edgewarden/agent/localapi/localwire"
	"github.com/edgewarden/edgewarden/protocol"
)

// SocketMode is the permission of the socket file.
const SocketMode os.FileMode = 0o660

// EventSink queues events for the controller: the agent's durable outbox
// (agent/state.Store).
type EventSink interface {
	Enqueue(ctx context.Context, ev protocol.Event) error
}

// Options configure a Server.
type Options struct {
	// Socket is the unix socket path. Empty means localwire.DefaultSocket.
	// Its directory is created (mode 0750) if missing.
	Socket string
	// Group is the group (name or numeric id) the socket file is given to.
	// Empty means the agent's own group (the socket is not chowned).
	Group string
	// DeviceID is this device's id.
	DeviceID string
	// Policy returns the policy in force, nil before any document. Required.
	Policy func() *apply.Policy
	// Apps runs app operations. Nil means Unavailable.
	Apps Apps
	// Events receives denied-access and operation events. Nil: they are
	// only logged.
	Events EventSink
	// OnEvent, if set, is called after an event was queued (the agent uses
	// it to send its outbox soon).
	OnEvent func()
	// AgentVersion is reported by /v1/status.
	AgentVersion string
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger. Nil means slog.Default().
	Logger *slog.Logger
	// MaxInstallBytes bounds a sideloaded package. Zero means 2 GiB.
	MaxInstallBytes int64
	// EventsPerMinute bounds the events queued per minute, so a local
	// client cannot flood the outbox; the ones over the limit are counted
	// and the count is reported with the next event. Zero means 60.
	EventsPerMinute int
}

// Server is the local API. Start listens; Close stops. Authorize may be
// used without listening.
type Server struct {
	opts  Options
	log   *slog.Logger
	mux   *http.ServeMux
	audit *auditor

	mu       sync.Mutex
	srv      *http.Server
	done     chan struct{}
	closed   bool
	closeErr error
}

// New checks opts and builds the server. It does not listen.
func New(opts Options) (*Server, error) {
	if opts.Policy == nil {
		return nil, errors.New("local API: no policy source")
	}
	if opts.DeviceID == "" {
		return nil, errors.New("local API: no device id")
	}
	if opts.Socket == "" {
		opts.Socket = localwire.DefaultSocket
	}
	if opts.Apps == nil {
		opts.Apps = Unavailable{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxInstallBytes <= 0 {
		opts.MaxInstallBytes = 2 << 30
	}
	if opts.EventsPerMinute <= 0 {
		opts.EventsPerMinute = 60
	}
	s := &Server{opts: opts, log: opts.Logger.With("component", "localapi")}
	s.audit = &auditor{sink: opts.Events, onEvent: opts.OnEvent, log: s.log, now: opts.Now, perMinute: opts.EventsPerMinute}
	s.routes()
	return s, nil
}

// Socket returns the socket path.
func (s *Server) Socket() string { return s.opts.Socket }

// Handler returns the HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.mux }

// Start creates the socket (mode 0660, see the package comment) and serves
// it until Close. A stale socket file is removed first; a live one (another
// agent serving it) or a path that is not a socket is an error.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("local API: Start after Close")
	}
	if s.srv != nil {
		return errors.New("local API: Start called twice")
	}
	l, err := listen(s.opts.Socket, s.opts.Group)
	if err != nil {
		return err
	}
	s.srv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		ConnContext:       withPeer,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("local API stopped", "socket", s.opts.Socket, "err", err)
		}
	}()
	s.log.Info("local API listening", "socket", s.opts.Socket)
	return nil
}

// Close stops serving, waits for requests in flight (at most 5 s) and
// removes the socket. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.closeErr
	}
	s.closed = true
	if s.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.closeErr = errors.Join(err, s.srv.Close())
	}
	<-s.done
	return s.closeErr
}

// listen prepares the socket path and listens on it.
func listen(path, group string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("local API socket %s: create its directory: %w", path, err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("local API socket %s: %w; check that the agent may write its directory, or set socket in the agent config", path, err)
	}
	fail := func(err error) (net.Listener, error) {
		l.Close() // removes the socket file
		return nil, err
	}
	if err := os.Chmod(path, SocketMode); err != nil {
		return fail(fmt.Errorf("local API socket %s: set mode %o: %w", path, SocketMode, err))
	}
	if group != "" {
		gid, err := lookupGroup(group)
		if err != nil {
			return fail(fmt.Errorf("local API socket %s: %w", path, err))
		}
		if err := os.Chown(path, -1, gid); err != nil {
			return fail(fmt.Errorf("local API socket %s: give it to group %s: %w", path, group, err))
		}
	}
	return l, nil
}

// removeStale removes a socket file no process serves any more.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("local API socket %s: %w", path, err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("local API socket %s: the path exists and is not a socket; remove it or set another socket path in the agent config", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("local API socket %s: another process is serving it (another agent?); stop it or set another socket path in the agent config", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("local API socket %s: remove the stale socket: %w", path, err)
	}
	return nil
}

func lookupGroup(group string) (int, error) {
	if gid, err := strconv.Atoi(group); err == nil {
		return gid, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return 0, fmt.Errorf("group %q: %w", group, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("group %q has a non-numeric id %q", group, g.Gid)
	}
	return gid, nil
}
