package sideload

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/edgewarden/edgewarden/agent/install"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// publisher signs manifests the way cosign sign-blob does with an Ed25519
// key (base64 of the raw signature).
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

type file struct {
	path    string
	content []byte
	mode    uint32
	unpack  string
}

func (p publisher) app(t testing.TB, name, version string, files ...file) protocol.AppAssignment {
	t.Helper()
	m := manifest.Manifest{Name: name, Version: version, Publisher: p.name, Runtime: manifest.RuntimeProcess,
		Exec: manifest.Exec{Command: files[0].path}}
	for _, f := range files {
		sum := sha256.Sum256(f.content)
		m.Artifacts = append(m.Artifacts, manifest.Artifact{Path: f.path, SHA256: fmt.Sprintf("%x", sum), Size: int64(len(f.content)), Mode: f.mode, Unpack: f.unpack})
	}
	raw, err := json.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(p.priv, raw))
	return protocol.AppAssignment{Name: name, Version: version, Publisher: p.name, Manifest: raw, Signature: []byte(sig)}
}

// tarball builds a tar archive of name -> content (a trailing "/" makes a
// directory; "->target" content makes a symlink).
func tarball(t testing.TB, entries map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, c := range entries {
		h := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg}
		switch {
		case strings.HasSuffix(name, "/"):
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		case strings.HasPrefix(c, "->"):
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, c[2:], 0
		case strings.HasPrefix(name, "bin/"):
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(c))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fixture is an apps directory with a real installer, a guard and
// recorders for what the guard does.
type fixture struct {
	t          testing.TB
	root, apps string
	quarantine string
	pub        publisher
	in         *install.Installer
	blobs      map[string][]byte
	policy     atomic.Pointer[Policy]
	guard      *Guard
	journal    Journal // nil: events go to Report

	mu      sync.Mutex
	events  []protocol.Event
	stopped []string
}

func newFixture(t testing.TB) *fixture {
	root := t.TempDir()
	f := &fixture{t: t, root: root, apps: filepath.Join(root, "apps"), quarantine: filepath.Join(root, "quarantine"),
		pub: newPublisher(t, "acme"), blobs: map[string][]byte{}}
	in, err := install.New(install.Options{AppsDir: f.apps, StagingDir: filepath.Join(root, "staging"),
		Fetch: func(_ context.Context, digest string, off int64) (io.ReadCloser, error) {
			b, ok := f.blobs[digest]
			if !ok {
				return nil, fmt.Errorf("no blob %s", digest)
			}
			return io.NopCloser(bytes.NewReader(b[off:])), nil
		},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f.in = in
	f.setPolicy(false)
	return f
}

// install installs name@version through the real installer and adds it to
// the managed set.
func (f *fixture) install(name, version string, files ...file) {
	f.t.Helper()
	for _, fl := range files {
		f.blobs[fmt.Sprintf("%x", sha256.Sum256(fl.content))] = fl.content
	}
	a := f.pub.app(f.t, name, version, files...)
	f.manage(name)
	if err := f.in.Install(context.Background(), a, []string{f.pub.pem}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) manage(names ...string) {
	old := f.policy.Load()
	p := Policy{SideloadAllowed: old.SideloadAllowed, Managed: map[string]bool{}, Publishers: old.Publishers}
	for n := range old.Managed {
		p.Managed[n] = true
	}
	for _, n := range names {
		p.Managed[n] = true
	}
	f.policy.Store(&p)
}

func (f *fixture) setPolicy(allowed bool) {
	p := Policy{SideloadAllowed: allowed, Managed: map[string]bool{}, Publishers: map[string][]string{f.pub.name: {f.pub.pem}}}
	if old := f.policy.Load(); old != nil {
		p.Managed = old.Managed
	}
	f.policy.Store(&p)
}

func (f *fixture) newGuard() *Guard {
	f.t.Helper()
	g, err := New(Options{
		AppsDir: f.apps, QuarantineDir: f.quarantine, Debounce: 20 * time.Millisecond,
		Policy: func() Policy { return *f.policy.Load() },
		Stop: func(_ context.Context, app string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.stopped = append(f.stopped, app)
			return nil
		},
		Report: func(_ context.Context, ev protocol.Event) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.events = append(f.events, ev)
			return nil
		},
		Journal: f.journal,
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.guard = g
	return g
}

// start runs a guard until the test ends and waits for its start-up scan.
func (f *fixture) start() *Guard {
	f.t.Helper()
	g := f.newGuard()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	f.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("Run: %v", err)
		}
	})
	eventually(f.t, "start-up scan", func() bool { n, _ := g.Scans(); return n >= 1 })
	return g
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not waiting a fixed time
	}
}

// eventsFor returns the events about app.
func (f *fixture) eventsFor(app string) []protocol.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []protocol.Event
	for _, e := range f.events {
		if e.Details["app"] == app {
			out = append(out, e)
		}
	}
	return out
}

func (f *fixture) allEvents() []protocol.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]protocol.Event(nil), f.events...)
}

func (f *fixture) wasStopped(app string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.stopped {
		if s == app {
			return true
		}
	}
	return false
}

// quarantined returns the quarantine directory holding app's files ("" if none).
func (f *fixture) quarantined(app string) string {
	es, _ := os.ReadDir(f.quarantine)
	for _, e := range es {
		if strings.HasSuffix(e.Name(), "-"+safeName(app)) {
			return filepath.Join(f.quarantine, e.Name())
		}
	}
	return ""
}

// caught waits until app was reported with kind, stopped and quarantined,
// and checks the event and the files in quarantine. It returns the event.
func (f *fixture) caught(app, kind string) protocol.Event {
	f.t.Helper()
	var ev protocol.Event
	eventually(f.t, kind+" and quarantine of "+app, func() bool {
		var got, q bool
		for _, e := range f.eventsFor(app) {
			if e.Kind == kind {
				ev, got = e, true
			}
			if e.Kind == protocol.EventQuarantined {
				q = true
			}
		}
		return got && q
	})
	if ev.Severity != protocol.SeveritySecurity || ev.ID == "" || ev.At.IsZero() {
		f.t.Errorf("event %+v: want severity security, an id and a time", ev)
	}
	for _, k := range []string{"path", "expected", "found", "action"} {
		if ev.Details[k] == "" {
			f.t.Errorf("event %s lacks detail %q: %v", ev.Kind, k, ev.Details)
		}
	}
	if !strings.Contains(ev.Details["action"], "quarantined to ") || !strings.Contains(ev.Details["action"], "stopped") {
		f.t.Errorf("action %q: want stopped and quarantined", ev.Details["action"])
	}
	if !f.wasStopped(app) {
		f.t.Errorf("%s was not stopped", app)
	}
	if f.quarantined(app) == "" {
		f.t.Errorf("%s is not in quarantine", app)
	}
	if _, err := os.Lstat(filepath.Join(f.apps, app)); !os.IsNotExist(err) {
		f.t.Errorf("%s is still in the apps directory (err %v)", app, err)
	}
	return ev
}

// alive proves the guard still runs: a fresh sideload is caught.
func (f *fixture) alive() {
	f.t.Helper()
	name := fmt.Sprintf("probe-%d", time.Now().UnixNano())
	if err := os.WriteFile(filepath.Join(f.apps, name), []byte("x"), 0o644); err != nil {
		f.t.Fatal(err)
	}
	f.caught(name, protocol.EventSideloadBlocked)
}

// binary is a small app with a plain binary and an unpacked archive.
func (f *fixture) installDemo(name string) {
	f.t.Helper()
	f.install(name, "1.0.0",
		file{path: "bin/" + name, content: []byte("#!/bin/sh\necho " + name + "\n"), mode: 0o755},
		file{path: "data.tar", unpack: manifest.UnpackTar, content: tarball(f.t, map[string]string{
			"www/":           "",
			"www/index.html": "<h1>hello</h1>",
			"conf/app.conf":  "port=8080",
			"www/latest":     "->index.html",
		})},
	)
}

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }
