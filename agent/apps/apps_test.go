package apps

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/edgewarden/edgewarden/agent/apply"
	"github.com/edgewarden/edgewarden/agent/internal/testpki"
	"github.com/edgewarden/edgewarden/agent/runtime"
	"github.com/edgewarden/edgewarden/agent/state"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// publisher signs manifests (cosign format: base64 Ed25519 signature).
type publisher struct {
	name string
	priv ed25519.PrivateKey
	pem  string
}

func newPublisher(t testing.TB, name string) publisher {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	return publisher{name: name, priv: priv, pem: string(p)}
}

// appScript is a small real app: it records its pid per version in its
// data directory and runs until stopped.
func appScript(version string) []byte {
	return []byte(fmt.Sprintf("#!/bin/sh\necho $$ > \"$EDGEWARDEN_DATA_DIR/pid-%s\"\necho started %s\nexec sleep 1000\n", version, version))
}

// artifactServer is the controller's artifact endpoint: HTTPS, client
// certificate required, Range support.
type artifactServer struct {
	srv *httptest.Server
	ca  *testpki.CA

	mu      sync.Mutex
	blobs   map[string][]byte
	corrupt map[string]bool // serve one byte changed
	fail    map[string]bool // answer 503
	ranges  []string
	gets    int
}

func newArtifactServer(t *testing.T) *artifactServer {
	s := &artifactServer{ca: testpki.NewCA(t, "test CA"), blobs: map[string][]byte{}, corrupt: map[string]bool{}, fail: map[string]bool{}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		digest, ok := strings.CutPrefix(r.URL.Path, "/api/v1/artifacts/")
		s.mu.Lock()
		b, found := s.blobs[digest]
		bad, fail := s.corrupt[digest], s.fail[digest]
		s.gets++
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		s.mu.Unlock()
		if len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusUnauthorized)
			return
		}
		if !ok || !found {
			http.NotFound(w, r)
			return
		}
		if fail {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		if bad {
			b = bytes.Clone(b)
			b[len(b)/2] ^= 1
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	}))
	s.srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{s.ca.ServerTLS(t)},
		ClientCAs:    s.ca.Pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *artifactServer) add(b []byte) string {
	d := fmt.Sprintf("%x", sha256.Sum256(b))
	s.mu.Lock()
	s.blobs[d] = b
	s.mu.Unlock()
	return d
}

func (s *artifactServer) set(m map[string]bool, d string, v bool) {
	s.mu.Lock()
	m[d] = v
	s.mu.Unlock()
}

func (s *artifactServer) getCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets
}

// clientTLS is a device's client TLS config (like identity.ClientTLS).
func (s *artifactServer) clientTLS(t *testing.T) *tls.Config {
	dev := s.ca.NewDevice(t, "press-01")
	cert, err := tls.X509KeyPair(dev.CertPEM(), dev.KeyPEM(t))
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: s.ca.Pool(), MinVersion: tls.VersionTLS12}
}

// assignment builds a signed assignment of name@version whose artifact is
// the app script (served by s).
func (p publisher) assignment(t *testing.T, s *artifactServer, name, version string, deps ...manifest.Dependency) protocol.AppAssignment {
	t.Helper()
	script := appScript(version)
	d := s.add(script)
	m := manifest.Manifest{Name: name, Version: version, Publisher: p.name, Runtime: manifest.RuntimeProcess,
		Exec:         manifest.Exec{Command: "bin/run.sh"},
		Artifacts:    []manifest.Artifact{{Path: "bin/run.sh", SHA256: d, Size: int64(len(script)), Mode: 0o755}},
		Dependencies: deps}
	raw, err := json.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(p.priv, raw))
	return protocol.AppAssignment{Name: name, Version: version, Publisher: p.name, Manifest: raw, Signature: []byte(sig)}
}

type fixture struct {
	t        *testing.T
	root     string
	srv      *artifactServer
	acme     publisher
	rec      *Reconciler
	proc     *runtime.Process
	rev      uint64
	changes  chan struct{}
	cancel   context.CancelFunc
	runDone  chan struct{}
	clientTL *tls.Config
	// dbPath, if set, is the agent database the reconciler journals its
	// installs in (opened by start, closed by stop).
	dbPath string
	store  *state.Store
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, func(*fixture) {}) }

// newFixtureWith is newFixture with the fixture adjusted by opt before the
// reconciler starts.
func newFixtureWith(t *testing.T, opt func(*fixture)) *fixture {
	f := &fixture{t: t, root: t.TempDir(), srv: newArtifactServer(t), acme: newPublisher(t, "acme"), changes: make(chan struct{}, 1)}
	f.clientTL = f.srv.clientTLS(t)
	opt(f)
	f.start()
	return f
}

// start creates the reconciler (as the agent does at start-up) and runs it.
func (f *fixture) start() {
	t := f.t
	fetch, err := NewFetch(FetchOptions{BaseURL: f.srv.srv.URL, TLS: f.clientTL})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	f.proc, err = runtime.NewProcess(runtime.ProcessOptions{LogDir: filepath.Join(f.root, "logs"), AppsRoot: filepath.Join(f.root, "apps"),
		GracePeriod: 5 * time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	var journal Journal
	if f.dbPath != "" {
		if f.store, err = state.Open(context.Background(), f.dbPath); err != nil {
			t.Fatal(err)
		}
		journal = f.store
	}
	f.rec, err = New(Options{AppsDir: filepath.Join(f.root, "apps"), StagingDir: filepath.Join(f.root, "staging"), DataDir: filepath.Join(f.root, "data"), Journal: journal,
		Fetch: fetch, Drivers: map[string]runtime.Driver{manifest.RuntimeProcess: f.proc},
		OnChange: func() {
			select {
			case f.changes <- struct{}{}:
			default:
			}
		},
		MinRetry: 50 * time.Millisecond, MaxRetry: 200 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.runDone = cancel, make(chan struct{})
	go func() { defer close(f.runDone); f.rec.Run(ctx, nil) }()
	t.Cleanup(f.stop)
}

func (f *fixture) stop() {
	if f.cancel == nil {
		return
	}
	f.cancel()
	<-f.runDone
	f.proc.Close()
	if f.store != nil {
		f.store.Close()
		f.store = nil
	}
	f.cancel = nil
}

func (f *fixture) policy(apps []protocol.AppAssignment, pubs ...protocol.Publisher) *apply.Policy {
	f.rev++
	if pubs == nil {
		pubs = []protocol.Publisher{{Name: f.acme.name, Keys: []string{f.acme.pem}}}
	}
	return &apply.Policy{Revision: f.rev, Doc: &protocol.DesiredState{Revision: f.rev, Apps: apps, Publishers: pubs}}
}

func (f *fixture) reconcile(p *apply.Policy) {
	f.t.Helper()
	if err := f.rec.Reconcile(context.Background(), p); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) status(name string) protocol.AppStatus {
	for _, s := range f.rec.Apps() {
		if s.Name == name {
			return s
		}
	}
	return protocol.AppStatus{}
}

// pid returns the pid the app's version recorded (0 if none yet).
func (f *fixture) pid(name, version string) int {
	b, err := os.ReadFile(filepath.Join(f.root, "data", name, "pid-"+version))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && strings.Fields(string(b[i+1:]))[0] != "Z"
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition
	}
}

// running waits until name@version runs (its process recorded its pid and
// is alive, and the status says running) and returns its pid.
func (f *fixture) running(name, version string) int {
	f.t.Helper()
	eventually(f.t, name+"@"+version+" running", func() bool {
		s := f.status(name)
		return s.Version == version && s.State == protocol.AppRunning && alive(f.pid(name, version))
	})
	return f.pid(name, version)
}

func TestInstallUpgradeRollbackUnassign(t *testing.T) {
	f := newFixture(t)
	v1 := f.acme.assignment(t, f.srv, "hello", "1.0.0")
	v2 := f.acme.assignment(t, f.srv, "hello", "2.0.0")

	f.reconcile(f.policy([]protocol.AppAssignment{v1}))
	pid1 := f.running("hello", "1.0.0")
	select {
	case <-f.changes:
	default:
		t.Fatal("no state change was signalled")
	}
	logs, err := f.rec.Logs(context.Background(), "hello", 10)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "app output in logs", func() bool {
		logs, _ = f.rec.Logs(context.Background(), "hello", 10)
		return len(logs) > 0 && logs[len(logs)-1] == "started 1.0.0"
	})

	// Upgrade: the new version runs, the old one is stopped.
	f.reconcile(f.policy([]protocol.AppAssignment{v2}))
	pid2 := f.running("hello", "2.0.0")
	eventually(t, "1.0.0 stopped", func() bool { return !alive(pid1) })

	// Rollback: assigning the older version again (kept on disk).
	gets := f.srv.getCount()
	f.reconcile(f.policy([]protocol.AppAssignment{v1}))
	f.running("hello", "1.0.0")
	eventually(t, "2.0.0 stopped", func() bool { return !alive(pid2) })
	if f.srv.getCount() != gets {
		t.Errorf("rollback downloaded again (%d fetches); the previous version is kept on disk", f.srv.getCount()-gets)
	}

	// Unassign: stopped and removed, with its data.
	pid := f.pid("hello", "1.0.0")
	f.reconcile(f.policy(nil))
	eventually(t, "app stopped", func() bool { return !alive(pid) })
	for _, p := range []string{"apps/hello", "data/hello"} {
		if _, err := os.Stat(filepath.Join(f.root, p)); !os.IsNotExist(err) {
			t.Errorf("%s left after unassign: %v", p, err)
		}
	}
	if len(f.rec.Apps()) != 0 {
		t.Errorf("apps after unassign: %+v", f.rec.Apps())
	}
}

func TestBadUpgradeKeepsOldRunning(t *testing.T) {
	f := newFixture(t)
	v1 := f.acme.assignment(t, f.srv, "hello", "1.0.0")
	v2 := f.acme.assignment(t, f.srv, "hello", "2.0.0")
	f.reconcile(f.policy([]protocol.AppAssignment{v1}))
	pid1 := f.running("hello", "1.0.0")

	var m manifest.Manifest
	json.Unmarshal(v2.Manifest, &m)
	d2 := m.Artifacts[0].SHA256
	f.srv.set(f.srv.corrupt, d2, true)
	f.reconcile(f.policy([]protocol.AppAssignment{v2}))
	s := f.status("hello")
	if s.State != protocol.AppFailed || s.Version != "2.0.0" || !strings.Contains(s.Reason, "sha256") || !strings.Contains(s.Reason, "1.0.0 keeps running") {
		t.Fatalf("status after bad upgrade: %+v", s)
	}
	if !alive(pid1) {
		t.Fatal("old version stopped by a failed upgrade")
	}
	if f.pid("hello", "2.0.0") != 0 {
		t.Fatal("the version that failed verification ran")
	}
	// A digest mismatch is not retried for the same manifest.
	gets := f.srv.getCount()
	f.reconcile(f.policy([]protocol.AppAssignment{v2}))
	if f.srv.getCount() != gets {
		t.Fatal("a manifest whose artifact failed its digest was fetched again")
	}

	// A download failure is retried with backoff (by Run) and then succeeds.
	v3 := f.acme.assignment(t, f.srv, "hello", "3.0.0")
	json.Unmarshal(v3.Manifest, &m)
	d3 := m.Artifacts[0].SHA256
	f.srv.set(f.srv.fail, d3, true)
	f.reconcile(f.policy([]protocol.AppAssignment{v3}))
	if s := f.status("hello"); s.State != protocol.AppFailed || !strings.Contains(s.Reason, "retrying in") {
		t.Fatalf("status after failed download: %+v", s)
	}
	if !alive(pid1) {
		t.Fatal("old version stopped by a failed download")
	}
	eventually(t, "a retry", func() bool { return f.srv.getCount() > gets+2 })
	f.srv.set(f.srv.fail, d3, false)
	f.running("hello", "3.0.0")
	eventually(t, "1.0.0 stopped", func() bool { return !alive(pid1) })
}

func TestUnverifiableManifestsNeverRun(t *testing.T) {
	f := newFixture(t)
	other := newPublisher(t, "other")
	good := f.acme.assignment(t, f.srv, "hello", "1.0.0")

	forged := good
	forged.Manifest = bytes.Replace(bytes.Clone(good.Manifest), []byte(`"1.0.0"`), []byte(`"1.0.1"`), 1)
	forged.Version = "1.0.1"
	byOther := other.assignment(t, f.srv, "hello", "1.0.0")
	byOther.Publisher = "acme" // claims acme, signed by another key
	unsigned := good
	unsigned.Signature = nil
	for name, a := range map[string]protocol.AppAssignment{"forged": forged, "other key": byOther, "unsigned": unsigned} {
		t.Run(name, func(t *testing.T) {
			gets := f.srv.getCount()
			f.reconcile(f.policy([]protocol.AppAssignment{a}))
			s := f.status("hello")
			if s.State != protocol.AppFailed || !strings.Contains(s.Reason, "verification failed") {
				t.Fatalf("status: %+v", s)
			}
			if f.srv.getCount() != gets {
				t.Fatal("an unverified manifest's artifacts were downloaded")
			}
			if _, err := os.Stat(filepath.Join(f.root, "apps", "hello")); !os.IsNotExist(err) {
				t.Fatal("an unverified app was installed")
			}
		})
	}
}

func TestBlockedByDependency(t *testing.T) {
	f := newFixture(t)
	base := f.acme.assignment(t, f.srv, "base", "1.2.0")
	top := f.acme.assignment(t, f.srv, "top", "1.0.0", manifest.Dependency{Name: "base", Version: ">=1.0.0"})

	f.reconcile(f.policy([]protocol.AppAssignment{top}))
	s := f.status("top")
	if s.State != protocol.AppFailed || !strings.Contains(s.Reason, "blocked") || !strings.Contains(s.Reason, "base") {
		t.Fatalf("status without dependency: %+v", s)
	}
	if _, err := os.Stat(filepath.Join(f.root, "apps", "top")); !os.IsNotExist(err) {
		t.Fatal("blocked app was installed")
	}
	// Both assigned (dependent listed first): installed in dependency order.
	f.reconcile(f.policy([]protocol.AppAssignment{top, base}))
	f.running("base", "1.2.0")
	f.running("top", "1.0.0")
}

func TestPublisherKeyRemoved(t *testing.T) {
	f := newFixture(t)
	v1 := f.acme.assignment(t, f.srv, "hello", "1.0.0")
	f.reconcile(f.policy([]protocol.AppAssignment{v1}))
	pid1 := f.running("hello", "1.0.0")

	// The key is gone from the document, the app stays assigned.
	f.reconcile(f.policy([]protocol.AppAssignment{v1}, protocol.Publisher{Name: "acme"}))
	s := f.status("hello")
	if s.State != protocol.AppRunning || !strings.Contains(s.Reason, "publisher key removed") || !alive(pid1) {
		t.Fatalf("status after key removal: %+v (alive %v)", s, alive(pid1))
	}
	// Not installable any more: an upgrade fails, the old one keeps running.
	v2 := f.acme.assignment(t, f.srv, "hello", "2.0.0")
	f.reconcile(f.policy([]protocol.AppAssignment{v2}, protocol.Publisher{Name: "acme"}))
	if s := f.status("hello"); s.State != protocol.AppFailed || !alive(pid1) || f.pid("hello", "2.0.0") != 0 {
		t.Fatalf("upgrade without keys: %+v", s)
	}
	// The key comes back: the flag goes and the upgrade proceeds.
	f.reconcile(f.policy([]protocol.AppAssignment{v2}))
	f.running("hello", "2.0.0")
	if s := f.status("hello"); strings.Contains(s.Reason, "publisher key removed") {
		t.Fatalf("flag kept after the key came back: %+v", s)
	}
}

func TestLocalStartStop(t *testing.T) {
	f := newFixture(t)
	f.reconcile(f.policy([]protocol.AppAssignment{f.acme.assignment(t, f.srv, "hello", "1.0.0")}))
	pid := f.running("hello", "1.0.0")
	ctx := context.Background()
	s, err := f.rec.Stop(ctx, "hello")
	if err != nil || s.State != protocol.AppStopped || alive(pid) {
		t.Fatalf("stop: %+v %v", s, err)
	}
	// A pass does not restart what an operator stopped.
	f.reconcile(f.policy([]protocol.AppAssignment{f.acme.assignment(t, f.srv, "hello", "1.0.0")}))
	if s := f.status("hello"); s.State != protocol.AppStopped {
		t.Fatalf("after a pass: %+v", s)
	}
	os.Remove(filepath.Join(f.root, "data", "hello", "pid-1.0.0"))
	if s, err := f.rec.Start(ctx, "hello"); err != nil || s.State != protocol.AppRunning {
		t.Fatalf("start: %+v %v", s, err)
	}
	f.running("hello", "1.0.0")
	if _, err := f.rec.Start(ctx, "nope"); err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Fatalf("start of unknown app: %v", err)
	}
	if _, err := f.rec.Stop(ctx, "../etc"); err == nil {
		t.Fatal("stop of an invalid name succeeded")
	}
}

// TestRestartStartsCurrentVersion: after the agent restarts, the installed
// current version runs again, exactly once.
func TestRestartStartsCurrentVersion(t *testing.T) {
	f := newFixture(t)
	v1 := f.acme.assignment(t, f.srv, "hello", "1.0.0")
	f.reconcile(f.policy([]protocol.AppAssignment{v1}))
	pid := f.running("hello", "1.0.0")
	f.stop()
	if alive(pid) {
		t.Fatal("app outlived the driver's Close")
	}
	f.start()
	f.reconcile(f.policy([]protocol.AppAssignment{v1}))
	if p := f.running("hello", "1.0.0"); p == pid {
		t.Fatal("not restarted")
	}
}

func TestFetchRequiresClientCertAndResumes(t *testing.T) {
	s := newArtifactServer(t)
	blob := bytes.Repeat([]byte("0123456789"), 1000)
	d := s.add(blob)
	ctx := context.Background()

	noCert := s.clientTLS(t)
	noCert.Certificates = nil
	fetch, _ := NewFetch(FetchOptions{BaseURL: s.srv.URL, TLS: noCert})
	if rc, err := fetch(ctx, d, 0); err == nil {
		rc.Close()
		t.Fatal("fetched without a client certificate")
	}

	fetch, _ = NewFetch(FetchOptions{BaseURL: s.srv.URL, TLS: s.clientTLS(t)})
	rc, err := fetch(ctx, d, 4321)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, blob[4321:]) {
		t.Fatalf("resumed fetch returned %d bytes, want %d", len(got), len(blob)-4321)
	}
	s.mu.Lock()
	last := s.ranges[len(s.ranges)-1]
	s.mu.Unlock()
	if last != "bytes=4321-" {
		t.Fatalf("Range header %q", last)
	}
	if _, err := fetch(ctx, strings.Repeat("0", 64), 0); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("missing artifact: %v", err)
	}
	if _, err := fetch(ctx, "../../etc/passwd", 0); err == nil {
		t.Fatal("fetched a non-digest path")
	}
}
