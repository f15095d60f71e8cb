package install

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// localPackage builds a local package: manifest.json for name@version
// listing files, then the tar entries given (files as they are, unless
// entries is nil: then exactly the files).
func localPackage(t testing.TB, name, version string, files []file, entries ...tar.Header) []byte {
	t.Helper()
	m := manifest.Manifest{Name: name, Version: version, Publisher: "local", Runtime: manifest.RuntimeProcess,
		Exec: manifest.Exec{Command: files[0].path}}
	for _, f := range files {
		sum := sha256.Sum256(f.content)
		m.Artifacts = append(m.Artifacts, manifest.Artifact{Path: f.path, SHA256: fmt.Sprintf("%x", sum), Size: int64(len(f.content)), Mode: f.mode})
	}
	raw, err := json.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	write := func(h tar.Header, body []byte) {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	write(tar.Header{Name: PackageManifest, Typeflag: tar.TypeReg}, raw)
	if entries == nil {
		for _, f := range files {
			write(tar.Header{Name: f.path, Typeflag: tar.TypeReg, Mode: 0o600}, f.content)
		}
	}
	for _, h := range entries {
		write(h, []byte("content of "+h.Name))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func TestInstallLocal(t *testing.T) {
	f := newFixture(t, newBlobs())
	ctx := context.Background()
	pkg := localPackage(t, "tool", "1.0.0", []file{binV1, conf})
	m, err := f.in.InstallLocal(ctx, bytes.NewReader(pkg), LocalOptions{Record: SideloadRecord{User: "olga", Filename: "tool.tgz"}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "tool" || f.current(t, "tool") != "1.0.0" || readApp(t, f, "tool", "bin/hello") != string(binV1.content) {
		t.Fatalf("installed %+v, current %s", m, f.current(t, "tool"))
	}
	if fi, err := os.Stat(filepath.Join(f.in.Dir("tool"), "bin/hello")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("artifact mode %v (the manifest says 0755): %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(f.in.Dir("tool"), "etc/hello.conf")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("artifact mode %v (the default is 0644): %v", fi.Mode(), err)
	}
	if _, err := os.Stat(filepath.Join(f.in.Dir("tool"), PackageManifest)); err == nil {
		t.Error("the package's manifest.json was left among the app's files")
	}
	cur, err := f.in.CurrentApp("tool")
	if err != nil || !cur.Sideloaded || cur.Signature != nil || !f.in.Sideloaded("tool") {
		t.Fatalf("current app %+v %v", cur, err)
	}
	var rec SideloadRecord
	raw, _ := os.ReadFile(filepath.Join(f.in.Dir("tool"), metaDir, sideloadedFile))
	if err := json.Unmarshal(raw, &rec); err != nil || rec.User != "olga" || rec.Filename != "tool.tgz" || len(rec.SHA256) != 64 {
		t.Fatalf("marker %s: %v", raw, err)
	}
	if inst, _ := f.in.Installed(); inst["tool"] != "1.0.0" {
		t.Errorf("installed %v", inst)
	}
	// A new version replaces it.
	if _, err := f.in.InstallLocal(ctx, bytes.NewReader(localPackage(t, "tool", "1.1.0", []file{binV2})), LocalOptions{}); err != nil {
		t.Fatal(err)
	}
	if f.current(t, "tool") != "1.1.0" || readApp(t, f, "tool", "bin/hello") != string(binV2.content) {
		t.Fatal("the new version is not current")
	}
	stagingEmpty(t, f)
}

// TestInstallLocalRefusals: every bad package fails with a clear error and
// leaves the apps directory and staging as they were.
func TestInstallLocalRefusals(t *testing.T) {
	f := newFixture(t, newBlobs())
	ctx := context.Background()
	if _, err := f.in.InstallLocal(ctx, bytes.NewReader(localPackage(t, "tool", "1.0.0", []file{binV1})), LocalOptions{}); err != nil {
		t.Fatal(err)
	}
	// Entries written by localPackage hold "content of NAME": exact is
	// what the manifest then lists, sameSize differs in one byte.
	exact := file{path: "bin/hello", content: []byte("content of bin/hello"), mode: 0o755}
	sameSize := file{path: "bin/hello", content: []byte("content of bin/hellX"), mode: 0o755}
	tampered := localPackage(t, "tool", "2.0.0", []file{sameSize}, tar.Header{Name: "bin/hello", Typeflag: tar.TypeReg, Mode: 0o755})
	for _, tc := range []struct {
		name string
		pkg  []byte
		opts LocalOptions
		is   error
		want string
	}{
		{"not gzip", []byte("just text"), LocalOptions{}, ErrArtifact, "gzip"},
		{"empty", nil, LocalOptions{}, ErrArtifact, "empty"},
		{"digest mismatch", tampered, LocalOptions{}, ErrArtifact, "sha256"},
		{"file not listed", localPackage(t, "tool", "2.0.0", []file{exact}, tar.Header{Name: "bin/hello", Typeflag: tar.TypeReg}, tar.Header{Name: "extra.sh", Typeflag: tar.TypeReg}), LocalOptions{}, ErrArtifact, "does not list"},
		{"file missing", localPackage(t, "tool", "2.0.0", []file{binV1, conf}, tar.Header{Name: "bin/", Typeflag: tar.TypeDir}), LocalOptions{}, ErrArtifact, "does not hold"},
		{"path traversal", localPackage(t, "tool", "2.0.0", []file{binV1}, tar.Header{Name: "../../evil", Typeflag: tar.TypeReg}), LocalOptions{}, ErrArtifact, "escapes"},
		{"symlink out", localPackage(t, "tool", "2.0.0", []file{binV1}, tar.Header{Name: "bin/hello", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}), LocalOptions{}, ErrArtifact, "leaves"},
		{"link chain out", localPackage(t, "tool", "2.0.0", []file{binV1}, tar.Header{Name: "b", Typeflag: tar.TypeSymlink, Linkname: "."}, tar.Header{Name: "a", Typeflag: tar.TypeSymlink, Linkname: "b/.."}), LocalOptions{}, ErrArtifact, "chains of links, must stay inside"},
		{"write through a link chain", localPackage(t, "tool", "2.0.0", []file{binV1}, tar.Header{Name: "b", Typeflag: tar.TypeSymlink, Linkname: "."}, tar.Header{Name: "a", Typeflag: tar.TypeSymlink, Linkname: "b/.."}, tar.Header{Name: "a/evil", Typeflag: tar.TypeReg}), LocalOptions{}, ErrArtifact, "written through the symlink a"},
		{"forged metadata", localPackage(t, "tool", "2.0.0", []file{binV1}, tar.Header{Name: ".edgewarden/signature", Typeflag: tar.TypeReg}), LocalOptions{}, ErrArtifact, ""},
		{"too large", localPackage(t, "tool", "2.0.0", []file{binV1}), LocalOptions{MaxBytes: 10}, ErrArtifact, "larger"},
		{"refused by the caller", localPackage(t, "tool", "2.0.0", []file{binV1}), LocalOptions{Check: func(*manifest.Manifest) error { return errors.New("name taken") }}, nil, "name taken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := treeOf(t, f.apps)
			_, err := f.in.InstallLocal(ctx, bytes.NewReader(tc.pkg), tc.opts)
			if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error wrapping %v mentioning %q", err, tc.is, tc.want)
			}
			if after := treeOf(t, f.apps); after != before {
				t.Fatalf("apps directory changed:\n%s\n->\n%s", before, after)
			}
			stagingEmpty(t, f)
		})
	}
	// No manifest at all.
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "run.sh", Typeflag: tar.TypeReg, Size: 2, Mode: 0o755})
	tw.Write([]byte("hi"))
	tw.Close()
	gz.Close()
	if _, err := f.in.InstallLocal(ctx, &buf, LocalOptions{}); !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "manifest.json") {
		t.Fatalf("package without a manifest: %v", err)
	}
}

// treeOf lists every path under dir with its type, for "unchanged" checks.
func treeOf(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			rel, _ := filepath.Rel(dir, p)
			fmt.Fprintf(&b, "%s %v %d\n", rel, fi.Mode(), fi.Size())
		}
		return nil
	})
	return b.String()
}
