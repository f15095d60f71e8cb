// Package apitest is the one test harness of the REST API: Server runs the
// real API over HTTPS on 127.0.0.1 on a real store (SQLite in t.TempDir()
// by default), with the real artifact catalogue, an in-memory PKI and an
// active admin. Tests of the API, the client and the CLI all use it.
//
// The store comes from a constructor (Options.OpenStore), so the same
// suite can run against a second store implementation: pass its
// constructor instead of OpenSQLite.
package apitest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/controller/api"
	"github.com/edgewarden/edgewarden/controller/auth"
	"github.com/edgewarden/edgewarden/controller/authz"
	"github.com/edgewarden/edgewarden/controller/catalog"
	"github.com/edgewarden/edgewarden/controller/fleet"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/access"
	"github.com/edgewarden/edgewarden/protocol/optoken"
)

// Backend is every store interface the API and this harness use;
// *store.DB implements it. A second store implementation passes the same
// suite by implementing it too.
type Backend interface {
	api.Store
	api.AccessStore
	api.AppStore
	api.EventStore
	api.SideloadStore
	authz.Source

	CreateUser(ctx context.Context, u store.User) (store.User, error)
	Membership(ctx context.Context) (*fleet.Membership, error)
	PutDesired(ctx context.Context, recs []store.DesiredRecord) error
	RecordStatus(ctx context.Context, updates []store.StatusUpdate) error
	RecordPresence(ctx context.Context, id string, online bool, at time.Time) error
	Close() error
}

var _ Backend = (*store.DB)(nil)

// OpenSQLite opens the SQLite store in a new t.TempDir(), closed when the
// test ends.
func OpenSQLite(t testing.TB) Backend {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "controller.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Admin credentials of every Server.
const (
	AdminUser     = "admin"
	AdminPassword = "admin-password-1"
)

// Options configure a Server.
type Options struct {
	// OpenStore opens the store the API runs on. Nil means OpenSQLite.
	OpenStore func(t testing.TB) Backend
	// Configure, if not nil, may change the API options before the API
	// is built.
	Configure func(*api.Options)
	// AdminPassword is the password of the admin user (AdminUser) the
	// server creates. Empty means AdminPassword.
	AdminPassword string
}

// Server is the real API over HTTPS. Its TLS listener requests (does not
// require) client certificates from PKI's CA, as the controller's does, so
// devices can download artifacts.
type Server struct {
	*httptest.Server
	// Store is the real store, wrapped so tests can make one method fail
	// (Fail).
	Store    Backend
	PKI      *PKI
	Sessions *auth.Sessions
	API      *api.API
	// CAFile is a PEM file holding the certificate that clients must
	// trust to reach the server.
	CAFile string
	// ArtifactDir is the artifact catalogue's directory.
	ArtifactDir string
	// Changes counts calls of Options.Changed.
	Changes atomic.Int64

	faults *faulty
}

// NewServer starts a Server on the SQLite store, closed when the test
// ends. configure, if not nil, may change the API options before the API
// is built.
func NewServer(t testing.TB, configure func(*api.Options)) *Server {
	t.Helper()
	return Start(t, Options{Configure: configure})
}

// Start starts a Server as opts say, closed when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.OpenStore == nil {
		opts.OpenStore = OpenSQLite
	}
	pki, err := NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := auth.NewSessions(auth.SessionOptions{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	_, tokKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := optoken.NewSigner(tokKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	arts, err := catalog.OpenStore(filepath.Join(dir, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	faults := &faulty{Backend: opts.OpenStore(t), fail: map[string]error{}}
	s := &Server{Store: faults, PKI: pki, Sessions: sessions, ArtifactDir: filepath.Join(dir, "artifacts"), faults: faults}
	// The first user of a store is its admin (the store grants it).
	if opts.AdminPassword == "" {
		opts.AdminPassword = AdminPassword
	}
	s.AddUser(t, AdminUser, opts.AdminPassword, store.UserActive)

	o := api.Options{
		Store: s.Store,
		PKI:   pki,
		Membership: api.MembershipFunc(func(ctx context.Context) (api.MemberLookup, error) {
			m, err := s.Store.Membership(ctx)
			if err != nil {
				return nil, err
			}
			return m, nil
		}),
		Sessions:    sessions,
		Changed:     func() { s.Changes.Add(1) },
		MQTTURL:     "tls://127.0.0.1:8883",
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Apps:        s.Store,
		Catalog:     catalog.New(arts),
		TokenSigner: signer,
	}
	if opts.Configure != nil {
		opts.Configure(&o)
	}
	s.API = api.New(o)
	s.Server = httptest.NewUnstartedServer(s.API.Handler())
	caPool := x509.NewCertPool()
	caPool.AddCert(pki.CACert())
	s.Server.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: caPool}
	s.Server.StartTLS()
	t.Cleanup(s.Server.Close)
	s.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Server.Certificate().Raw})
	if err := os.WriteFile(s.CAFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// SQLite returns the SQLite store under the server, for a test that reads
// or changes it beyond Backend (a change through store.Change, a snapshot).
// On another store (Options.OpenStore) such a test is skipped, so the rest
// of the suite still runs there.
func (s *Server) SQLite(t testing.TB) *store.DB {
	t.Helper()
	db, ok := s.faults.Backend.(*store.DB)
	if !ok {
		t.Skipf("this test reaches into the SQLite store; the server runs on %T", s.faults.Backend)
	}
	return db
}

// ServerPool returns a pool holding the server's certificate.
func (s *Server) ServerPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(s.Server.Certificate())
	return pool
}

// AddUser adds a user with a password and state.
func (s *Server) AddUser(t testing.TB, name, password, state string) {
	t.Helper()
	hash, err := auth.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.CreateUser(context.Background(), store.User{Name: name, PasswordHash: hash, State: state, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

// Grant gives a user or team a role on a scope and returns the grant's id.
func (s *Server) Grant(t testing.TB, subject access.Subject, role string, scope access.Scope) string {
	t.Helper()
	g, err := s.Store.CreateGrant(context.Background(), store.Grant{Grant: access.Grant{Subject: subject, Role: role, Scope: scope}, CreatedBy: AdminUser})
	if err != nil {
		t.Fatal(err)
	}
	return g.ID
}

// SetUserState sets a user's state in the store, behind the API's back.
func (s *Server) SetUserState(t testing.TB, name, state string) {
	t.Helper()
	if _, err := s.Store.SetUserState(context.Background(), name, state); err != nil {
		t.Fatal(err)
	}
}

// Audit returns the audit log, oldest first.
func (s *Server) Audit(t testing.TB) []store.AuditEntry {
	t.Helper()
	es, err := s.Store.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(es)-1; i < j; i, j = i+1, j-1 {
		es[i], es[j] = es[j], es[i]
	}
	return es
}

// Counts returns how many devices, groups and enrollment tokens the store
// holds.
func (s *Server) Counts(t testing.TB) (devices, groups, tokens int) {
	t.Helper()
	ctx := context.Background()
	ds, err1 := s.Store.ListDevices(ctx)
	gs, err2 := s.Store.ListGroups(ctx)
	ts, err3 := s.Store.ListEnrollTokens(ctx)
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	return len(ds), len(gs), len(ts)
}

// SetDesired records the revision of a device's desired document, as the
// compiler would.
func (s *Server) SetDesired(t testing.TB, id string, revision uint64) {
	t.Helper()
	if err := s.Store.PutDesired(context.Background(), []store.DesiredRecord{{DeviceID: id, Revision: revision, Digest: "test", Envelope: []byte("{}"), IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
}

var statusSeq atomic.Uint64

// Report records a device's status report and presence, as the ingest
// path would on receiving them.
func (s *Server) Report(t testing.TB, id string, online bool, rep protocol.StatusReport) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	rep.DeviceID = id
	if rep.Seq == 0 {
		rep.Seq = statusSeq.Add(1)
	}
	if rep.At.IsZero() {
		rep.At = now
	}
	if err := s.Store.RecordStatus(ctx, []store.StatusUpdate{{DeviceID: id, Report: rep, At: now}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Store.RecordPresence(ctx, id, online, now); err != nil {
		t.Fatal(err)
	}
}

// Fail makes the store method named method fail with err until
// Fail(method, nil). Only the methods faulty overrides can fail.
func (s *Server) Fail(method string, err error) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	if err == nil {
		delete(s.faults.fail, method)
		return
	}
	s.faults.fail[method] = err
}

// faulty is the real store with fault injection on the methods tests
// break: a disk error in the middle of a request.
type faulty struct {
	Backend
	mu   sync.Mutex
	fail map[string]error
}

func (f *faulty) err(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail[method]
}

func (f *faulty) Enroll(ctx context.Context, tokenHash string, d store.NewDevice) (store.Device, store.EnrollToken, error) {
	if err := f.err("Enroll"); err != nil {
		return store.Device{}, store.EnrollToken{}, err
	}
	return f.Backend.Enroll(ctx, tokenHash, d)
}

func (f *faulty) ListDevices(ctx context.Context) ([]store.Device, error) {
	if err := f.err("ListDevices"); err != nil {
		return nil, err
	}
	return f.Backend.ListDevices(ctx)
}
