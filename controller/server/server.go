// Package server wires the controller together: the SQLite store, the PKI,
// the REST API, the embedded MQTT broker, the desired-state compiler and the
// ingest path for what devices report.
//
// Data flow: an API change commits, in one transaction, with its audit
// entry, a change-sequence bump and dirty marks for the devices it may
// affect (store.DB.Change), then calls Changed → the reconcile loop takes a
// store snapshot, compiles the dirty devices' documents (controller/desired),
// stores the records that changed and queues them unpublished, then
// publishes whatever is unpublished, retained, on each device's desired
// topic and records each PUBACK in the store. Devices publish status, events
// and presence; the broker hands each message to ingest, which stores it
// before the broker acknowledges it to the device.
//
// What is kept where: everything acknowledged lives in DIR/controller.db
// (committed before the reply or PUBACK), including what the broker
// acknowledged per device. Brokers are not trusted to keep retained
// messages: after every (re)connect (the embedded broker starting, the
// external link reconnecting) everything is published again, and so is the
// document of a device that keeps reporting another revision for longer
// than Options.DriftGrace.
package server

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sync/errgroup"

	"github.com/edgewarden/edgewarden/controller/api"
	"github.com/edgewarden/edgewarden/controller/auth"
	"github.com/edgewarden/edgewarden/controller/console"
	"github.com/edgewarden/edgewarden/controller/datadir"
	"github.com/edgewarden/edgewarden/controller/desired"
	"github.com/edgewarden/edgewarden/controller/pki"
	"github.com/edgewarden/edgewarden/controller/siem"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
)

// Files in the data directory besides those pki owns.
const (
	DBFile         = "controller.db"
	SessionKeyFile = "session.key"
)

// Defaults for Options.
const (
	DefaultHTTPAddr    = "127.0.0.1:8443"
	DefaultMQTTAddr    = "127.0.0.1:8883"
	DefaultDocumentTTL = 24 * time.Hour
	DefaultDriftGrace  = 30 * time.Second

	// ingestBatch is the most device reports stored in one transaction.
	ingestBatch = 1000
)

// Options configure Run.
type Options struct {
	// Version is the controller's build version (GET /api/v1/version).
	Version string

	// DataDir is the directory made by Init. Required.
	DataDir string
	// HTTPAddr is where the REST API listens (HTTPS). Empty: DefaultHTTPAddr.
	HTTPAddr string
	// MaxConnsPerSource bounds open REST API connections from one source
	// address; more are closed at once. Zero: DefaultMaxConnsPerSource;
	// negative: no limit.
	MaxConnsPerSource int
	// PresenceTimeout is how long a device may be silent before it is
	// shown offline. Zero: store.DefaultPresenceTimeout (90 s). Keep it
	// at least twice the agents' heartbeat interval.
	PresenceTimeout time.Duration
	// MQTTAddr is where the embedded broker listens (MQTT over mutual TLS).
	// Empty: DefaultMQTTAddr.
	MQTTAddr string
	// BrokerURL, when set, uses an external MQTT broker (mosquitto, EMQX,
	// ...; see packaging/mosquitto) instead of the embedded one: the
	// controller connects as a client with its controller certificate, and
	// MQTTAddr is not used. Enrolling agents are told AdvertiseMQTT, or
	// BrokerURL when that is empty.
	BrokerURL string
	// AdvertiseHTTP and AdvertiseMQTT are the URLs enrolling agents are
	// told to use. Empty: derived from the bound listen addresses.
	AdvertiseHTTP, AdvertiseMQTT string
	// DocumentTTL is how long a signed document is valid; documents are
	// re-signed before they expire. Zero: DefaultDocumentTTL.
	DocumentTTL time.Duration
	// DriftGrace is how long an online device may report an applied
	// revision other than the one the broker acknowledged before the
	// document is published again. Zero: DefaultDriftGrace.
	DriftGrace time.Duration
	// Logger receives the controller's logs. Nil: slog.Default().
	Logger *slog.Logger
	// MetricsAddr, if set, serves Prometheus metrics (/metrics) and
	// /healthz over plain HTTP; keep it on a local or management address.
	MetricsAddr string
	// Ready, if set, is called once both listeners accept connections.
	Ready func(httpAddr net.Addr, mqttURL string)
	// SIEMLog, if set, is a file every security event (device events of
	// severity security, audit entries of kind security) is appended to
	// as a JSON line after it is committed; at least once (controller/siem).
	SIEMLog string
}

// InitOptions configure Init.
type InitOptions struct {
	DataDir string
	// Admin is the first user's name; empty means "admin".
	Admin string
	// Password is the first user's password. Required (the CLI generates
	// one when none is given).
	Password string
	// Hosts are the names and addresses in the TLS server certificate;
	// empty means pki.DefaultHosts.
	Hosts []string
}

// Init creates a controller data directory: database, CA, TLS and signing
// keys, session key and the first admin. It refuses a directory that exists
// and is not empty. It is all or nothing (datadir.Create): everything is
// built in a temporary directory and moved into place at the end, the
// database last, so when a step fails (a refused admin password, a full
// disk) no controller is left and Init can run again.
func Init(ctx context.Context, opts InitOptions) error {
	name := opts.Admin
	if name == "" {
		name = "admin"
	}
	// Checked first: the cheapest step to fail, and the one users get wrong.
	hash, err := auth.HashPassword(opts.Password)
	if err != nil {
		return fmt.Errorf("init: admin password: %w; nothing was created", err)
	}
	err = datadir.Create(opts.DataDir, DBFile, func(dir string) error {
		if _, err := pki.Init(dir, pki.InitOptions{Hosts: opts.Hosts}); err != nil {
			return err
		}
		if _, err := auth.LoadOrCreateKey(filepath.Join(dir, SessionKeyFile)); err != nil {
			return fmt.Errorf("session key: %w", err)
		}
		db, err := store.Open(ctx, filepath.Join(dir, DBFile))
		if err != nil {
			return err
		}
		defer db.Close()
		if _, err := db.CreateUser(ctx, store.User{Name: name, PasswordHash: hash, State: store.UserActive, CreatedAt: time.Now().UTC()}); err != nil {
			return fmt.Errorf("create admin %q: %w", name, err)
		}
		_, err = db.AppendAudit(ctx, store.AuditEntry{At: time.Now().UTC(), Actor: "system", Action: "controller.init", Target: name, Detail: "controller initialised; first admin created", Kind: store.AuditChange})
		if err != nil {
			return err
		}
		return db.Close()
	})
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	return nil
}

// Server is a running controller.
type Server struct {
	opts      Options
	log       *slog.Logger
	db        *store.DB
	authority *pki.Authority
	compiler  *desired.Compiler
	transport transport
	metrics   *metrics
	// Device reports are group-committed (batch.go).
	statuses  *groupCommit[store.StatusUpdate]
	presences *groupCommit[store.PresenceUpdate]
	acks      *acker         // end-to-end acknowledgements to devices (ack.go)
	refused   *refusals      // refused device messages, summarised (refusals.go)
	siem      *siem.Exporter // nil without Options.SIEMLog (siem.go)

	changed chan struct{} // capacity 1: a pending "recompile" request
	forget  atomic.Bool   // the broker (re)connected: forget the published state
	// held are the records the last compile stored, by device id, handed
	// to the next publish so it need not read their envelopes back. Owned
	// by the reconcile loop (compile and publishPending).
	held map[string]store.DesiredRecord

	// published caches, for ingest's restore check (aheadOfUs), the revision
	// the broker acknowledged per device; the store holds the truth.
	mu        sync.Mutex
	published map[string]uint64
}

// Run starts the controller and serves until ctx is done.
func Run(ctx context.Context, opts Options) error {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.HTTPAddr == "" {
		opts.HTTPAddr = DefaultHTTPAddr
	}
	if opts.MaxConnsPerSource == 0 {
		opts.MaxConnsPerSource = DefaultMaxConnsPerSource
	}
	if opts.MQTTAddr == "" {
		opts.MQTTAddr = DefaultMQTTAddr
	}
	if opts.DocumentTTL == 0 {
		opts.DocumentTTL = DefaultDocumentTTL
	}
	if opts.DriftGrace <= 0 {
		opts.DriftGrace = DefaultDriftGrace
	}
	s := &Server{opts: opts, log: opts.Logger, changed: make(chan struct{}, 1), published: map[string]uint64{}}

	// One controller per data directory: lock it before reading anything.
	lock, err := lockDataDir(opts.DataDir) // recover.go
	if err != nil {
		return err
	}
	defer lock.Release()

	if s.authority, err = pki.Load(opts.DataDir); err != nil {
		return err
	}
	sessionKey, err := auth.LoadOrCreateKey(filepath.Join(opts.DataDir, SessionKeyFile))
	if err != nil {
		return fmt.Errorf("session key: %w", err)
	}
	sessions, err := auth.NewSessions(auth.SessionOptions{Key: sessionKey})
	if err != nil {
		return err
	}
	dbPath := filepath.Join(opts.DataDir, DBFile)
	if _, err := os.Stat(dbPath); err != nil {
		return fmt.Errorf("open %s: %w; run edgewarden-controller init --data %s first", dbPath, err, opts.DataDir)
	}
	if s.db, err = store.Open(ctx, dbPath); err != nil {
		return err
	}
	s.db.SetPresenceTimeout(opts.PresenceTimeout)
	defer s.db.Close()
	if s.siem, err = s.newSIEM(); err != nil { // siem.go
		return err
	}
	if err := s.auditRecovery(ctx); err != nil {
		return err
	}
	tokenSigner, err := loadTokenSigner(opts.DataDir) // access.go
	if err != nil {
		return err
	}
	s.compiler = desired.New(desired.Options{Key: s.authority.SigningKey(), NextKey: s.authority.NextSigningKey(), PrevKey: s.authority.PrevSigningKey(), TTL: opts.DocumentTTL, TokenKeys: []protocol.PublicKey{tokenSigner.PublicKey()}})
	if k := s.authority.NextSigningKey(); k != nil {
		s.log.Info("signing-key rotation: announcing the next key in every document; promote it once every device is in sync (edgewarden-controller rotate-signing-key --promote)", "next_key_id", protocol.KeyID(k.Public().(ed25519.PublicKey)))
	}
	if k := s.authority.PrevSigningKey(); k != nil {
		s.log.Info("signing-key rotation: documents are co-signed by the previous key", "prev_key_id", protocol.KeyID(k.Public().(ed25519.PublicKey)))
	}
	s.metrics = newMetrics(s.devicesOnline)

	// Listeners first, so the advertised URLs carry the bound ports.
	httpLn, err := net.Listen("tcp", opts.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen for the REST API on %s: %w (is another controller running? use --http to pick another address)", opts.HTTPAddr, err)
	}
	defer httpLn.Close()
	httpLn = limitPerSource(httpLn, opts.MaxConnsPerSource, func(addr string) {
		s.log.Warn("REST API connection refused: too many open connections from one source address", "source", addr, "limit", opts.MaxConnsPerSource)
	})

	// Everything Run starts runs in one group and stops together: stop
	// (deferred, so a failed start runs it too) cancels the group's
	// context, shuts the HTTP servers down, closes the transport, then
	// stops ingest and waits for every goroutine. Ingest has its own
	// context: it runs from before the transport starts until after it
	// closed, so every message a device sent is either stored or refused.
	runCtx, cancel := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(runCtx)
	ingestCtx, stopIngest := context.WithCancel(context.Background())
	s.refused = &refusals{db: s.db, now: time.Now, written: s.securityStored}
	var servers []*http.Server
	stop := sync.OnceValue(func() error {
		cancel()
		shutdownCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		for _, srv := range servers {
			_ = srv.Shutdown(shutdownCtx)
		}
		if s.transport != nil {
			s.transport.Close()
		}
		stopIngest()
		err := g.Wait()
		// Ingest has stopped: write what the last window summarised.
		if ferr := s.refused.flush(context.Background(), true); ferr != nil {
			s.log.Error("could not write the summary of refused device messages", "err", ferr)
		}
		return err
	})
	defer stop()
	g.Go(func() error { s.refused.run(ingestCtx); return nil })
	s.statuses = newGroupCommit(ingestBatch, s.db.RecordStatus)
	s.presences = newGroupCommit(ingestBatch, s.db.RecordPresences)
	g.Go(func() error { s.statuses.run(ingestCtx); return nil })
	g.Go(func() error { s.presences.run(ingestCtx); return nil })
	s.acks = newAcker(s)

	mqttURL, err := s.startTransport(ctx)
	if err != nil {
		return err
	}
	g.Go(func() error { s.acks.run(ingestCtx); return nil })

	advHTTP := opts.AdvertiseHTTP
	if advHTTP == "" {
		advHTTP = "https://" + httpLn.Addr().String()
	}
	advMQTT := opts.AdvertiseMQTT
	if advMQTT == "" {
		advMQTT = mqttURL
	}

	apps, err := openCatalog(ctx, s.db, opts.DataDir, s.log)
	if err != nil {
		return err
	}
	a := api.New(api.Options{
		Store: s.db,
		PKI:   s.authority,
		Membership: api.MembershipFunc(func(ctx context.Context) (api.MemberLookup, error) {
			m, err := s.db.Membership(ctx)
			if err != nil {
				return nil, err
			}
			return m, nil
		}),
		Sessions: sessions,
		Changed:  s.Changed,
		MQTTURL:  advMQTT,
		HTTPURL:  advHTTP,
		Logger:   s.log.With("component", "api"),
		Apps:     s.db,
		Catalog:  apps,

		TokenSigner: tokenSigner,
		Version:     opts.Version,
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	// The REST API under /api/, the web console everywhere else: the
	// console calls the same API in process with the user's session, so
	// both are authorized by the one middleware and evaluator.
	con, err := console.New(console.Options{API: a.Handler(), Logger: s.log.With("component", "console")})
	if err != nil {
		return err
	}
	mux.Handle("/api/", a.Handler())
	mux.Handle("/", con.Handler())
	srv := &http.Server{
		Handler:           s.metrics.instrument(longTransfer(mux)),
		TLSConfig:         s.httpsConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		// Whole-request bounds, so a slow or stalled client cannot hold a
		// connection forever. Uploads and artifact downloads, which may
		// take longer, extend their own deadlines as data flows.
		ReadTimeout:  httpReadTimeout,
		WriteTimeout: httpWriteTimeout,
		IdleTimeout:  httpIdleTimeout,
		ErrorLog:     slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}

	// Compile every device and publish every stored document: the broker
	// just (re)connected (brokerUp), and the last run may have stored a
	// document it never got to publish.
	refreshAt, err := s.compile(ctx, true)
	if err != nil {
		return err
	}
	if err := s.publishPending(ctx); err != nil {
		return err
	}

	servers = append(servers, srv)
	g.Go(func() error { s.reconcileLoop(gctx, refreshAt); return nil })
	g.Go(func() error { s.watchdog(gctx); return nil })
	if s.siem != nil {
		g.Go(func() error { s.siem.Run(gctx); return nil })
	}
	if opts.MetricsAddr != "" {
		ln, err := net.Listen("tcp", opts.MetricsAddr)
		if err != nil {
			return fmt.Errorf("listen for metrics on %s: %w", opts.MetricsAddr, err)
		}
		metricsSrv := &http.Server{Handler: s.metrics.handler(), ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, metricsSrv)
		g.Go(func() error {
			if err := metricsSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics: %w", err)
			}
			return nil
		})
		s.log.Info("metrics listening", "addr", ln.Addr().String())
	}
	g.Go(func() error {
		if err := srv.ServeTLS(httpLn, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("REST API: %w", err)
		}
		return nil
	})

	s.log.Info("ready", "http", httpLn.Addr().String(), "mqtt", mqttURL, "data", opts.DataDir)
	if opts.Ready != nil {
		opts.Ready(httpLn.Addr(), mqttURL)
	}
	notifySystemd(daemon.SdNotifyReady)

	// Until asked to stop, or one of the group fails.
	<-gctx.Done()
	notifySystemd(daemon.SdNotifyStopping)
	runErr := stop()
	s.log.Info("stopped")
	return runErr
}

// httpsConfig presents the CA after the server certificate, so an enrolling
// agent can find the certificate it pinned by fingerprint in the chain.
func (s *Server) httpsConfig() *tls.Config {
	cfg := s.authority.HTTPSConfig()
	for i := range cfg.Certificates {
		c := cfg.Certificates[i]
		c.Certificate = append(append([][]byte(nil), c.Certificate...), s.authority.CACert().Raw)
		cfg.Certificates[i] = c
	}
	// Devices download artifacts with their client certificate; everyone
	// else (admins, enrolling agents) presents none.
	cfg.ClientAuth = tls.VerifyClientCertIfGiven
	cfg.ClientCAs = s.authority.CACertPool()
	return cfg
}

// Changed asks for a recompile; it never blocks, and requests made while one
// is pending are folded into it.
func (s *Server) Changed() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// brokerUp is called on every (re)connection to the broker: whatever it
// retained before may be gone, so the reconcile loop forgets the published
// state (in its own turn, so no acknowledgement from before the connection
// is recorded after the forgetting) and publishes everything again.
func (s *Server) brokerUp() {
	s.forget.Store(true)
	s.Changed()
}

// reconcileLoop compiles after each change (the devices it marked dirty)
// and when refreshes are due, and on every turn publishes what is stored
// but not acknowledged: after a change, after a broker (re)connect, and
// for devices that report another revision than the published one for
// longer than DriftGrace.
func (s *Server) reconcileLoop(ctx context.Context, refreshAt time.Time) {
	timer := time.NewTimer(s.nextTurn(refreshAt))
	defer timer.Stop()
	retry := false // the last turn failed: compile again on the next one
	for {
		compile := retry
		select {
		case <-ctx.Done():
			return
		case <-s.changed:
			compile = true
		case <-timer.C:
			compile = compile || !time.Now().Before(refreshAt)
		}
		start := time.Now()
		var err error
		if compile {
			var at time.Time
			if at, err = s.compile(ctx, false); err == nil {
				refreshAt = at
			}
		}
		if err == nil {
			err = s.publishPending(ctx)
		}
		s.metrics.reconcileSeconds.Observe(time.Since(start).Seconds())
		next := s.nextTurn(refreshAt)
		retry = err != nil
		if err != nil && ctx.Err() == nil {
			s.log.Error("reconcile desired state; retrying", "err", err)
			next = 5 * time.Second
		}
		timer.Reset(next)
	}
}

// nextTurn is how long the loop may sleep: until the next refresh, and at
// most DriftGrace, so drifting devices are looked at.
func (s *Server) nextTurn(refreshAt time.Time) time.Duration {
	return max(min(time.Until(refreshAt), s.opts.DriftGrace), 100*time.Millisecond)
}

// reconcile compiles every device and publishes what is pending, as the
// server does at start.
func (s *Server) reconcile(ctx context.Context) error {
	if _, err := s.compile(ctx, true); err != nil {
		return err
	}
	return s.publishPending(ctx)
}

// compile takes a snapshot, compiles the dirty devices (all with full) and
// stores the records that changed, clearing the marks it covered. It
// returns when the next refresh is due.
func (s *Server) compile(ctx context.Context, full bool) (time.Time, error) {
	snap, err := s.db.Snapshot(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("snapshot: %w", err)
	}
	compile := s.compiler.CompileDirty
	if full {
		compile = s.compiler.Compile
	}
	recs, err := compile(snap)
	if err != nil {
		return time.Time{}, fmt.Errorf("compile: %w", err)
	}
	// Store before publishing: a document is never on the wire without its
	// revision being recorded, so revisions only grow across crashes.
	if err := s.db.PutCompiled(ctx, recs, snap.Dirty.Seq); err != nil {
		return time.Time{}, fmt.Errorf("store %d documents: %w", len(recs), err)
	}
	if len(recs) > 0 {
		s.held = make(map[string]store.DesiredRecord, len(recs))
		for _, r := range recs {
			s.held[r.DeviceID] = r
		}
		s.log.Info("compiled desired state", "documents", len(recs), "dirty", snap.Dirty.Len(), "change_seq", snap.Seq)
	}
	next := s.compiler.NextRefresh(snap)
	if next.IsZero() {
		next = time.Now().Add(s.compiler.TTL())
	}
	return next, nil
}

// publishAckBatch is how many acknowledgements are recorded per transaction.
const publishAckBatch = 1000

// publishPending publishes, retained, every stored document no broker has
// acknowledged, records each acknowledgement, and clears the retained
// document of devices that were deleted or are pending.
func (s *Server) publishPending(ctx context.Context) error {
	if s.forget.Swap(false) {
		if err := s.db.ForgetPublished(ctx); err != nil {
			s.forget.Store(true)
			return err
		}
	}
	ids, err := s.db.RepublishDrifting(ctx, time.Now().Add(-s.opts.DriftGrace))
	if err != nil {
		return err
	}
	if len(ids) > 0 {
		s.log.Warn("devices still report another revision than the one published; publishing it again", "devices", len(ids), "first", ids[0])
	}
	recs, err := s.db.Unpublished(ctx, s.held)
	s.held = nil
	if err != nil {
		return err
	}
	var acks []store.Published
	flush := func() error {
		if err := s.db.MarkPublished(ctx, acks, time.Now()); err != nil {
			return err
		}
		s.mu.Lock()
		for _, a := range acks {
			s.published[a.DeviceID] = a.Revision
		}
		s.mu.Unlock()
		acks = acks[:0]
		return nil
	}
	var pubErr error
	for _, r := range recs {
		if pubErr = s.transport.Publish(ctx, protocol.DesiredTopic(r.DeviceID), r.Envelope, true); pubErr != nil {
			pubErr = fmt.Errorf("publish desired state of %s: %w", r.DeviceID, pubErr)
			break
		}
		s.metrics.documentsPublish.Inc()
		acks = append(acks, store.Published{DeviceID: r.DeviceID, Revision: r.Revision, IssuedAt: r.IssuedAt})
		if len(acks) == publishAckBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	// What was acknowledged stays recorded even when a later publish failed.
	if err := flush(); err != nil {
		return err
	}
	if pubErr != nil {
		return pubErr
	}
	if len(recs) > 0 {
		s.log.Info("published desired state", "documents", len(recs))
	}
	stale, err := s.db.StaleRetained(ctx)
	if err != nil {
		return err
	}
	for _, id := range stale {
		if err := s.transport.Publish(ctx, protocol.DesiredTopic(id), nil, true); err != nil {
			return fmt.Errorf("clear desired state of %s: %w", id, err)
		}
		s.transport.DisconnectDevice(id)
		if err := s.db.MarkCleared(ctx, id); err != nil {
			return err
		}
		s.mu.Lock()
		delete(s.published, id)
		s.mu.Unlock()
	}
	return nil
}

// allowDevice lets a device connect to the broker only while it is enrolled:
// a deleted device's certificate stops working at once.
func (s *Server) allowDevice(id string) bool {
	ok, err := s.db.DeviceExists(context.Background(), id)
	if err != nil {
		s.log.Error("device connection refused: cannot read the device list", "device", id, "err", err)
	}
	return ok
}

// devicesOnline counts devices whose last presence was online (for the
// metrics gauge; read at scrape time).
func (s *Server) devicesOnline() float64 {
	devs, err := s.db.ListDevices(context.Background())
	if err != nil {
		return 0
	}
	n := 0
	for _, d := range devs {
		if d.Online {
			n++
		}
	}
	return float64(n)
}

// notifySystemd tells systemd about the service state when the controller
// runs under it (Type=notify); elsewhere it does nothing.
func notifySystemd(state string) {
	_, _ = daemon.SdNotify(false, state)
}

// watchdog feeds systemd's watchdog (WatchdogSec= in the unit) while the
// database answers, so a wedged controller is restarted.
func (s *Server) watchdog(ctx context.Context) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval == 0 {
		return
	}
	t := time.NewTicker(interval / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			probe, cancel := context.WithTimeout(ctx, interval/3)
			_, err := s.db.GetSetting(probe, "banner")
			cancel()
			if err == nil {
				notifySystemd(daemon.SdNotifyWatchdog)
			} else {
				s.log.Error("health probe failed; not feeding the systemd watchdog", "err", err)
			}
		}
	}
}

// aheadOfUs reports whether a device applied a revision above the one this
// controller published for it: its data was restored from an older backup.
// The next compile continues above the device's revision (controller/desired).
func (s *Server) aheadOfUs(deviceID string, applied uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rev, ok := s.published[deviceID]
	return ok && applied > rev
}
