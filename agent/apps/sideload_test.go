package apps

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/edgewarden/edgewarden/agent/apply"
	"github.com/edgewarden/edgewarden/agent/localapi"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// localPackage is a sideload package of name@version running appScript.
func localPackage(t *testing.T, name, version string) []byte {
	t.Helper()
	script := appScript(version)
	m := manifest.Manifest{Name: name, Version: version, Publisher: "local", Runtime: manifest.RuntimeProcess,
		Exec:      manifest.Exec{Command: "bin/run.sh"},
		Artifacts: []manifest.Artifact{{Path: "bin/run.sh", SHA256: fmt.Sprintf("%x", sha256.Sum256(script)), Size: int64(len(script)), Mode: 0o755}}}
	raw, err := json.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range []struct {
		name string
		body []byte
	}{{"manifest.json", raw}, {"bin/run.sh", script}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.body))})
		tw.Write(f.body)
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func (f *fixture) sideloadPolicy(allowed bool, apps ...protocol.AppAssignment) *apply.Policy {
	p := f.policy(apps)
	p.Doc.Sideload.Allowed = allowed
	return p
}

func (f *fixture) install(name, version string) (protocol.AppStatus, error) {
	return f.rec.Install(context.Background(), localapi.InstallRequest{User: "olga", Filename: name + ".tgz", Package: bytes.NewReader(localPackage(f.t, name, version))})
}

// TestSideloadInstall: with the ban lifted a local package installs, runs
// and is reported sideloaded; the guard does not see it as managed; a pass
// neither removes nor re-verifies it; when the ban returns a pass stops it
// and never restarts it.
func TestSideloadInstall(t *testing.T) {
	f := newFixture(t)
	hello := f.acme.assignment(t, f.srv, "hello", "1.0.0")

	// Banned (and no document yet): refused, nothing installed.
	if _, err := f.install("tool", "0.1.0"); !errors.Is(err, localapi.ErrConflict) || !strings.Contains(err.Error(), "ban is on") {
		t.Fatalf("install without a document: %v", err)
	}
	f.reconcile(f.sideloadPolicy(false, hello))
	f.running("hello", "1.0.0")
	if _, err := f.install("tool", "0.1.0"); !errors.Is(err, localapi.ErrConflict) {
		t.Fatalf("install while banned: %v", err)
	}

	f.reconcile(f.sideloadPolicy(true, hello))
	st, err := f.install("tool", "0.1.0")
	if err != nil || !st.Sideloaded || st.Name != "tool" {
		t.Fatalf("install: %+v %v", st, err)
	}
	pid := f.running("tool", "0.1.0")
	if s := f.status("tool"); !s.Sideloaded {
		t.Errorf("status %+v", s)
	}
	if m := f.rec.Managed(); !slices.Equal(m, []string{"hello"}) {
		t.Errorf("managed %v: the sideloaded app must not be managed (the guard tracks it as sideloaded)", m)
	}

	// A managed app's name is refused, and so is a bad package; nothing changes.
	if _, err := f.install("hello", "9.0.0"); !errors.Is(err, localapi.ErrConflict) || !strings.Contains(err.Error(), "managed") {
		t.Fatalf("name of a managed app: %v", err)
	}
	f.running("hello", "1.0.0")
	if _, err := f.rec.Install(context.Background(), localapi.InstallRequest{User: "olga", Package: strings.NewReader("garbage")}); !errors.Is(err, localapi.ErrInvalid) {
		t.Fatalf("garbage package: %v", err)
	}

	// A pass keeps it (the document does not assign it) and running.
	f.reconcile(f.sideloadPolicy(true, hello))
	if p := f.running("tool", "0.1.0"); p != pid {
		t.Fatalf("a pass restarted the sideloaded app (pid %d -> %d)", pid, p)
	}
	// After an agent restart it runs again while sideloading is allowed.
	f.stop()
	f.start()
	f.reconcile(f.sideloadPolicy(true, hello))
	pid = f.running("tool", "0.1.0")

	// The ban returns: stopped, and further passes do not start it.
	f.reconcile(f.sideloadPolicy(false, hello))
	eventually(t, "tool stopped", func() bool { return !alive(pid) })
	f.reconcile(f.sideloadPolicy(false, hello))
	if s := f.status("tool"); s.State == protocol.AppRunning || !s.Sideloaded || !strings.Contains(s.Reason, "ban is on") {
		t.Fatalf("after the ban returned: %+v", s)
	}
	f.running("hello", "1.0.0")

	// The document assigning an app under its name replaces it.
	f.reconcile(f.sideloadPolicy(true, hello))
	tool := f.acme.assignment(t, f.srv, "tool", "1.0.0")
	f.reconcile(f.sideloadPolicy(true, hello, tool))
	f.running("tool", "1.0.0")
	if s := f.status("tool"); s.Sideloaded {
		t.Fatalf("the assigned app is reported sideloaded: %+v", s)
	}
}
