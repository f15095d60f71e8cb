package install

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// A local package (sideloading, only where the document lifts the ban) is a
// tar.gz holding manifest.json at its top — the same manifest format as a
// signed app, but unsigned — and the manifest's artifacts at their paths.
// Every artifact must be a plain file (no unpack) whose size and SHA-256
// match the manifest, and the package may hold nothing else (directories
// aside). It is unpacked with the same extractor and path checks as a
// signed app's archive, then installed under the same layout:
//
//	NAME/versions/VERSION/.edgewarden/manifest.json   the package's manifest
//	NAME/versions/VERSION/.edgewarden/sideloaded      who installed it, when (SideloadRecord)
//	NAME/current -> versions/VERSION
//
// The sideloaded marker is what tells a sideloaded version from a managed
// one (which has a signature instead); agent/sideload treats every app
// directory the reconciler does not manage as sideloaded.

// PackageManifest is the name of the manifest at the top of a local
// package.
const PackageManifest = "manifest.json"

// sideloadedFile marks a sideloaded version (in its .edgewarden directory).
const sideloadedFile = "sideloaded"

// SideloadRecord is what the sideloaded marker of a version records.
type SideloadRecord struct {
	User     string    `json:"user"`               // the operator (token subject)
	At       time.Time `json:"at"`                 // when it was installed
	Filename string    `json:"filename,omitempty"` // the package's file name, as given
	SHA256   string    `json:"sha256"`             // of the package
}

// LocalOptions are the inputs of InstallLocal besides the package.
type LocalOptions struct {
	// Record is written to the version's sideloaded marker; SHA256 is
	// filled in.
	Record SideloadRecord
	// Check, if set, is called with the package's manifest before anything
	// is moved into the apps directory; an error refuses the package (e.g.
	// a name that a managed app holds).
	Check func(m *manifest.Manifest) error
	// MaxBytes bounds the package. Zero means 2 GiB.
	MaxBytes int64
}

// InstallLocal installs a local package (see PackageManifest) as the
// current version of its app, marked sideloaded. A package that is not a
// valid tar.gz, has no valid manifest, or whose files do not match it
// fails with an error wrapping ErrArtifact or ErrVerify and changes
// nothing; a disk failure wraps ErrInstall.
func (in *Installer) InstallLocal(ctx context.Context, pkg io.Reader, opts LocalOptions) (*manifest.Manifest, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 2 << 30
	}
	id := randomHex(6)
	part := filepath.Join(in.opts.StagingDir, "dl", "local-"+id+".tar.gz")
	defer os.Remove(part)
	sum, err := savePackage(ctx, pkg, part, opts.MaxBytes)
	if err != nil {
		return nil, err
	}
	build := filepath.Join(in.opts.StagingDir, "build", "local-"+id)
	defer os.RemoveAll(build)
	if err := os.MkdirAll(build, 0o755); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInstall, err)
	}
	if err := unpack(part, manifest.UnpackTarGz, build); err != nil {
		return nil, fmt.Errorf("local package: %w", err)
	}
	// Everything read from the unpacked package goes through a root on it.
	root, err := os.OpenRoot(build)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInstall, err)
	}
	defer root.Close()
	raw, m, err := packageManifest(root)
	if err != nil {
		return nil, err
	}
	if opts.Check != nil {
		if err := opts.Check(m); err != nil {
			return nil, err
		}
	}
	if err := checkPackageFiles(root, m); err != nil {
		return nil, fmt.Errorf("local package %s@%s: %w", m.Name, m.Version, err)
	}

	rec := opts.Record
	rec.SHA256 = sum
	marker, _ := json.Marshal(rec)
	if err := os.MkdirAll(filepath.Join(build, metaDir), 0o755); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInstall, err)
	}
	if err := writeSynced(filepath.Join(build, metaDir, "manifest.json"), raw, 0o444); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInstall, err)
	}
	if err := writeSynced(filepath.Join(build, metaDir, sideloadedFile), append(marker, '\n'), 0o444); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInstall, err)
	}
	if err := syncTree(build); err != nil {
		return nil, fmt.Errorf("%w: sync staged app: %v", ErrInstall, err)
	}
	appDir := filepath.Join(in.opts.AppsDir, m.Name)
	verDir := filepath.Join(appDir, "versions", m.Version)
	if err := os.MkdirAll(filepath.Dir(verDir), 0o755); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInstall, err)
	}
	if _, err := os.Lstat(verDir); err == nil {
		trash := filepath.Join(appDir, "versions", ".removing-"+m.Version)
		os.RemoveAll(trash)
		if err := os.Rename(verDir, trash); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInstall, err)
		}
		defer os.RemoveAll(trash)
	}
	if err := os.Rename(build, verDir); err != nil {
		return nil, fmt.Errorf("%w: move app into place: %v", ErrInstall, err)
	}
	if err := syncDir(filepath.Dir(verDir)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInstall, err)
	}
	if err := in.switchCurrent(appDir, m.Version); err != nil {
		return nil, err
	}
	in.prune(appDir)
	in.log.Info("sideloaded app installed", "app", m.Name, "version", m.Version, "user", rec.User, "sha256", sum)
	return m, nil
}

// Sideloaded reports whether name's current version was installed from a
// local package (InstallLocal).
func (in *Installer) Sideloaded(name string) bool {
	if !manifest.NamePattern.MatchString(name) {
		return false
	}
	_, err := os.Lstat(filepath.Join(in.opts.AppsDir, name, "current", metaDir, sideloadedFile))
	return err == nil
}

// savePackage copies the package to p, at most limit bytes, and returns its
// SHA-256.
func savePackage(ctx context.Context, pkg io.Reader, p string, limit int64) (string, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInstall, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(ctxReader{ctx, pkg}, limit+1))
	if err != nil {
		return "", fmt.Errorf("%w: read local package: %w", ErrDownload, err)
	}
	if n > limit {
		return "", fmt.Errorf("%w: local package is larger than %d bytes", ErrArtifact, limit)
	}
	if n == 0 {
		return "", fmt.Errorf("%w: local package is empty; give a tar.gz with manifest.json and the app's files", ErrArtifact)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader stops reading when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// packageManifest reads, parses and removes the unpacked package's
// manifest.json.
func packageManifest(root *os.Root) ([]byte, *manifest.Manifest, error) {
	fi, err := root.Lstat(PackageManifest)
	if err != nil || !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%w: local package has no %s at its top (a tar.gz of manifest.json and the files it lists)", ErrVerify, PackageManifest)
	}
	if fi.Size() > manifest.MaxBytes {
		return nil, nil, fmt.Errorf("%w: local package's %s is larger than %d bytes", ErrVerify, PackageManifest, manifest.MaxBytes)
	}
	raw, err := root.ReadFile(PackageManifest)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrInstall, err)
	}
	m, err := manifest.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: local package's %s: %v", ErrVerify, PackageManifest, err)
	}
	if err := root.Remove(PackageManifest); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrInstall, err)
	}
	return raw, m, nil
}

// checkPackageFiles checks that root holds exactly m's artifacts (plus
// directories), each a plain file of the declared size and digest, and
// gives each its declared mode.
func checkPackageFiles(root *os.Root, m *manifest.Manifest) error {
	want := make(map[string]manifest.Artifact, len(m.Artifacts))
	for _, a := range m.Artifacts {
		if a.Unpack != "" {
			return fmt.Errorf("%w: artifact %s has unpack %q; a local package holds plain files (put the archive's files in the package instead)", ErrArtifact, a.Path, a.Unpack)
		}
		if a.Path == PackageManifest {
			return fmt.Errorf("%w: artifact %s: that name is reserved for the package's manifest", ErrArtifact, a.Path)
		}
		want[a.Path] = a
	}
	seen := 0
	err := fs.WalkDir(root.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		a, ok := want[rel]
		if !ok || !d.Type().IsRegular() {
			return fmt.Errorf("%w: the package holds %s, which the manifest does not list as a file", ErrArtifact, rel)
		}
		seen++
		return checkArtifactFile(root, rel, a)
	})
	if err != nil {
		return err
	}
	if seen != len(want) {
		var missing []string
		for p := range want {
			if _, err := root.Lstat(p); err != nil {
				missing = append(missing, p)
			}
		}
		return fmt.Errorf("%w: the manifest lists %s, which the package does not hold", ErrArtifact, strings.Join(missing, ", "))
	}
	return nil
}

func checkArtifactFile(root *os.Root, rel string, a manifest.Artifact) error {
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, a.Size+1))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	if n != a.Size {
		return fmt.Errorf("%w: %s is %d bytes, the manifest says %d", ErrArtifact, a.Path, n, a.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != a.SHA256 {
		return fmt.Errorf("%w: %s has sha256 %s, the manifest says %s", ErrArtifact, a.Path, got, a.SHA256)
	}
	mode := os.FileMode(a.Mode)
	if mode == 0 {
		mode = 0o644
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
