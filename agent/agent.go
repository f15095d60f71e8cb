// Package agent is the Edgewarden agent service: it connects an enrolled
// device to its broker (agent/link), verifies and applies the signed desired
// state it receives (agent/apply), keeps everything in its local database
// (agent/state), and reports back: a retained status report after every
// apply or rejection and on a heartbeat, and the events of its outbox,
// removed only once the controller has acknowledged storing them
// (agent/outbox).
//
// State directory layout: see agent/identity.
package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/edgewarden/edgewarden/agent/apply"
	"github.com/edgewarden/edgewarden/agent/apps"
	"github.com/edgewarden/edgewarden/agent/identity"
	"github.com/edgewarden/edgewarden/agent/link"
	"github.com/edgewarden/edgewarden/agent/localapi"
	"github.com/edgewarden/edgewarden/agent/outbox"
	"github.com/edgewarden/edgewarden/agent/sideload"
	"github.com/edgewarden/edgewarden/agent/state"
	"github.com/edgewarden/edgewarden/agent/statelock"
	"github.com/edgewarden/edgewarden/protocol"
)

// Version is the agent version reported in status; set at build time with
// -ldflags "-X github.com/edgewarden/edgewarden/agent.Version=...".
var Version = "dev"

// Defaults of Options' intervals.
const (
	DefaultHeartbeatInterval = 30 * time.Second
	DefaultOutboxInterval    = 5 * time.Second
)

// DefaultSocket is the default path of the agent's local API socket.
const DefaultSocket = "/run/edgewarden/agent.sock"

// AppsDir returns the default apps directory for a state directory.
func AppsDir(stateDir string) string { return filepath.Join(stateDir, "apps") }

// AppReconciler brings the device's apps in line with a policy; agent/apps
// implements it. Run is the device's one reconcile loop (Agent.Run starts
// it): it passes towards the latest policy handed to Submit, retries what
// failed, and calls passed after every pass that completed. Submit is
// called with the policy in force after every apply (and once at start
// when a policy is stored); it never blocks, and a newer policy pre-empts
// a pass still downloading. Progress is the loop's phase and when it last
// made progress: the systemd watchdog is fed only while a phase other than
// idle keeps progressing (Options.StallTimeout). Apps reports the state of
// every app, for status reports.
type AppReconciler interface {
	Run(ctx context.Context, passed func(p *apply.Policy))
	Submit(p *apply.Policy)
	Progress() (phase string, revision uint64, last time.Time)
	Apps() []protocol.AppStatus
}

// DefaultStallTimeout is Options.StallTimeout's default.
const DefaultStallTimeout = 10 * time.Minute

// Options configure an Agent.
type Options struct {
	// StateDir is the enrolled state directory.
	StateDir string
	// Logger. Nil means slog.Default().
	Logger *slog.Logger
	// HeartbeatInterval is how often a status report is published when
	// nothing else happens, jittered by ±10%. Zero means 30s.
	HeartbeatInterval time.Duration
	// OutboxInterval is how often the outbox is retried when events are
	// left in it. Zero means 5s.
	OutboxInterval time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Apps reconciles apps after an apply. Nil: apps are not managed yet.
	Apps AppReconciler
	// MinBackoff and MaxBackoff bound the reconnect delay (see link).
	// Zero means the link's defaults.
	MinBackoff, MaxBackoff time.Duration
	// PublishTimeout bounds the wait for a broker acknowledgement. Zero
	// means 10s.
	PublishTimeout time.Duration
	// AckTimeout is how long sent events and status wait for the
	// controller's acknowledgement before they are sent again (doubling
	// up to 10m). Zero means 30s.
	AckTimeout time.Duration
	// OutboxLimit bounds the outbox in bytes; when full the oldest info
	// events are dropped first, security events last. Zero means 64 MiB.
	OutboxLimit int64
	// Socket is the unix socket of the local API (agent/localapi). Empty:
	// no local API. SocketGroup is the group the socket is given (name or
	// id); empty: the agent's own group.
	Socket, SocketGroup string
	// LocalApps runs the local API's app operations. Nil: Apps if it
	// implements localapi.Apps, else localapi.Unavailable.
	LocalApps localapi.Apps
	// AppsDir is the apps directory the sideload guard watches. Empty:
	// AppsDir(StateDir). Quarantined apps go to "quarantine" next to it.
	AppsDir string
	// StopApp stops an app in every runtime driver; the sideload guard
	// calls it before quarantining. Nil: Apps' StopApp method if it has
	// one, else apps are quarantined without being stopped.
	StopApp func(ctx context.Context, name string) error
	// MetricsAddr, if set, serves Prometheus /metrics and /healthz over
	// plain HTTP on this address (keep it on 127.0.0.1 or a management
	// network). Empty: off.
	MetricsAddr string
	// SideloadScanInterval is the sideload guard's full-scan interval.
	// Zero means 5 minutes.
	SideloadScanInterval time.Duration
	// StallTimeout is how long a reconcile phase may go without progress
	// (a phase change, bytes of a download) before the agent stops feeding
	// the systemd watchdog, so that systemd restarts it. It must exceed the
	// longest step that shows no progress (a driver command: 30s). Zero
	// means 10m.
	StallTimeout time.Duration
	// Runtime, if set and Apps is nil, makes New build the app runtime:
	// the reconciler (agent/apps) with the process and systemd drivers,
	// its staging, data and log directories next to AppsDir and in
	// StateDir. Close stops the apps the agent runs itself.
	Runtime *RuntimeOptions
}

// Agent is the running service of one device.
type Agent struct {
	opts      Options
	log       *slog.Logger
	id        *identity.Identity
	store     *state.Store
	applier   *apply.Applier
	link      *link.Link
	outbox    *outbox.Sender
	disk      diskState        // disk.go
	local     *localapi.Server // nil: no local API
	guard     *sideload.Guard  // the sideload guard (agent/sideload)
	metrics   *metrics
	startedAt time.Time

	// expiryReported is the expiry of the document whose expiry was last
	// reported (expiry.go); Run's goroutine only.
	expiryReported time.Time

	changed   chan struct{}  // an apply, refresh or rejection: report status
	connected chan struct{}  // the link (re)connected
	drain     chan struct{}  // the outbox has more to send, or room to send it
	intervals chan intervals // a config reload changed the timers
	// stalled is the phase the watchdog last found stuck ("" if none);
	// Run's goroutine only.
	stalled string
	// lastSeq is the highest status sequence number used in this run:
	// while the disk is full the stored counter cannot move, and reports
	// go on with lastSeq+1 (disk.go). Run's goroutine only.
	lastSeq uint64
	// unstored is the latest document that could not be committed (a
	// full disk): it is applied again from Run once a write works,
	// without waiting for the broker to deliver it again (disk.go).
	unstored pendingDoc

	runMu   sync.Mutex
	running bool
	closeMu sync.Mutex
	closed  bool

	lock *statelock.Lock // held from New to Close
	rt   *appRuntime     // nil unless Options.Runtime
}

// New locks opts.StateDir (one agent per state directory: a second New
// fails with statelock.ErrLocked before it touches anything), loads the
// identity and local state, and prepares the link and, with
// Options.Runtime, the app runtime. It does not connect; Run does.
func New(ctx context.Context, opts Options) (a *Agent, err error) {
	if opts.StateDir == "" {
		return nil, errors.New("no state directory given")
	}
	lock, err := statelock.Acquire(opts.StateDir)
	if err != nil {
		return nil, err
	}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
			lock.Release()
		}
	}()
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if opts.OutboxInterval <= 0 {
		opts.OutboxInterval = DefaultOutboxInterval
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.StallTimeout <= 0 {
		opts.StallTimeout = DefaultStallTimeout
	}
	id, err := identity.Load(opts.StateDir)
	if err != nil {
		return nil, err
	}
	tlsConf, err := identity.ClientTLS(opts.StateDir)
	if err != nil {
		return nil, err
	}
	if opts.AppsDir == "" {
		opts.AppsDir = AppsDir(opts.StateDir)
	}
	store, err := state.Open(ctx, identity.Path(opts.StateDir, identity.DBFile))
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { store.Close() })
	if opts.OutboxLimit != 0 {
		if err := store.SetOutboxLimit(opts.OutboxLimit); err != nil {
			return nil, err
		}
	}
	a = &Agent{
		lock:      lock,
		opts:      opts,
		log:       opts.Logger.With("device_id", id.DeviceID),
		id:        id,
		store:     store,
		startedAt: opts.Now().UTC(),
		changed:   make(chan struct{}, 1),
		connected: make(chan struct{}, 1),
		drain:     make(chan struct{}, 1),
		intervals: make(chan intervals, 1),
	}
	if opts.Runtime != nil && opts.Apps == nil {
		a.rt, err = newAppRuntime(opts.StateDir, opts.AppsDir, id, tlsConf, *opts.Runtime, store, a.log, a.NotifyStatus)
		if err != nil {
			return nil, err
		}
		cleanup = append(cleanup, a.rt.close)
		a.opts.Apps = a.rt.rec
		opts.Apps = a.rt.rec
	}
	a.applier, err = apply.New(ctx, apply.Options{
		DeviceID: id.DeviceID,
		Keys:     id.ControllerKeys,
		Store:    store,
		Now:      opts.Now,
		Logger:   a.log,
	})
	if err != nil {
		return nil, err
	}
	if opts.Socket != "" {
		apps := opts.LocalApps
		if la, ok := opts.Apps.(localapi.Apps); ok && apps == nil {
			apps = la
		}
		a.local, err = localapi.New(localapi.Options{
			Socket:       opts.Socket,
			Group:        opts.SocketGroup,
			DeviceID:     id.DeviceID,
			Policy:       a.applier.Current,
			Apps:         apps,
			Events:       store,
			OnEvent:      func() { notify(a.changed) },
			AgentVersion: Version,
			Now:          opts.Now,
			Logger:       a.log,
		})
		if err != nil {
			return nil, err
		}
	}
	a.link, err = link.New(link.Options{
		DeviceID:  id.DeviceID,
		BrokerURL: id.MQTTURL,
		TLS:       tlsConf,
		OnDesired: a.onDesired,
		OnAck:     a.onAck, // outbox.go
		OnOversized: func(size int) bool {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res := a.applier.RejectOversized(ctx, size)
			a.metrics.observe(res, 0)
			return a.afterHandle(res)
		},
		OnConnect:  func() { a.outbox.Reset(); notify(a.connected) },
		MinBackoff: opts.MinBackoff,
		MaxBackoff: opts.MaxBackoff,
		Now:        opts.Now,
		Logger:     a.log,
	})
	if err != nil {
		return nil, err
	}
	if a.outbox, err = a.newOutbox(); err != nil { // outbox.go
		return nil, err
	}
	if a.guard, err = a.newGuard(); err != nil {
		return nil, err
	}
	a.metrics = newMetrics(a)
	return a, nil
}

// DeviceID returns the device's id.
func (a *Agent) DeviceID() string { return a.id.DeviceID }

// Policy returns the policy in force, or nil (no access) before any
// document was applied.
func (a *Agent) Policy() *apply.Policy { return a.applier.Current() }

// NotifyStatus asks Run to publish a status report soon (reports are
// coalesced). The app reconciler calls it when an app's state changes. It
// never blocks.
func (a *Agent) NotifyStatus() { notify(a.changed) }

// Close stops the apps the agent runs itself (with Options.Runtime),
// releases the local database and then the state directory lock. Call it
// after Run has returned. It is safe to call more than once.
func (a *Agent) Close() error {
	a.closeMu.Lock()
	defer a.closeMu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	if a.rt != nil {
		a.rt.close()
	}
	err := a.store.Close()
	a.lock.Release()
	return err
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// onDesired runs on the link's delivery goroutine. It returns true (ack the
// message) once the outcome is committed.
func (a *Agent) onDesired(raw []byte) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	res := a.applier.Handle(ctx, raw)
	a.metrics.observe(res, time.Since(start))
	committed := a.afterHandle(res)
	a.unstored.set(raw, committed) // disk.go: retried from Run until it commits
	if !committed {
		notify(a.drain) // Run looks at the disk and retries soon
	}
	return committed
}

// afterHandle logs and signals the outcome of a document; it returns true
// if the outcome is committed (the message may be acknowledged).
func (a *Agent) afterHandle(res apply.Result) bool {
	switch res.Outcome {
	case apply.Applied:
		p := a.applier.Current()
		a.log.Info("applied", "revision", res.Revision, "expires_at", p.ExpiresAt)
		if a.opts.Apps == nil {
			a.guard.Recheck() // the sideload ban or the publisher keys may have changed
		} else {
			a.opts.Apps.Submit(p) // the loop rechecks once it acted on p (an unassigned app is removed, not quarantined)
		}
		notify(a.changed)
	case apply.Refreshed:
		a.log.Info("refreshed", "revision", res.Revision, "expires_at", a.applier.Current().ExpiresAt)
		notify(a.changed)
	case apply.Unchanged:
		a.log.Debug("desired state unchanged", "revision", res.Revision)
	case apply.Rejected:
		if res.Reported {
			a.log.Warn("desired state rejected", "revision", res.Revision, "reason", protocol.Reason(res.Err), "err", res.Err)
			notify(a.changed)
		} else {
			a.log.Debug("desired state rejected again", "revision", res.Revision, "reason", protocol.Reason(res.Err))
		}
	default:
		// Not committed: leave the message unacknowledged; the broker
		// delivers it again after the next reconnect.
		a.log.Error("could not handle desired state; it will be retried", "revision", res.Revision, "err", res.Err)
		return false
	}
	return true
}

// Run connects and serves until ctx is done, then publishes an offline
// presence and disconnects. It returns nil on a clean shutdown.
func (a *Agent) Run(ctx context.Context) error {
	a.runMu.Lock()
	if a.running {
		a.runMu.Unlock()
		return errors.New("agent: Run called twice")
	}
	a.running = true
	a.runMu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()

	if a.local != nil {
		// Without its socket the agent still enforces its policy; local
		// access is unavailable (so refused) until the problem is fixed.
		if err := a.local.Start(); err != nil {
			a.log.Error("local API unavailable; local access is refused", "err", err)
		} else {
			defer a.local.Close()
		}
	}
	if a.opts.MetricsAddr != "" {
		ln, err := net.Listen("tcp", a.opts.MetricsAddr)
		if err != nil {
			return fmt.Errorf("listen for metrics on %s: %w (choose another metrics address in the config)", a.opts.MetricsAddr, err)
		}
		srv := &http.Server{Handler: a.metrics.handler(a), ReadHeaderTimeout: 10 * time.Second}
		wg.Go(func() { srv.Serve(ln) })
		defer srv.Close()
		a.log.Info("metrics listening", "addr", ln.Addr().String())
	}
	if p := a.applier.Current(); p != nil {
		if a.opts.Apps != nil {
			a.opts.Apps.Submit(p)
		}
	} else {
		a.log.Info("no desired state applied yet; local access is denied until one arrives")
	}
	if a.opts.Apps != nil {
		wg.Go(func() {
			a.opts.Apps.Run(ctx, func(*apply.Policy) {
				a.guard.Recheck() // the ban, the keys or the managed apps may have changed
				notify(a.changed) // report the apps' new states
			})
		})
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		a.link.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		a.guard.Run(ctx) // never fails; logs and reports what goes wrong
	}()

	heartbeat := time.NewTimer(jitter(a.opts.HeartbeatInterval))
	defer heartbeat.Stop()
	outbox := time.NewTicker(a.opts.OutboxInterval)
	defer outbox.Stop()
	// Under systemd (Type=notify): ready once the last good document is in
	// force and the loops run, even before the broker answers, since the
	// agent enforces that document offline. The watchdog is fed from this
	// loop, and only while the reconcile loop makes progress (watchdogOK),
	// so a wedged main loop or a stuck phase gets the service restarted.
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)
	var watchdog <-chan time.Time
	if d, err := daemon.SdWatchdogEnabled(false); err == nil && d > 0 {
		t := time.NewTicker(d / 2)
		defer t.Stop()
		watchdog = t.C
	}
	first := true
	for {
		select {
		case <-ctx.Done():
			_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
			return nil
		case <-watchdog:
			if a.watchdogOK() {
				_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
			}
		case <-a.connected:
			if first {
				first = false
				a.log.Info("agent running", "broker", a.id.MQTTURL, "applied_revision", revisionOf(a.applier.Current()))
			} else {
				a.log.Info("reconnected", "broker", a.id.MQTTURL)
			}
			a.checkExpiry(ctx, true) // expiry.go: still expired on (re)connect
			a.publishStatus(ctx)
			a.drainOutbox(ctx)
		case <-a.changed:
			a.publishStatus(ctx)
			a.drainOutbox(ctx)
		case <-heartbeat.C:
			a.publishStatus(ctx)
			heartbeat.Reset(jitter(a.opts.HeartbeatInterval))
		case <-outbox.C:
			if a.checkDisk(ctx) { // disk.go
				notify(a.changed)
			}
			a.retryUnstored(ctx)      // disk.go
			a.checkExpiry(ctx, false) // expiry.go
			if a.outbox.StatusOverdue() {
				a.publishStatus(ctx) // the last one was not acknowledged
			}
			a.drainOutbox(ctx)
		case <-a.drain:
			if a.checkDisk(ctx) { // disk.go
				notify(a.changed)
			}
			a.retryUnstored(ctx) // disk.go
			a.drainOutbox(ctx)
		case iv := <-a.intervals:
			a.opts.HeartbeatInterval, a.opts.OutboxInterval = iv.heartbeat, iv.outbox
			heartbeat.Reset(jitter(iv.heartbeat))
			outbox.Reset(iv.outbox)
		}
	}
}

type intervals struct{ heartbeat, outbox time.Duration }

// SetIntervals changes the status heartbeat and the outbox retry period of
// a running agent (a config reload); zero keeps the default. It never
// blocks: a change not yet taken is replaced by the newer one.
func (a *Agent) SetIntervals(heartbeat, outbox time.Duration) {
	iv := intervals{cmp.Or(heartbeat, DefaultHeartbeatInterval), cmp.Or(outbox, DefaultOutboxInterval)}
	for {
		select {
		case a.intervals <- iv:
			return
		default:
		}
		select {
		case <-a.intervals: // drop the stale request
		default:
		}
	}
}

// watchdogOK reports whether the reconcile loop is making progress: idle,
// or in a phase that progressed within StallTimeout. A stuck phase is
// logged once; the watchdog then goes unfed and systemd restarts the agent
// (Restart=always, WatchdogSec= in the unit), which resumes from its
// recorded state.
func (a *Agent) watchdogOK() bool {
	if a.opts.Apps == nil {
		return true
	}
	phase, rev, last := a.opts.Apps.Progress()
	stuck := phase != apps.PhaseIdle && time.Since(last) > a.opts.StallTimeout // the reconciler's clock
	if !stuck {
		a.stalled = ""
		return true
	}
	if a.stalled != phase {
		a.stalled = phase
		a.log.Error("reconcile loop made no progress; no longer feeding the systemd watchdog, so systemd restarts the agent",
			"phase", phase, "revision", rev, "since", last, "stall_timeout", a.opts.StallTimeout)
	}
	return false
}

func revisionOf(p *apply.Policy) uint64 {
	if p == nil {
		return 0
	}
	return p.Revision
}

// jitter spreads d by ±10% so a fleet's timers drift apart.
func jitter(d time.Duration) time.Duration {
	spread := int64(d) / 5
	if spread <= 0 {
		return d
	}
	return d - time.Duration(spread/2) + time.Duration(rand.Int64N(spread+1))
}

// statusReport builds the report of the current state.
func (a *Agent) statusReport(ctx context.Context, seq uint64) (*protocol.StatusReport, error) {
	r := &protocol.StatusReport{
		Schema:       protocol.Schema,
		DeviceID:     a.id.DeviceID,
		Seq:          seq,
		At:           a.opts.Now().UTC(),
		AgentVersion: Version,
		StartedAt:    a.startedAt,
	}
	if p := a.applier.Current(); p != nil {
		r.AppliedRevision = p.Revision
		r.PolicyExpiresAt = p.ExpiresAt.UTC()
	}
	rej, err := a.store.LastRejection(ctx)
	if err != nil {
		return nil, err
	}
	if rej != nil {
		r.LastRejected = &rej.Rejection
	}
	r.Apps = a.apps()
	r.DiskFull = a.disk.current()
	return r, nil
}

// apps is the state of every app on the device: managed ones from the
// reconciler, sideloaded and quarantined ones from the guard.
func (a *Agent) apps() []protocol.AppStatus {
	var apps []protocol.AppStatus
	if a.opts.Apps != nil {
		apps = a.opts.Apps.Apps()
	}
	return a.withGuardApps(apps)
}

// publishStatus publishes a retained status report if the link is up.
// A report that cannot be sent is not retried: the next event or
// heartbeat sends a fresh one.
func (a *Agent) publishStatus(ctx context.Context) {
	if !a.link.Connected() {
		return
	}
	seq, err := a.store.NextSeq(ctx)
	if err != nil {
		if a.disk.current() == nil {
			a.log.Error("status report", "err", err)
			return
		}
		// Full disk: report anyway (that is when the controller most
		// needs to hear), numbered after the last report of this run.
		seq = 0
	}
	seq = max(seq, a.lastSeq+1) // increasing within a run whatever the counter did
	a.lastSeq = seq
	r, err := a.statusReport(ctx, seq)
	if err != nil {
		a.log.Error("status report", "err", err)
		return
	}
	b, err := json.Marshal(r)
	if err != nil {
		a.log.Error("status report", "err", err)
		return
	}
	pctx, cancel := context.WithTimeout(ctx, a.opts.PublishTimeout)
	defer cancel()
	a.outbox.SentStatus(seq) // before: the controller's ack may beat the PUBACK
	if err := a.link.Publish(pctx, protocol.StatusTopic(a.id.DeviceID), true, b); err != nil {
		if ctx.Err() == nil {
			a.log.Warn("could not publish status report", "err", err)
		}
		return
	}
	if err := a.store.SaveLastStatus(ctx, r); err != nil {
		a.log.Warn("could not keep status report", "err", err)
	}
}
