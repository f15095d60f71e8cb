// Package install is checkpoint 2 of app integrity, on the device: it
// verifies an assigned app's manifest signature again (protocol/manifest,
// without cosign), downloads each artifact resumably into a staging
// directory while checking its size and SHA-256 in the same pass, and moves
// only a complete, verified app into place with atomic renames, so a failed
// or interrupted install leaves the previous version in place.
//
// On disk (AppsDir):
//
//	NAME/versions/VERSION/            one complete, verified app tree
//	NAME/versions/VERSION/.edgewarden/manifest.json, signature
//	NAME/current -> versions/VERSION  the version in force (a symlink,
//	                                  switched by renaming a new symlink over it)
//
// and StagingDir:
//
//	dl/SHA256.part                    a download in progress (resumable)
//	build/NAME@VERSION-XXXX/          an app tree being assembled
//
// Recover, called once at start-up, clears half-done work so that each app
// has exactly one consistent current version.
package install

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// Errors by phase; match them with errors.Is. One function upstream decides
// retry or fail from these.
var (
	// ErrVerify: the manifest or its signature was refused. Retrying the
	// same assignment cannot help.
	ErrVerify = errors.New("app verification failed")
	// ErrDownload: fetching an artifact failed (network, truncated stream).
	// Retry with backoff; the download resumes.
	ErrDownload = errors.New("app download failed")
	// ErrArtifact: an artifact does not match the manifest (digest, longer
	// than declared) or an archive is unsafe. The partial file is dropped.
	ErrArtifact = errors.New("app artifact rejected")
	// ErrInstall: moving the app into place failed (disk).
	ErrInstall = errors.New("app install failed")
)

// FetchFunc opens the artifact with the given SHA-256 (hex), starting at
// offset bytes into it.
type FetchFunc func(ctx context.Context, digest string, offset int64) (io.ReadCloser, error)

// Progress is one step of an install, for status reports.
type Progress struct {
	Name, Version string
	State         string // protocol.AppPending, AppDownloading, AppVerifying, AppInstalling, protocol.AppInstalled or AppFailed
	Reason        string // why it failed (AppFailed only)
	Artifact      string // the artifact path, while downloading or verifying
	Done, Total   int64  // bytes of the artifact, while downloading
}

// Options configure an Installer.
type Options struct {
	// AppsDir holds installed apps. Required.
	AppsDir string
	// StagingDir holds downloads and apps being assembled. Required; it
	// must be on the same file system as AppsDir (renames are atomic only
	// within one).
	StagingDir string
	// Fetch downloads artifacts. Required.
	Fetch FetchFunc
	// Progress, if set, is called at every step. It must not block.
	Progress func(Progress)
	// Step, if set, is called before each step of an install acts on the
	// disk, with the step's name (StepDownload, StepUnpack, StepActivate):
	// the caller records its intent there (record, then act). An error
	// stops the install before the step, with nothing changed by it.
	Step func(name, version, step string) error
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// KeepVersions is how many versions of an app stay on disk, the
	// current one included (for rollback). Zero means 2.
	KeepVersions int
}

// Installer installs, recovers and removes apps. Its methods must not run
// concurrently for the same app; the agent's apply loop runs them in turn.
type Installer struct {
	opts Options
	log  *slog.Logger
}

// Install steps, as passed to Options.Step.
const (
	StepDownload = "download" // fetch each artifact into staging, hashing as it is written (verify)
	StepUnpack   = "unpack"   // assemble the app in staging and move it into place
	StepActivate = "activate" // make the version current
)

// step calls Options.Step.
func (in *Installer) step(name, version, step string) error {
	if in.opts.Step == nil {
		return nil
	}
	if err := in.opts.Step(name, version, step); err != nil {
		return fmt.Errorf("%w: record the %s step of %s@%s before acting: %v", ErrInstall, step, name, version, err)
	}
	return nil
}

// hook lets tests stop an install at a named stage (to kill the process).
var hook = func(stage string) {}

const metaDir = ".edgewarden"

// New checks opts and creates the directories.
func New(opts Options) (*Installer, error) {
	if opts.AppsDir == "" || opts.StagingDir == "" || opts.Fetch == nil {
		return nil, errors.New("install: AppsDir, StagingDir and Fetch are required")
	}
	if opts.KeepVersions <= 0 {
		opts.KeepVersions = 2
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	for _, d := range []string{opts.AppsDir, filepath.Join(opts.StagingDir, "dl"), filepath.Join(opts.StagingDir, "build")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("install: %w", err)
		}
	}
	return &Installer{opts: opts, log: log}, nil
}

func (in *Installer) report(p Progress) {
	if in.opts.Progress != nil {
		in.opts.Progress(p)
	}
}

// Install verifies and installs one assigned app version and makes it
// current. publisherKeys are the PEM keys trusted for a.Publisher in the
// applied document. Installing the version already current does nothing.
// On error the previous current version is untouched.
func (in *Installer) Install(ctx context.Context, a protocol.AppAssignment, publisherKeys []string) (err error) {
	in.report(Progress{Name: a.Name, Version: a.Version, State: protocol.AppPending})
	defer func() {
		if err != nil {
			in.report(Progress{Name: a.Name, Version: a.Version, State: protocol.AppFailed, Reason: err.Error()})
			in.log.Warn("app install failed", "app", a.Name, "version", a.Version, "err", err)
		}
	}()
	m, err := in.verify(a, publisherKeys)
	if err != nil {
		return err
	}
	appDir := filepath.Join(in.opts.AppsDir, m.Name)
	verDir := filepath.Join(appDir, "versions", m.Version)
	if same, _ := sameManifest(verDir, a.Manifest); same {
		// Already assembled (an earlier install or a rollback target).
		if err := in.step(m.Name, m.Version, StepActivate); err != nil {
			return err
		}
		if err := in.switchCurrent(appDir, m.Version); err != nil {
			return err
		}
		in.report(Progress{Name: m.Name, Version: m.Version, State: protocol.AppInstalled})
		return nil
	}

	sum := sha256.Sum256(a.Manifest)
	build := filepath.Join(in.opts.StagingDir, "build", m.Name+"@"+m.Version+"-"+hex.EncodeToString(sum[:6]))
	if err := os.RemoveAll(build); err != nil {
		return fmt.Errorf("%w: clear staging: %v", ErrInstall, err)
	}
	defer os.RemoveAll(build)
	if err := in.step(m.Name, m.Version, StepDownload); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(build, metaDir), 0o755); err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	for _, art := range m.Artifacts {
		if err := in.artifact(ctx, m, art, build); err != nil {
			return fmt.Errorf("install %s@%s: artifact %s: %w", m.Name, m.Version, art.Path, err)
		}
	}

	in.report(Progress{Name: m.Name, Version: m.Version, State: protocol.AppInstalling})
	if err := in.step(m.Name, m.Version, StepUnpack); err != nil {
		return err
	}
	if err := writeSynced(filepath.Join(build, metaDir, "manifest.json"), a.Manifest, 0o444); err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	if err := writeSynced(filepath.Join(build, metaDir, "signature"), a.Signature, 0o444); err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	if err := syncTree(build); err != nil {
		return fmt.Errorf("%w: sync staged app: %v", ErrInstall, err)
	}
	if err := os.MkdirAll(filepath.Dir(verDir), 0o755); err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	if _, err := os.Lstat(verDir); err == nil {
		// A different manifest under the same version: move the old tree
		// aside first (Recover removes leftovers).
		trash := filepath.Join(appDir, "versions", ".removing-"+m.Version)
		os.RemoveAll(trash)
		if err := os.Rename(verDir, trash); err != nil {
			return fmt.Errorf("%w: %v", ErrInstall, err)
		}
		defer os.RemoveAll(trash)
	}
	hook("before-rename")
	if err := os.Rename(build, verDir); err != nil {
		return fmt.Errorf("%w: move app into place: %v", ErrInstall, err)
	}
	if err := syncDir(filepath.Dir(verDir)); err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	hook("before-switch")
	if err := in.step(m.Name, m.Version, StepActivate); err != nil {
		return err
	}
	if err := in.switchCurrent(appDir, m.Version); err != nil {
		return err
	}
	in.prune(appDir)
	in.report(Progress{Name: m.Name, Version: m.Version, State: protocol.AppInstalled})
	in.log.Info("app installed", "app", m.Name, "version", m.Version)
	return nil
}

// verify checks the signature over the exact manifest bytes, then parses
// them and checks they describe the assignment.
func (in *Installer) verify(a protocol.AppAssignment, keys []string) (*manifest.Manifest, error) {
	if _, err := manifest.VerifySignature(a.Publisher, a.Manifest, a.Signature, keys); err != nil {
		return nil, fmt.Errorf("%w: %s@%s: %v; not installed", ErrVerify, a.Name, a.Version, err)
	}
	m, err := manifest.Parse(a.Manifest)
	if err != nil {
		return nil, fmt.Errorf("%w: %s@%s: %v; not installed", ErrVerify, a.Name, a.Version, err)
	}
	if m.Name != a.Name || m.Version != a.Version || m.Publisher != a.Publisher {
		return nil, fmt.Errorf("%w: assignment says %s@%s by %s but the signed manifest is %s@%s by %s; not installed",
			ErrVerify, a.Name, a.Version, a.Publisher, m.Name, m.Version, m.Publisher)
	}
	return m, nil
}

// artifact downloads (resuming), checks and places one artifact in build.
func (in *Installer) artifact(ctx context.Context, m *manifest.Manifest, art manifest.Artifact, build string) error {
	part := filepath.Join(in.opts.StagingDir, "dl", art.SHA256+".part")
	if err := in.download(ctx, m, art, part); err != nil {
		return err
	}
	mode := os.FileMode(art.Mode)
	if mode == 0 {
		mode = 0o644
	}
	if art.Unpack != "" {
		in.report(Progress{Name: m.Name, Version: m.Version, State: protocol.AppInstalling, Artifact: art.Path})
		if err := unpack(part, art.Unpack, build); err != nil {
			os.Remove(part) // verified but unusable: fetching it again cannot help
			return err
		}
		// Keep the verified archive: it is the signed record of what the
		// unpacked files must be (agent/sideload checks them against it).
		return keepArchive(part, build, art.SHA256)
	}
	if err := os.Chmod(part, mode); err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	return placeIn(in.opts.StagingDir, part, build, art.Path)
}

// placeIn moves the file part into build at the manifest path rel, both
// under staging, through an os.Root on staging: no link (an earlier
// artifact's archive may have made some) can carry it elsewhere.
func placeIn(staging, part, build, rel string) error {
	root, err := os.OpenRoot(staging)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	defer root.Close()
	buildRel, err1 := filepath.Rel(staging, build)
	partRel, err2 := filepath.Rel(staging, part)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	b, err := root.OpenRoot(buildRel)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	defer b.Close()
	if err := insideNoLinks(b, rel); err != nil {
		return err
	}
	if err := mkParent(b, rel); err != nil {
		return err
	}
	if err := root.Rename(partRel, path.Join(filepath.ToSlash(buildRel), rel)); err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	return nil
}

// download brings part to the artifact's full, verified content: it hashes
// what an earlier attempt left, fetches the rest from that offset, stops at
// the declared size, and checks the digest. One pass over the new bytes.
func (in *Installer) download(ctx context.Context, m *manifest.Manifest, art manifest.Artifact, part string) error {
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 256<<10)
	have, err := io.CopyBuffer(h, io.LimitReader(f, art.Size+1), buf)
	if err != nil {
		return fmt.Errorf("%w: read partial download: %v", ErrInstall, err)
	}
	if have > art.Size {
		// Not ours or corrupt: start over.
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("%w: %v", ErrInstall, err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("%w: %v", ErrInstall, err)
		}
		h.Reset()
		have = 0
	}
	progress := Progress{Name: m.Name, Version: m.Version, State: protocol.AppDownloading, Artifact: art.Path, Done: have, Total: art.Size}
	in.report(progress)
	if have < art.Size {
		rc, err := in.opts.Fetch(ctx, art.SHA256, have)
		if err != nil {
			return fmt.Errorf("%w: %v (will resume at byte %d)", ErrDownload, err, have)
		}
		// Read at most one byte past the declared size: enough to tell a
		// longer stream, never more.
		n, err := copyHashed(f, h, rc, art.Size-have+1)
		rc.Close()
		have += n
		if have > art.Size {
			f.Close()
			os.Remove(part)
			return fmt.Errorf("%w: the download is longer than the declared %d bytes; stopped there and dropped it", ErrArtifact, art.Size)
		}
		if err != nil || have < art.Size {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			if err := f.Sync(); err != nil {
				in.log.Warn("sync partial download", "err", err)
			}
			return fmt.Errorf("%w: got %d of %d bytes: %v (will resume)", ErrDownload, have, art.Size, err)
		}
	}
	progress.Done = have
	progress.State = protocol.AppVerifying
	in.report(progress)
	hook("verifying")
	if got := hex.EncodeToString(h.Sum(nil)); got != art.SHA256 {
		f.Close()
		os.Remove(part)
		return fmt.Errorf("%w: sha256 is %s, the signed manifest says %s; dropped the download", ErrArtifact, got, art.SHA256)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	return nil
}

// unpack extracts a verified tar archive into dir. Only regular files,
// directories and symlinks that stay inside dir are allowed; an entry with
// an absolute path, "..", a link leaving dir, a hard link, a device or the
// reserved .edgewarden directory fails the whole install.
//
// Every write goes through an os.Root on dir, so the kernel refuses any
// path that would leave it, links included, whatever the checks on the
// entries' text let through; and once everything is written, every symlink
// is resolved through the root too (checkLinks), which catches a chain of
// links that leaves dir although each link's text looks inside.
func unpack(archive, format, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	defer f.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	defer root.Close()
	var r io.Reader = f
	if format == manifest.UnpackTarGz {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("%w: archive is not gzip: %v", ErrArtifact, err)
		}
		defer gz.Close()
		r = gz
	}
	tr := tar.NewReader(r)
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			return checkLinks(root)
		}
		if err != nil {
			return fmt.Errorf("%w: read archive: %v", ErrArtifact, err)
		}
		if n >= 100000 {
			return fmt.Errorf("%w: archive has more than 100000 entries", ErrArtifact)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "./"), "/")
		if name == "" || name == "." {
			continue
		}
		if err := manifest.CheckPath(name); err != nil {
			return fmt.Errorf("%w: archive entry escapes the app directory: %v", ErrArtifact, err)
		}
		if err := insideNoLinks(root, name); err != nil {
			return err
		}
		mode := os.FileMode(hdr.Mode) & 0o777
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, mode|0o700); err != nil {
				return fmt.Errorf("%w: archive entry %s: %v", ErrArtifact, name, err)
			}
		case tar.TypeReg:
			if err := mkParent(root, name); err != nil {
				return err
			}
			out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
			if err != nil {
				return fmt.Errorf("%w: archive entry %s: %v", ErrArtifact, name, err)
			}
			err = out.Chmod(mode) // exactly the archive's mode, whatever the umask
			if err == nil {
				_, err = io.Copy(out, tr)
			}
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("%w: archive entry %s: %v", ErrArtifact, name, err)
			}
		case tar.TypeSymlink:
			// The text check gives the clear message for the plain cases;
			// checkLinks decides on what the links really reach.
			target := hdr.Linkname
			if target == "" || path.IsAbs(target) || strings.HasPrefix(path.Clean(path.Join(path.Dir(name), target)), "../") ||
				path.Clean(path.Join(path.Dir(name), target)) == ".." {
				return fmt.Errorf("%w: archive symlink %s -> %s leaves the app directory", ErrArtifact, name, target)
			}
			if err := mkParent(root, name); err != nil {
				return err
			}
			if err := root.Symlink(target, name); err != nil {
				return fmt.Errorf("%w: archive entry %s: %v", ErrArtifact, name, err)
			}
		default:
			return fmt.Errorf("%w: archive entry %s has type %q; only files, directories and symlinks are allowed", ErrArtifact, name, hdr.Typeflag)
		}
	}
}

// mkParent creates the parent directories of name inside root.
func mkParent(root *os.Root, name string) error {
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrArtifact, name, err)
		}
	}
	return nil
}

// insideNoLinks refuses a path whose parent directories inside root
// include a symlink (a write through it would land elsewhere, even if
// inside), and a path that already holds a file.
func insideNoLinks(root *os.Root, name string) error {
	parts := strings.Split(name, "/")
	p := ""
	for _, e := range parts[:len(parts)-1] {
		p = path.Join(p, e)
		fi, err := root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrArtifact, name, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%w: %s would be written through the symlink %s", ErrArtifact, name, p)
		}
	}
	if fi, err := root.Lstat(name); err == nil && !fi.IsDir() {
		return fmt.Errorf("%w: %s is written twice", ErrArtifact, name)
	}
	return nil
}

// checkLinks resolves every symlink under root through root: a link whose
// target, or chain of targets, leaves root or reaches nothing fails, however
// its text looks when cleaned (a -> b/.. with b -> . reaches root's parent).
func checkLinks(root *os.Root) error {
	return fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("%w: check links: %v", ErrInstall, err)
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		if _, err := root.Stat(p); err != nil {
			target, _ := root.Readlink(p)
			return fmt.Errorf("%w: symlink %s -> %s does not reach a file inside the app directory (%v); links, and chains of links, must stay inside it", ErrArtifact, p, target, errors.Unwrap(err))
		}
		return nil
	})
}

// switchCurrent points NAME/current at versions/VERSION by renaming a new
// symlink over the old one: readers see the old or the new, never neither.
func (in *Installer) switchCurrent(appDir, version string) error {
	tmp := filepath.Join(appDir, "current.tmp")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Join("versions", version), tmp); err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	if err := os.Rename(tmp, filepath.Join(appDir, "current")); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%w: switch current version: %v", ErrInstall, err)
	}
	if err := syncDir(appDir); err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	return nil
}

// prune keeps the current version and the newest others up to KeepVersions.
func (in *Installer) prune(appDir string) {
	cur, _ := os.Readlink(filepath.Join(appDir, "current"))
	cur = filepath.Base(cur)
	vs := in.versions(appDir)
	keep := in.opts.KeepVersions - 1
	for _, v := range vs { // newest first
		if v.String() == cur {
			continue
		}
		if keep > 0 {
			keep--
			continue
		}
		// Rename first so the version disappears at once (agent/sideload
		// would take a half-removed tree for tampering).
		dir := filepath.Join(appDir, "versions", v.String())
		trash := filepath.Join(appDir, "versions", ".removing-"+v.String())
		os.RemoveAll(trash)
		if err := os.Rename(dir, trash); err == nil {
			dir = trash
		}
		if err := os.RemoveAll(dir); err != nil {
			in.log.Warn("remove old app version", "app", filepath.Base(appDir), "version", v, "err", err)
		}
	}
}

// versions lists the complete versions of an app, newest first.
func (in *Installer) versions(appDir string) []manifest.Version {
	entries, _ := os.ReadDir(filepath.Join(appDir, "versions"))
	var vs []manifest.Version
	for _, e := range entries {
		v, err := manifest.ParseVersion(e.Name())
		if err != nil || v.String() != e.Name() {
			continue
		}
		if _, err := os.Stat(filepath.Join(appDir, "versions", e.Name(), metaDir, "manifest.json")); err != nil {
			continue
		}
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].Compare(vs[j]) > 0 })
	return vs
}

// Current returns the current version of an app ("" if not installed).
func (in *Installer) Current(name string) (string, error) {
	if !manifest.NamePattern.MatchString(name) {
		return "", fmt.Errorf("app name %q is not valid", name)
	}
	t, err := os.Readlink(filepath.Join(in.opts.AppsDir, name, "current"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return filepath.Base(t), nil
}

// Dir returns the directory of the app's current version (through the
// current symlink), for runtime drivers.
func (in *Installer) Dir(name string) string {
	return filepath.Join(in.opts.AppsDir, name, "current")
}

// Installed returns every installed app and its current version.
func (in *Installer) Installed() (map[string]string, error) {
	entries, err := os.ReadDir(in.opts.AppsDir)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string)
	for _, e := range entries {
		if !e.IsDir() || !manifest.NamePattern.MatchString(e.Name()) {
			continue
		}
		if v, err := in.Current(e.Name()); err == nil && v != "" {
			out[e.Name()] = v
		}
	}
	return out, nil
}

// Remove deletes an app and every version of it. The caller stops it first.
// Removing an app that is not installed is not an error.
func (in *Installer) Remove(name string) error {
	if !manifest.NamePattern.MatchString(name) {
		return fmt.Errorf("remove app: name %q is not valid", name)
	}
	appDir := filepath.Join(in.opts.AppsDir, name)
	// Drop current first so a crash mid-removal leaves no half app current.
	if err := os.Remove(filepath.Join(appDir, "current")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove app %s: %w", name, err)
	}
	if err := syncDir(appDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove app %s: %w", name, err)
	}
	if err := os.RemoveAll(appDir); err != nil {
		return fmt.Errorf("remove app %s: %w", name, err)
	}
	return nil
}

// Recover clears what an interrupted install left: assembled trees in
// staging, temporary symlinks and trash directories, and a current symlink
// that points nowhere (it is pointed at the newest complete version, or
// removed if there is none). Partial downloads are kept for resuming.
// Call it once at start-up before installing.
func (in *Installer) Recover() error {
	build := filepath.Join(in.opts.StagingDir, "build")
	if err := os.RemoveAll(build); err != nil {
		return fmt.Errorf("recover: clear staging: %w", err)
	}
	if err := os.MkdirAll(build, 0o755); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	entries, err := os.ReadDir(in.opts.AppsDir)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || !manifest.NamePattern.MatchString(e.Name()) {
			continue
		}
		appDir := filepath.Join(in.opts.AppsDir, e.Name())
		os.Remove(filepath.Join(appDir, "current.tmp"))
		vents, _ := os.ReadDir(filepath.Join(appDir, "versions"))
		for _, v := range vents {
			if strings.HasPrefix(v.Name(), ".") {
				os.RemoveAll(filepath.Join(appDir, "versions", v.Name()))
			}
		}
		cur, err := os.Readlink(filepath.Join(appDir, "current"))
		if err == nil {
			if _, err := os.Stat(filepath.Join(appDir, cur, metaDir, "manifest.json")); err == nil {
				continue
			}
		}
		vs := in.versions(appDir)
		if len(vs) == 0 {
			os.Remove(filepath.Join(appDir, "current"))
			in.log.Warn("recover: app has no complete version", "app", e.Name())
			continue
		}
		in.log.Warn("recover: current version was missing; using newest complete version", "app", e.Name(), "version", vs[0])
		if err := in.switchCurrent(appDir, vs[0].String()); err != nil {
			return fmt.Errorf("recover %s: %w", e.Name(), err)
		}
	}
	return nil
}

// ArchivesDir is where, inside an app version directory, the installer
// keeps each verified archive it unpacked, named by its SHA-256 (hex).
const ArchivesDir = metaDir + "/archives"

// keepArchive moves a verified, unpacked archive to
// build/.edgewarden/archives/SHA256, read-only.
func keepArchive(part, build, digest string) error {
	dir := filepath.Join(build, filepath.FromSlash(ArchivesDir))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	if err := os.Chmod(part, 0o444); err != nil {
		return fmt.Errorf("%w: %v", ErrInstall, err)
	}
	if err := os.Rename(part, filepath.Join(dir, digest)); err != nil {
		return fmt.Errorf("%w: keep archive: %v", ErrInstall, err)
	}
	return nil
}

// sameManifest reports whether verDir holds an app assembled from exactly
// these manifest bytes.
func sameManifest(verDir string, raw []byte) (bool, error) {
	b, err := os.ReadFile(filepath.Join(verDir, metaDir, "manifest.json"))
	if err != nil {
		return false, err
	}
	return string(b) == string(raw), nil
}

func writeSynced(p string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncTree fsyncs every regular file and directory under root.
func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// InstalledApp is the current version of an installed app as it was
// verified at install time: the exact manifest and signature bytes.
type InstalledApp struct {
	Name, Version string
	Manifest      []byte
	Signature     []byte // nil for a sideloaded version
	// Sideloaded: installed from a local package by InstallLocal
	// (local.go), unsigned; Signature is nil.
	Sideloaded bool
}

// CurrentApp returns the current version of an app with its manifest and
// signature, or (nil, nil) if the app is not installed.
func (in *Installer) CurrentApp(name string) (*InstalledApp, error) {
	v, err := in.Current(name)
	if err != nil || v == "" {
		return nil, err
	}
	// Read through a root on the app directory: a link planted in it
	// cannot make the agent read (and trust) a file from elsewhere.
	root, err := os.OpenRoot(filepath.Join(in.opts.AppsDir, name))
	if err != nil {
		return nil, fmt.Errorf("read installed app %s: %w", name, err)
	}
	defer root.Close()
	meta := path.Join("versions", v, metaDir)
	raw, err := root.ReadFile(path.Join(meta, "manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("read installed manifest of %s@%s: %w", name, v, err)
	}
	if _, err := root.Lstat(path.Join(meta, sideloadedFile)); err == nil {
		return &InstalledApp{Name: name, Version: v, Manifest: raw, Sideloaded: true}, nil
	}
	sig, err := root.ReadFile(path.Join(meta, "signature"))
	if err != nil {
		return nil, fmt.Errorf("read installed signature of %s@%s: %w", name, v, err)
	}
	return &InstalledApp{Name: name, Version: v, Manifest: raw, Signature: sig}, nil
}

// Activate makes an already installed, complete version current again (a
// rollback after a version failed to start). It does not verify anything:
// the version was verified when it was installed.
func (in *Installer) Activate(name, version string) error {
	if !manifest.NamePattern.MatchString(name) {
		return fmt.Errorf("activate: app name %q is not valid", name)
	}
	if _, err := manifest.ParseVersion(version); err != nil {
		return fmt.Errorf("activate %s: %w", name, err)
	}
	appDir := filepath.Join(in.opts.AppsDir, name)
	if _, err := os.Stat(filepath.Join(appDir, "versions", version, metaDir, "manifest.json")); err != nil {
		return fmt.Errorf("%w: activate %s@%s: not installed: %v", ErrInstall, name, version, err)
	}
	return in.switchCurrent(appDir, version)
}
