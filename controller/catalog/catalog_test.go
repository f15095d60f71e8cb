package catalog_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgewarden/edgewarden/controller/catalog"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// objects lists the stored digests and fails if an upload temp file is left.
func objects(t *testing.T, dir string) []string {
	t.Helper()
	if e, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(e) != 0 {
		t.Fatalf("temporary upload files left: %v", e)
	}
	var out []string
	filepath.WalkDir(filepath.Join(dir, "objects"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, d.Name())
		}
		return nil
	})
	return out
}

func newCatalog(t *testing.T) (*catalog.Catalog, string) {
	dir := t.TempDir()
	s, err := catalog.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return catalog.New(s), dir
}

func TestStorePut(t *testing.T) {
	c, dir := newCatalog(t)
	s := c.Store()
	ctx := context.Background()
	data := []byte("artifact bytes")
	m, _ := manifest.Parse(manifestFor(data))
	d, n := m.Artifacts[0].SHA256, m.Artifacts[0].Size

	for name, c := range map[string]struct {
		body []byte
		want error
	}{
		"one byte changed": {[]byte("artifact bytez"), catalog.ErrDigestMismatch},
		"longer":           {append(bytes.Clone(data), '!'), catalog.ErrSizeMismatch},
		"truncated":        {data[:5], catalog.ErrSizeMismatch},
	} {
		if _, err := s.Put(ctx, bytes.NewReader(c.body), d, n); !errors.Is(err, c.want) {
			t.Errorf("%s: want %v, got %v", name, c.want, err)
		}
		if got := objects(t, dir); len(got) != 0 {
			t.Fatalf("%s: stored %v", name, got)
		}
	}
	created, err := s.Put(ctx, bytes.NewReader(data), d, n)
	if err != nil || !created {
		t.Fatalf("Put: %v %v", created, err)
	}
	created, err = s.Put(ctx, bytes.NewReader(data), d, n)
	if err != nil || created {
		t.Fatalf("second Put: created=%v %v", created, err)
	}
	// A bad upload of content already stored is still refused.
	if _, err := s.Put(ctx, bytes.NewReader([]byte("artifact bytez")), d, n); !errors.Is(err, catalog.ErrDigestMismatch) {
		t.Fatalf("bad re-upload: %v", err)
	}
	if got := objects(t, dir); len(got) != 1 || got[0] != d {
		t.Fatalf("objects = %v, want one copy of %s", got, d)
	}
	if _, err := os.Stat(filepath.Join(dir, "objects", "sha256", d[:2], d)); err != nil {
		t.Fatalf("not at the content address: %v", err)
	}
	f, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(b, data) {
		t.Fatal("Open returned other content")
	}
	if _, err := s.Open(strings.Repeat("0", 64)); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("Open missing: %v", err)
	}
	if _, err := s.Open("../../etc/passwd"); err == nil {
		t.Fatal("Open accepted a path")
	}
	removed, err := c.GC(ctx, map[string]bool{d: true})
	if err != nil || len(removed) != 0 {
		t.Fatalf("GC of referenced: %v %v", removed, err)
	}
	removed, err = c.GC(ctx, nil)
	if err != nil || len(removed) != 1 || len(objects(t, dir)) != 0 {
		t.Fatalf("GC: %v %v", removed, err)
	}
}

func TestPushCheckpoint1(t *testing.T) {
	ctx := context.Background()
	keyDir := t.TempDir()
	acme := newECDSAKey(t, keyDir, "acme", "pw")
	globex := newEd25519Key(t, keyDir, "globex", "")
	data := []byte("#!/bin/sh\necho hello\n")
	m := manifestFor(data)
	sig, err := catalog.Sign(ctx, acme.Priv, func() ([]byte, error) { return []byte("pw"), nil }, m)
	if err != nil {
		t.Fatal(err)
	}
	otherSig, _ := catalog.Sign(ctx, acme.Priv, func() ([]byte, error) { return []byte("pw"), nil }, manifestFor([]byte("other")))
	globexSig, _ := catalog.Sign(ctx, globex.Priv, nil, m)
	keys := []string{acme.Pub, newECDSAKey(t, keyDir, "acme2", "").Pub}

	for _, c := range []struct {
		name  string
		req   catalog.PushRequest
		files map[string]io.Reader
		msg   string
	}{
		{"unsigned", catalog.PushRequest{Manifest: m, Keys: keys}, nil, "not signed"},
		{"untrusted key", catalog.PushRequest{Manifest: m, Signature: []byte(globexSig), Keys: []string{keys[1]}},
			nil, "signature does not verify against any trusted key of publisher acme (1 keys configured)"},
		{"other publisher's key", catalog.PushRequest{Manifest: m, Signature: []byte(globexSig), Keys: keys}, nil, "publisher acme (2 keys configured)"},
		{"signature over a different manifest", catalog.PushRequest{Manifest: m, Signature: []byte(otherSig), Keys: keys}, nil, "does not verify"},
		{"artifact byte changed", catalog.PushRequest{Manifest: m, Signature: []byte(sig), Keys: keys},
			map[string]io.Reader{"bin/hello": bytes.NewReader(bytes.Replace(data, []byte("hello"), []byte("jello"), 1))}, "digest does not match"},
		{"artifact longer", catalog.PushRequest{Manifest: m, Signature: []byte(sig), Keys: keys},
			map[string]io.Reader{"bin/hello": io.MultiReader(bytes.NewReader(data), strings.NewReader("extra"))}, "longer than"},
		{"artifact truncated", catalog.PushRequest{Manifest: m, Signature: []byte(sig), Keys: keys},
			map[string]io.Reader{"bin/hello": bytes.NewReader(data[:4])}, "truncated"},
		{"artifact missing", catalog.PushRequest{Manifest: m, Signature: []byte(sig), Keys: keys}, map[string]io.Reader{}, "missing"},
		{"extra file", catalog.PushRequest{Manifest: m, Signature: []byte(sig), Keys: keys},
			map[string]io.Reader{"bin/hello": bytes.NewReader(data), "evil": strings.NewReader("x")}, "not in the manifest"},
		{"path with ..", catalog.PushRequest{Manifest: bytes.Replace(m, []byte(`"bin/hello","sha256"`), []byte(`"../hello","sha256"`), 1), Signature: []byte(sig), Keys: keys}, nil, `".."`},
	} {
		cat, dir := newCatalog(t)
		v, err := cat.PushFiles(ctx, c.req, c.files)
		if err == nil || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), " stored") {
			t.Errorf("%s: want an error mentioning %q and \"... stored\", got %v (version %v)", c.name, c.msg, err, v)
		}
		if !catalog.IsRejected(err) && c.name != "artifact missing" && c.name != "extra file" {
			t.Errorf("%s: IsRejected(%v) = false", c.name, err)
		}
		if got := objects(t, dir); len(got) != 0 {
			t.Errorf("%s: objects stored: %v", c.name, got)
		}
	}

	cat, dir := newCatalog(t)
	v, err := cat.PushFiles(ctx, catalog.PushRequest{Manifest: m, Signature: []byte(sig), Keys: keys}, map[string]io.Reader{"bin/hello": bytes.NewReader(data)})
	if err != nil {
		t.Fatal(err)
	}
	if v.KeyIndex != 0 || v.Manifest.Name != "hello" || !bytes.Equal(v.Raw, m) || len(v.NewObjects) != 1 {
		t.Fatalf("version = %+v", v)
	}
	// The same artifact in another version is stored once.
	m2 := bytes.Replace(m, []byte(`"1.0.0"`), []byte(`"1.0.1"`), 1)
	sig2, _ := catalog.Sign(ctx, acme.Priv, func() ([]byte, error) { return []byte("pw"), nil }, m2)
	v2, err := cat.PushFiles(ctx, catalog.PushRequest{Manifest: m2, Signature: []byte(sig2), Keys: keys}, map[string]io.Reader{"bin/hello": bytes.NewReader(data)})
	if err != nil || len(v2.NewObjects) != 0 {
		t.Fatalf("second version: %v %+v", err, v2)
	}
	if got := objects(t, dir); len(got) != 1 {
		t.Fatalf("objects = %v, want one", got)
	}
}

// A failed push removes what it created, but never an object another push
// in progress also holds.
func TestPushRollbackSparesSharedObjects(t *testing.T) {
	ctx := context.Background()
	k := newECDSAKey(t, t.TempDir(), "acme", "")
	data := []byte("shared")
	m := manifestFor(data)
	sig, _ := catalog.Sign(ctx, k.Priv, nil, m)
	req := catalog.PushRequest{Manifest: m, Signature: []byte(sig), Keys: []string{k.Pub}}
	cat, dir := newCatalog(t)

	a, err := cat.Begin(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Artifact(ctx, "bin/hello", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	b, _ := cat.Begin(ctx, req)
	if err := b.Artifact(ctx, "bin/hello", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	a.Close() // abandoned without Commit
	if len(objects(t, dir)) != 1 {
		t.Fatal("an abandoned push deleted an object another push committed")
	}

	cat2, dir2 := newCatalog(t)
	c, _ := cat2.Begin(ctx, req)
	c.Artifact(ctx, "bin/hello", bytes.NewReader(data))
	c.Close()
	c.Close()
	if got := objects(t, dir2); len(got) != 0 {
		t.Fatalf("abandoned push left %v", got)
	}
}
