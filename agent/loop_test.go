package agent_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/agent"
	"github.com/edgewarden/edgewarden/agent/identity"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/manifest"
	"github.com/edgewarden/edgewarden/test/sdnotify"
)

// artifacts is the controller's artifact endpoint as the device sees it
// (HTTPS, client certificate required, the env's CA). A blob marked slow
// is trickled: its first byte at once, the rest only when released; the
// handler notes when the device gives up on it (the request's context).
type artifacts struct {
	srv *httptest.Server

	mu        sync.Mutex
	blobs     map[string][]byte
	slow      map[string]bool
	failFirst map[string]int // answer 503 this many times first
	started   map[string]int // slow requests begun
	abandoned map[string]int // slow requests the device cancelled
	release   chan struct{}
	unblock   func() // lets slow blobs finish
}

func newArtifacts(t *testing.T, e *env) *artifacts {
	t.Helper()
	s := &artifacts{blobs: map[string][]byte{}, slow: map[string]bool{}, failFirst: map[string]int{},
		started: map[string]int{}, abandoned: map[string]int{}, release: make(chan struct{})}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		digest, _ := strings.CutPrefix(r.URL.Path, "/api/v1/artifacts/")
		s.mu.Lock()
		b, found := s.blobs[digest]
		slow := s.slow[digest]
		fail := s.failFirst[digest] > 0
		if fail {
			s.failFirst[digest]--
		}
		if slow && !fail {
			s.started[digest]++
		}
		s.mu.Unlock()
		switch {
		case !found:
			http.NotFound(w, r)
		case fail:
			http.Error(w, "try later", http.StatusServiceUnavailable)
		case !slow:
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
		default:
			w.Header().Set("Content-Length", fmt.Sprint(len(b)))
			w.Write(b[:1])
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				s.mu.Lock()
				s.abandoned[digest]++
				s.mu.Unlock()
			case <-s.release:
				w.Write(b[1:])
			}
		}
	}))
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{e.ca.ServerTLS(t)}, ClientCAs: e.ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert}
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(s.release) }) }) // runs before Close
	s.unblock = func() { once.Do(func() { close(s.release) }) }

	id, err := identity.Load(e.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	id.HTTPURL = s.srv.URL
	if err := identity.Save(e.stateDir, id); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *artifacts) count(m map[string]int, d string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return m[d]
}

// publisher signs app manifests the way `cosign sign-blob` does with an
// Ed25519 key (base64 signature of the exact bytes).
type publisher struct {
	name string
	priv ed25519.PrivateKey
	pem  string
}

func newPublisher(t *testing.T, name string) publisher {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return publisher{name: name, priv: priv, pem: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}
}

// app builds a signed assignment of a small real app (it runs until
// stopped) whose one artifact s serves; slow makes s trickle it.
func (p publisher) app(t *testing.T, s *artifacts, name string, slow bool) protocol.AppAssignment {
	t.Helper()
	script := []byte(fmt.Sprintf("#!/bin/sh\necho started %s\nexec sleep 1000\n", name))
	if slow { // big enough that it cannot arrive in one read
		script = append(script, bytes.Repeat([]byte("#"), 64<<10)...)
	}
	d := fmt.Sprintf("%x", sha256.Sum256(script))
	s.mu.Lock()
	s.blobs[d], s.slow[d] = script, slow
	s.mu.Unlock()
	m := manifest.Manifest{Name: name, Version: "1.0.0", Publisher: p.name, Runtime: manifest.RuntimeProcess,
		Exec:      manifest.Exec{Command: "bin/run.sh"},
		Artifacts: []manifest.Artifact{{Path: "bin/run.sh", SHA256: d, Size: int64(len(script)), Mode: 0o755}}}
	raw, err := json.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(p.priv, raw))
	return protocol.AppAssignment{Name: name, Version: "1.0.0", Publisher: p.name, Manifest: raw, Signature: []byte(sig)}
}

func digestOf(a protocol.AppAssignment) string {
	var m manifest.Manifest
	json.Unmarshal(a.Manifest, &m)
	return m.Artifacts[0].SHA256
}

// appState is the state of app name in the last status report.
func (e *env) appState(name string) (rev uint64, state string) {
	s := e.lastStatus()
	if s == nil {
		return 0, ""
	}
	for _, a := range s.Apps {
		if a.Name == name {
			return s.AppliedRevision, a.State
		}
	}
	return s.AppliedRevision, ""
}

func (e *env) appDoc(rev uint64, pub publisher, apps ...protocol.AppAssignment) []byte {
	d := e.doc(rev)
	d.Apps = apps
	d.Publishers = []protocol.Publisher{{Name: pub.name, Keys: []string{pub.pem}}}
	return e.sign(d)
}

func withRuntime(t *testing.T) func(*agent.Options) {
	units := t.TempDir()
	return func(o *agent.Options) {
		o.Runtime = &agent.RuntimeOptions{SystemdUnitDir: units}
		o.AppsDir = filepath.Join(o.StateDir, "apps")
	}
}

// A new document pre-empts a retry pass that is still downloading: the
// download's request is cancelled and the new document's app runs, while
// the old artifact server would never have finished on its own.
func TestNewDocumentPreemptsRetryDownload(t *testing.T) {
	e := newEnv(t)
	s := newArtifacts(t, e)
	pub := newPublisher(t, "acme")
	slow := pub.app(t, s, "historian", true)
	fast := pub.app(t, s, "gateway", false)
	s.mu.Lock()
	s.failFirst[digestOf(slow)] = 1 // the first pass fails; the retry pass trickles
	s.mu.Unlock()

	e.startWith(withRuntime(t))
	e.publishDesired(e.appDoc(1, pub, slow))
	waitFor(t, "the retry pass downloading the slow artifact", func() bool {
		return s.count(s.started, digestOf(slow)) == 1
	})
	waitFor(t, "historian reported downloading", func() bool {
		_, st := e.appState("historian")
		return st == protocol.AppDownloading
	})

	e.publishDesired(e.appDoc(2, pub, fast))
	waitFor(t, "revision 2's app running", func() bool {
		rev, st := e.appState("gateway")
		return rev == 2 && st == protocol.AppRunning
	})
	waitFor(t, "the old download cancelled", func() bool { return s.count(s.abandoned, digestOf(slow)) == 1 })
	if _, st := e.appState("historian"); st != "" {
		t.Errorf("unassigned historian still reported as %q", st)
	}
	if n := s.count(s.started, digestOf(slow)); n != 1 {
		t.Errorf("the slow artifact was requested %d times after the first failure, want 1", n)
	}
}

// listenNotify listens as systemd does (NOTIFY_SOCKET) with
// WatchdogSec=100ms (a ping every 50ms).
func listenNotify(t *testing.T) *sdnotify.Socket {
	n := sdnotify.Listen(t)
	t.Setenv("NOTIFY_SOCKET", n.Path)
	t.Setenv("WATCHDOG_USEC", "100000")
	return n
}

// The systemd watchdog is fed only while the reconcile loop makes
// progress: a download that hangs stops the pings (so systemd would
// restart the agent), while the rest of the agent keeps working; once the
// phase moves again the pings come back.
func TestWatchdogStopsWhilePhaseHangs(t *testing.T) {
	e := newEnv(t)
	s := newArtifacts(t, e)
	pub := newPublisher(t, "acme")
	hung := pub.app(t, s, "historian", true)
	n := listenNotify(t)

	runtime := withRuntime(t)
	a := e.startWith(func(o *agent.Options) {
		runtime(o)
		o.StallTimeout = 300 * time.Millisecond
		o.HeartbeatInterval = 50 * time.Millisecond
	})
	waitFor(t, "watchdog pings while idle", func() bool { return n.Count("WATCHDOG=1") >= 3 })

	e.publishDesired(e.appDoc(1, pub, hung))
	waitFor(t, "the hung download", func() bool { return s.count(s.started, digestOf(hung)) == 1 })
	waitFor(t, "the stall noticed", func() bool {
		return len(a.logs.records("reconcile loop made no progress; no longer feeding the systemd watchdog, so systemd restarts the agent")) == 1
	})
	// A window measured by the agent's own work, not by a sleep: ten
	// heartbeat status reports (~50 ms each, ten watchdog periods).
	before := n.Count("WATCHDOG=1")
	reports := len(e.messages(protocol.KindStatus))
	waitFor(t, "ten more status reports", func() bool { return len(e.messages(protocol.KindStatus)) >= reports+10 })
	if got := n.Count("WATCHDOG=1"); got > before+1 { // one ping may have been in flight
		t.Fatalf("the agent fed the watchdog %d times while its download hung", got-before)
	}

	s.unblock() // the download moves on: the phase progresses, the app starts
	waitFor(t, "the app running", func() bool { _, st := e.appState("historian"); return st == protocol.AppRunning })
	resumed := n.Count("WATCHDOG=1")
	waitFor(t, "pings again", func() bool { return n.Count("WATCHDOG=1") >= resumed+3 })
}
