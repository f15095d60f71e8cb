package install

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// publisher signs manifests like `catalog.Sign` with an Ed25519 key.
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

// app builds a signed assignment for name@version with the given files.
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
	return p.sign(name, version, raw)
}

func (p publisher) sign(name, version string, raw []byte) protocol.AppAssignment {
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(p.priv, raw))
	return protocol.AppAssignment{Name: name, Version: version, Publisher: p.name, Manifest: raw, Signature: []byte(sig)}
}

// blobs serves artifacts by digest and records fetches.
type blobs struct {
	mu      sync.Mutex
	data    map[string][]byte
	offsets []int64
	// serve, if set, replaces the content served for a digest.
	serve func(digest string, content []byte) []byte
}

func newBlobs(files ...file) *blobs {
	b := &blobs{data: map[string][]byte{}}
	b.add(files...)
	return b
}

func (b *blobs) add(files ...file) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, f := range files {
		sum := sha256.Sum256(f.content)
		b.data[fmt.Sprintf("%x", sum)] = f.content
	}
}

func (b *blobs) fetch(_ context.Context, digest string, offset int64) (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.data[digest]
	if !ok {
		return nil, fmt.Errorf("no artifact %s", digest)
	}
	if b.serve != nil {
		c = b.serve(digest, c)
	}
	b.offsets = append(b.offsets, offset)
	if offset > int64(len(c)) {
		offset = int64(len(c))
	}
	return io.NopCloser(bytes.NewReader(c[offset:])), nil
}

type fixture struct {
	in       *Installer
	apps     string
	staging  string
	blobs    *blobs
	mu       sync.Mutex
	progress []Progress
}

func newFixture(t testing.TB, b *blobs) *fixture {
	dir := t.TempDir()
	f := &fixture{apps: filepath.Join(dir, "apps"), staging: filepath.Join(dir, "staging"), blobs: b}
	in, err := New(Options{AppsDir: f.apps, StagingDir: f.staging, Fetch: b.fetch, Logger: slog.New(slog.DiscardHandler), Progress: func(p Progress) {
		f.mu.Lock()
		f.progress = append(f.progress, p)
		f.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	f.in = in
	return f
}

func (f *fixture) states() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s []string
	for _, p := range f.progress {
		if len(s) == 0 || s[len(s)-1] != p.State {
			s = append(s, p.State)
		}
	}
	return s
}

func (f *fixture) current(t testing.TB, name string) string {
	t.Helper()
	v, err := f.in.Current(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func readApp(t testing.TB, f *fixture, name, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.in.Dir(name), p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stagingEmpty fails unless no assembled tree and no partial download is left.
func stagingEmpty(t testing.TB, f *fixture) {
	t.Helper()
	for _, d := range []string{"build", "dl"} {
		e, err := os.ReadDir(filepath.Join(f.staging, d))
		if err != nil {
			t.Fatal(err)
		}
		if len(e) != 0 {
			t.Errorf("staging/%s not empty: %v", d, e)
		}
	}
}

var (
	binV1 = file{path: "bin/hello", content: []byte("#!/bin/sh\necho v1\n"), mode: 0o755}
	binV2 = file{path: "bin/hello", content: []byte("#!/bin/sh\necho v2\n"), mode: 0o755}
	conf  = file{path: "etc/hello.conf", content: []byte("port=8080\n")}
)

func TestInstallUpgradeRollbackRemove(t *testing.T) {
	acme := newPublisher(t, "acme")
	f := newFixture(t, newBlobs(binV1, binV2, conf))
	ctx := context.Background()

	if err := f.in.Install(ctx, acme.app(t, "hello", "1.0.0", binV1, conf), []string{acme.pem}); err != nil {
		t.Fatal(err)
	}
	if got := f.current(t, "hello"); got != "1.0.0" {
		t.Fatalf("current = %q, want 1.0.0", got)
	}
	if got := readApp(t, f, "hello", "bin/hello"); got != string(binV1.content) {
		t.Fatalf("bin/hello = %q", got)
	}
	fi, err := os.Stat(filepath.Join(f.in.Dir("hello"), "bin/hello"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("bin/hello mode: %v %v", fi.Mode(), err)
	}
	want := []string{protocol.AppPending, protocol.AppDownloading, protocol.AppVerifying, protocol.AppDownloading, protocol.AppVerifying, protocol.AppInstalling, protocol.AppInstalled}
	if got := f.states(); !slices.Equal(got, want) {
		t.Errorf("progress states = %v, want %v", got, want)
	}
	stagingEmpty(t, f)

	if err := f.in.Install(ctx, acme.app(t, "hello", "2.0.0", binV2, conf), []string{acme.pem}); err != nil {
		t.Fatal(err)
	}
	if got := readApp(t, f, "hello", "bin/hello"); got != string(binV2.content) {
		t.Fatalf("after upgrade bin/hello = %q", got)
	}
	// Rollback to the kept previous version needs no download.
	n := len(f.blobs.offsets)
	if err := f.in.Install(ctx, acme.app(t, "hello", "1.0.0", binV1, conf), []string{acme.pem}); err != nil {
		t.Fatal(err)
	}
	if f.current(t, "hello") != "1.0.0" || len(f.blobs.offsets) != n {
		t.Fatalf("rollback: current %s, fetches %d -> %d", f.current(t, "hello"), n, len(f.blobs.offsets))
	}
	inst, err := f.in.Installed()
	if err != nil || inst["hello"] != "1.0.0" || len(inst) != 1 {
		t.Fatalf("Installed = %v, %v", inst, err)
	}
	if err := f.in.Remove("hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(f.apps, "hello")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("app dir still there after Remove: %v", err)
	}
	if err := f.in.Remove("hello"); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if err := f.in.Remove("../etc"); err == nil {
		t.Fatal("Remove accepted a path as app name")
	}
}

func TestKeepVersions(t *testing.T) {
	acme := newPublisher(t, "acme")
	f := newFixture(t, newBlobs())
	for i := 1; i <= 4; i++ {
		b := file{path: "run", content: fmt.Appendf(nil, "v%d", i)}
		f.blobs.add(b)
		if err := f.in.Install(context.Background(), acme.app(t, "a", fmt.Sprintf("1.%d.0", i), b), []string{acme.pem}); err != nil {
			t.Fatal(err)
		}
	}
	e, _ := os.ReadDir(filepath.Join(f.apps, "a", "versions"))
	var names []string
	for _, x := range e {
		names = append(names, x.Name())
	}
	if !slices.Equal(names, []string{"1.3.0", "1.4.0"}) {
		t.Fatalf("versions kept = %v, want [1.3.0 1.4.0]", names)
	}
}

// Every refused signature leaves nothing installed and fetches nothing.
func TestInstallRefusesBadSignatures(t *testing.T) {
	acme := newPublisher(t, "acme")
	globex := newPublisher(t, "globex")
	attacker := newPublisher(t, "acme")
	good := acme.app(t, "hello", "1.0.0", binV1)
	other := acme.app(t, "hello", "1.0.0", binV2)

	unsigned := good
	unsigned.Signature = nil
	untrusted := attacker.app(t, "hello", "1.0.0", binV1)
	otherPublisherKey := globex.sign("hello", "1.0.0", good.Manifest)
	otherPublisherKey.Publisher = "acme"
	differentManifest := good
	differentManifest.Signature = other.Signature
	renamed := good
	renamed.Name = "other"
	unsignedEdit := good
	unsignedEdit.Manifest = bytes.Replace(good.Manifest, []byte(`"bin/hello"`), []byte(`"bin/hellx"`), 1)

	for name, a := range map[string]protocol.AppAssignment{
		"unsigned": unsigned, "untrusted key": untrusted, "other publisher's key": otherPublisherKey,
		"signature over a different manifest": differentManifest, "assignment names another app": renamed,
		"manifest edited after signing": unsignedEdit,
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, newBlobs(binV1, binV2))
			err := f.in.Install(context.Background(), a, []string{acme.pem})
			if !errors.Is(err, ErrVerify) {
				t.Fatalf("want ErrVerify, got %v", err)
			}
			if len(f.blobs.offsets) != 0 {
				t.Error("fetched artifacts before the signature verified")
			}
			if e, _ := os.ReadDir(f.apps); len(e) != 0 {
				t.Errorf("apps dir not empty: %v", e)
			}
			if s := f.states(); s[len(s)-1] != protocol.AppFailed {
				t.Errorf("last state %v, want failed", s)
			}
		})
	}
	// A key removed from the publisher: its apps no longer install.
	f := newFixture(t, newBlobs(binV1))
	if err := f.in.Install(context.Background(), good, nil); !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "no trusted key") {
		t.Fatalf("with no keys: %v", err)
	}
}

// A manifest path with ".." or an absolute path is refused before download.
func TestInstallRefusesUnsafePaths(t *testing.T) {
	acme := newPublisher(t, "acme")
	for _, p := range []string{"../evil", "bin/../../evil", "/etc/passwd", ".edgewarden/manifest.json"} {
		raw := fmt.Appendf(nil, `{"name":"x","version":"1.0.0","publisher":"acme","runtime":"process","exec":{"command":"run"},`+
			`"artifacts":[{"path":%q,"sha256":"%x","size":1}]}`, p, sha256.Sum256([]byte("a")))
		f := newFixture(t, newBlobs(file{path: "a", content: []byte("a")}))
		err := f.in.Install(context.Background(), acme.sign("x", "1.0.0", raw), []string{acme.pem})
		if !errors.Is(err, ErrVerify) || !errors.Is(err, ErrVerify) {
			t.Errorf("path %q: want ErrVerify, got %v", p, err)
		}
		if len(f.blobs.offsets) != 0 {
			t.Errorf("path %q: fetched", p)
		}
	}
}

// installed1 returns a fixture with hello@1.0.0 installed.
func installed1(t *testing.T, acme publisher) *fixture {
	f := newFixture(t, newBlobs(binV1, binV2, conf))
	if err := f.in.Install(context.Background(), acme.app(t, "hello", "1.0.0", binV1, conf), []string{acme.pem}); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestArtifactByteChanged(t *testing.T) {
	acme := newPublisher(t, "acme")
	f := installed1(t, acme)
	f.blobs.serve = func(_ string, c []byte) []byte {
		c = bytes.Clone(c)
		c[3] ^= 1
		return c
	}
	err := f.in.Install(context.Background(), acme.app(t, "hello", "2.0.0", binV2, conf), []string{acme.pem})
	if !errors.Is(err, ErrArtifact) || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("want ErrArtifact about sha256, got %v", err)
	}
	if f.current(t, "hello") != "1.0.0" || readApp(t, f, "hello", "bin/hello") != string(binV1.content) {
		t.Fatal("previous version not left in place")
	}
	if _, err := os.Stat(filepath.Join(f.apps, "hello", "versions", "2.0.0")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a failed version was moved into place")
	}
	stagingEmpty(t, f)
}

// countingReader counts bytes read from it.
type countingReader struct {
	r io.Reader
	n *int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

func TestArtifactLongerThanDeclared(t *testing.T) {
	acme := newPublisher(t, "acme")
	f := installed1(t, acme)
	var read int64
	endless := bytes.Repeat([]byte("A"), 10<<20)
	in := f.in
	in.opts.Fetch = func(_ context.Context, _ string, off int64) (io.ReadCloser, error) {
		// The right bytes, then 10 MB more.
		return io.NopCloser(countingReader{io.MultiReader(bytes.NewReader(binV2.content[off:]), bytes.NewReader(endless)), &read}), nil
	}
	err := in.Install(context.Background(), acme.app(t, "hello", "2.0.0", binV2), []string{acme.pem})
	if !errors.Is(err, ErrArtifact) || !strings.Contains(err.Error(), "longer than the declared") {
		t.Fatalf("want ErrArtifact (longer), got %v", err)
	}
	if read > int64(len(binV2.content))+256<<10 {
		t.Errorf("read %d bytes of a %d-byte artifact: the download did not stop at the declared size", read, len(binV2.content))
	}
	if f.current(t, "hello") != "1.0.0" {
		t.Fatal("previous version not left in place")
	}
	stagingEmpty(t, f)
}

func TestTruncatedDownloadResumes(t *testing.T) {
	acme := newPublisher(t, "acme")
	f := installed1(t, acme)
	big := file{path: "data.bin", content: bytes.Repeat([]byte("0123456789"), 100000)}
	f.blobs.add(big)
	half := int64(len(big.content) / 2)
	f.blobs.serve = func(_ string, c []byte) []byte { return c[:half] }
	a := acme.app(t, "hello", "2.0.0", big)
	err := f.in.Install(context.Background(), a, []string{acme.pem})
	if !errors.Is(err, ErrDownload) {
		t.Fatalf("want ErrDownload, got %v", err)
	}
	if f.current(t, "hello") != "1.0.0" {
		t.Fatal("previous version not left in place")
	}
	f.blobs.serve = nil
	if err := f.in.Install(context.Background(), a, []string{acme.pem}); err != nil {
		t.Fatal(err)
	}
	if last := f.blobs.offsets[len(f.blobs.offsets)-1]; last != half {
		t.Errorf("resumed at %d, want %d", last, half)
	}
	if readApp(t, f, "hello", "data.bin") != string(big.content) {
		t.Fatal("resumed content differs")
	}
	stagingEmpty(t, f)
}

// A stale partial download that is not a prefix of the artifact is caught
// by the digest check and dropped.
func TestCorruptPartialDownload(t *testing.T) {
	acme := newPublisher(t, "acme")
	f := newFixture(t, newBlobs(binV1))
	sum := sha256.Sum256(binV1.content)
	os.WriteFile(filepath.Join(f.staging, "dl", fmt.Sprintf("%x.part", sum)), []byte("garbage"), 0o600)
	a := acme.app(t, "hello", "1.0.0", binV1)
	if err := f.in.Install(context.Background(), a, []string{acme.pem}); !errors.Is(err, ErrArtifact) {
		t.Fatalf("want ErrArtifact, got %v", err)
	}
	if err := f.in.Install(context.Background(), a, []string{acme.pem}); err != nil {
		t.Fatalf("retry after dropping the bad partial: %v", err)
	}
}

func tarball(t testing.TB, entries ...tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		body := []byte(h.Linkname)
		if h.Typeflag == tar.TypeReg {
			body = []byte("content of " + h.Name)
			h.Size = int64(len(body))
			h.Linkname = ""
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(body)
		}
	}
	tw.Close()
	return buf.Bytes()
}

func TestTarUnpack(t *testing.T) {
	acme := newPublisher(t, "acme")
	good := file{path: "app.tar", unpack: manifest.UnpackTar, content: tarball(t,
		tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		tar.Header{Name: "bin/server", Typeflag: tar.TypeReg, Mode: 0o755},
		tar.Header{Name: "./lib/x.so", Typeflag: tar.TypeReg},
		tar.Header{Name: "lib/link.so", Typeflag: tar.TypeSymlink, Linkname: "x.so"},
	)}
	f := newFixture(t, newBlobs(good))
	if err := f.in.Install(context.Background(), acme.app(t, "srv", "1.0.0", good), []string{acme.pem}); err != nil {
		t.Fatal(err)
	}
	if readApp(t, f, "srv", "lib/link.so") != "content of ./lib/x.so" {
		t.Fatal("symlink inside the app does not resolve")
	}
	if _, err := os.Stat(filepath.Join(f.in.Dir("srv"), "app.tar")); !errors.Is(err, os.ErrNotExist) {
		t.Error("archive kept after unpacking")
	}

	for name, entries := range map[string][]tar.Header{
		"dotdot":           {{Name: "../../escape", Typeflag: tar.TypeReg}},
		"absolute":         {{Name: "/tmp/escape", Typeflag: tar.TypeReg}},
		"symlink out":      {{Name: "evil", Typeflag: tar.TypeSymlink, Linkname: "../../../../etc"}},
		"absolute symlink": {{Name: "evil", Typeflag: tar.TypeSymlink, Linkname: "/etc"}},
		"write through symlink": {
			{Name: "d", Typeflag: tar.TypeSymlink, Linkname: "sub"},
			{Name: "sub/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "d/x", Typeflag: tar.TypeReg}},
		"hard link":          {{Name: "h", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}},
		"device":             {{Name: "dev", Typeflag: tar.TypeChar}},
		"reserved meta":      {{Name: ".edgewarden/manifest.json", Typeflag: tar.TypeReg}},
		"duplicate entry":    {{Name: "a", Typeflag: tar.TypeReg}, {Name: "a", Typeflag: tar.TypeReg}},
		"overwrites via dir": {{Name: "a", Typeflag: tar.TypeReg}, {Name: "a/", Typeflag: tar.TypeDir}},
	} {
		t.Run(name, func(t *testing.T) {
			bad := file{path: "app.tar", unpack: manifest.UnpackTar, content: tarball(t, entries...)}
			f := newFixture(t, newBlobs(good, bad))
			if err := f.in.Install(context.Background(), acme.app(t, "srv", "1.0.0", good), []string{acme.pem}); err != nil {
				t.Fatal(err)
			}
			err := f.in.Install(context.Background(), acme.app(t, "srv", "2.0.0", bad), []string{acme.pem})
			if err == nil {
				t.Fatal("unsafe archive installed")
			}
			if f.current(t, "srv") != "1.0.0" {
				t.Fatal("previous version not left in place")
			}
			for _, p := range []string{filepath.Join(filepath.Dir(f.apps), "escape"), "/tmp/escape"} {
				if _, err := os.Lstat(p); err == nil {
					t.Fatalf("%s was written outside the app directory", p)
				}
			}
			stagingEmpty(t, f)
		})
	}
}

func TestRecoverFixesBrokenCurrent(t *testing.T) {
	acme := newPublisher(t, "acme")
	f := installed1(t, acme)
	appDir := filepath.Join(f.apps, "hello")
	// A crash left a temp symlink, a trash dir, staging, and current
	// pointing at a version that never landed.
	os.Symlink("versions/9.9.9", filepath.Join(appDir, "current.tmp"))
	os.MkdirAll(filepath.Join(appDir, "versions", ".removing-1.0.0"), 0o755)
	os.MkdirAll(filepath.Join(f.staging, "build", "hello@2.0.0-abc", "bin"), 0o755)
	os.Remove(filepath.Join(appDir, "current"))
	os.Symlink("versions/9.9.9", filepath.Join(appDir, "current"))
	// An app with no complete version at all.
	os.MkdirAll(filepath.Join(f.apps, "ghost", "versions", "1.0.0"), 0o755)
	os.Symlink("versions/1.0.0", filepath.Join(f.apps, "ghost", "current"))

	if err := f.in.Recover(); err != nil {
		t.Fatal(err)
	}
	if f.current(t, "hello") != "1.0.0" {
		t.Fatalf("current = %q after Recover, want 1.0.0", f.current(t, "hello"))
	}
	if f.current(t, "ghost") != "" {
		t.Fatal("an incomplete app is current after Recover")
	}
	for _, p := range []string{filepath.Join(appDir, "current.tmp"), filepath.Join(appDir, "versions", ".removing-1.0.0"), filepath.Join(f.staging, "build", "hello@2.0.0-abc")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s left after Recover", p)
		}
	}
}

// A chain of links whose every link looks inside when its text is cleaned
// (b -> ., a -> b/..) but that reaches the parent of the app directory is
// refused, with or without a write through it, and nothing outside is
// touched (issue 11: confined file operations).
func TestArtifactLinkChainRefused(t *testing.T) {
	acme := newPublisher(t, "acme")
	good := file{path: "app.tar", unpack: manifest.UnpackTar, content: tarball(t,
		tar.Header{Name: "run", Typeflag: tar.TypeReg, Mode: 0o755})}
	chain := []tar.Header{
		{Name: "b", Typeflag: tar.TypeSymlink, Linkname: "."},
		{Name: "a", Typeflag: tar.TypeSymlink, Linkname: "b/.."},
	}
	for _, tc := range []struct {
		name    string
		entries []tar.Header
		want    string
	}{
		{"chain", chain, "chains of links, must stay inside"},
		{"chain then write", append(chain[:2:2], tar.Header{Name: "a/escape", Typeflag: tar.TypeReg}), "written through the symlink a"},
		{"chain then dir", append(chain[:2:2], tar.Header{Name: "a/escape/", Typeflag: tar.TypeDir, Mode: 0o755}), "written through the symlink a"},
		{"chain of three", []tar.Header{
			{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "d/up", Typeflag: tar.TypeSymlink, Linkname: ".."},
			{Name: "d/self", Typeflag: tar.TypeSymlink, Linkname: "up/d"},
			{Name: "x", Typeflag: tar.TypeSymlink, Linkname: "d/self/up/d/self/../.."},
		}, "chains of links, must stay inside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := file{path: "app.tar", unpack: manifest.UnpackTar, content: tarball(t, tc.entries...)}
			f := newFixture(t, newBlobs(good, bad))
			if err := f.in.Install(context.Background(), acme.app(t, "srv", "1.0.0", good), []string{acme.pem}); err != nil {
				t.Fatal(err)
			}
			outside := filepath.Dir(f.staging)
			before, _ := os.ReadDir(outside)
			err := f.in.Install(context.Background(), acme.app(t, "srv", "2.0.0", bad), []string{acme.pem})
			if !errors.Is(err, ErrArtifact) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrArtifact saying %q", err, tc.want)
			}
			if f.current(t, "srv") != "1.0.0" {
				t.Fatal("previous version not left in place")
			}
			for _, p := range []string{filepath.Join(f.staging, "build", "escape"), filepath.Join(outside, "escape")} {
				if _, err := os.Lstat(p); err == nil {
					t.Fatalf("%s was written outside the app directory", p)
				}
			}
			if after, _ := os.ReadDir(outside); len(after) != len(before) {
				t.Fatalf("the directory around the app changed: %v -> %v", before, after)
			}
			stagingEmpty(t, f)
		})
	}
}
