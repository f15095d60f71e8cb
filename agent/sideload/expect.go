package sideload

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/edgewarden/edgewarden/agent/install"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

type entryKind int

const (
	kindFile entryKind = iota + 1
	kindDir
	kindSymlink
)

func (k entryKind) String() string {
	switch k {
	case kindFile:
		return "file"
	case kindDir:
		return "directory"
	case kindSymlink:
		return "symlink"
	}
	return "other"
}

// want is what one path of a managed app version must be.
type want struct {
	kind   entryKind
	sum    string // files: SHA-256, hex
	size   int64  // files
	perm   fs.FileMode
	upTo   bool   // perm is an upper bound (the umask may have cleared bits) rather than exact
	target string // symlinks
}

// tree is the expected content of one app version directory, by path
// relative to it (slash-separated). The root is "".
type tree map[string]want

// metaDirName is the installer's reserved directory in a version.
const metaDirName = ".edgewarden"

// dirPerm is the most a directory the installer creates may allow.
const dirPerm fs.FileMode = 0o755

func (t tree) parents(p string, perm fs.FileMode) {
	for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
		if _, ok := t[d]; ok {
			return
		}
		t[d] = want{kind: kindDir, perm: perm, upTo: true}
	}
}

// verifiedManifest reads and verifies the manifest of the version in dir
// against the policy's publisher keys, and checks it names app and the
// directory's version. Results are cached by the exact bytes and keys.
func (g *Guard) verifiedManifest(dir, app string, pol *Policy) (*manifest.Manifest, []byte, []byte, error) {
	raw, err := readLimited(filepath.Join(dir, metaDirName, "manifest.json"), manifest.MaxBytes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read manifest: %w", err)
	}
	sig, err := readLimited(filepath.Join(dir, metaDirName, "signature"), manifest.MaxSignatureBytes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read signature: %w", err)
	}
	m, err := manifest.Parse(raw)
	if err != nil {
		return nil, nil, nil, err
	}
	if m.Name != app || m.Version != filepath.Base(dir) {
		return nil, nil, nil, fmt.Errorf("the manifest describes %s@%s, not %s@%s", m.Name, m.Version, app, filepath.Base(dir))
	}
	keys := pol.Publishers[m.Publisher]
	h := sha256.New()
	h.Write(raw)
	h.Write([]byte{0})
	h.Write(sig)
	for _, k := range keys {
		h.Write([]byte{0})
		h.Write([]byte(k))
	}
	ck := hex.EncodeToString(h.Sum(nil))
	sum := sha256.Sum256(raw)
	if pol.Vouched[hex.EncodeToString(sum[:])] {
		return m, raw, sig, nil // the signed document carries these bytes
	}
	if !g.verified[ck] {
		if _, err := manifest.VerifySignature(m.Publisher, raw, sig, keys); err != nil {
			return nil, nil, nil, err
		}
		if len(g.verified) > 4096 {
			clear(g.verified)
		}
		g.verified[ck] = true
	}
	return m, raw, sig, nil
}

func readLimited(p string, limit int64) ([]byte, error) {
	f, err := openNoFollow(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, limit)
	}
	return b, nil
}

func sumHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// errArchive: a kept archive does not match the signed manifest.
var errArchive = errors.New("kept archive does not match the signed manifest")

// expectVersion builds the expected tree of the verified version in dir:
// the installer's metadata, each plain artifact as the manifest says, and
// for each unpacked artifact the entries of the archive the installer kept
// (its digest is checked against the manifest first, so every expectation
// comes from signed data, none from an unsigned record on disk).
func (g *Guard) expectVersion(dir string, m *manifest.Manifest, raw, sig []byte) (tree, *Finding) {
	t := tree{
		"":                             {kind: kindDir, perm: dirPerm, upTo: true},
		metaDirName:                    {kind: kindDir, perm: dirPerm, upTo: true},
		metaDirName + "/manifest.json": {kind: kindFile, sum: sumHex(raw), size: int64(len(raw)), perm: 0o444, upTo: true},
		metaDirName + "/signature":     {kind: kindFile, sum: sumHex(sig), size: int64(len(sig)), perm: 0o444, upTo: true},
	}
	for _, a := range m.Artifacts {
		if a.Unpack == "" {
			perm := fs.FileMode(a.Mode)
			if perm == 0 {
				perm = 0o644
			}
			t.parents(a.Path, dirPerm)
			t[a.Path] = want{kind: kindFile, sum: a.SHA256, size: a.Size, perm: perm}
			continue
		}
		kept := install.ArchivesDir + "/" + a.SHA256
		t.parents(kept, dirPerm)
		t[kept] = want{kind: kindFile, sum: a.SHA256, size: a.Size, perm: 0o444, upTo: true}
		entries, err := g.archiveEntries(filepath.Join(dir, filepath.FromSlash(kept)), a)
		if err != nil {
			return nil, &Finding{Kind: protocol.EventTamper, Path: filepath.Join(dir, filepath.FromSlash(kept)),
				Expected: a.SHA256, Found: foundOf(err), Message: fmt.Sprintf("artifact %s: %v", a.Path, err)}
		}
		for p, w := range entries {
			if w.kind == kindDir {
				if old, ok := t[p]; ok && old.kind == kindDir {
					w.perm |= old.perm
				}
			}
			t[p] = w
		}
	}
	return t, nil
}

// archiveError carries the digest actually found.
type archiveError struct {
	found string
	err   error
}

func (e *archiveError) Error() string { return e.err.Error() }
func (e *archiveError) Unwrap() error { return e.err }

func foundOf(err error) string {
	var ae *archiveError
	if errors.As(err, &ae) {
		return ae.found
	}
	return "unreadable"
}

// archiveEntries returns what unpacking the kept archive at p produced,
// mirroring agent/install's unpack: regular files with their digest, size
// and exact mode; directories (mode|0700, an upper bound); symlinks with
// their target. The archive is hashed in the same pass and must match the
// artifact's digest and size. Listings are cached by digest.
func (g *Guard) archiveEntries(p string, a manifest.Artifact) (tree, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &archiveError{found: fi.Mode().Type().String(), err: errArchive}
	}
	if fi.Size() != a.Size {
		return nil, &archiveError{found: fmt.Sprintf("size %d (want %d)", fi.Size(), a.Size), err: errArchive}
	}
	if l, ok := g.listings[a.SHA256]; ok {
		sum, err := g.cache.sum(p, fi)
		if err != nil {
			return nil, err
		}
		if sum != a.SHA256 {
			return nil, &archiveError{found: sum, err: errArchive}
		}
		return l, nil
	}
	f, err := openNoFollow(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	tee := io.TeeReader(f, h)
	l, lerr := listArchive(tee, a.Unpack)
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return nil, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if sum != a.SHA256 {
		return nil, &archiveError{found: sum, err: errArchive}
	}
	if lerr != nil {
		return nil, lerr
	}
	if len(g.listings) > 1024 {
		clear(g.listings)
	}
	g.listings[a.SHA256] = l
	return l, nil
}

func listArchive(r io.Reader, format string) (tree, error) {
	if format == manifest.UnpackTarGz {
		gz, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("kept archive is not gzip: %w", err)
		}
		defer gz.Close()
		r = gz
	}
	tr := tar.NewReader(r)
	t := tree{}
	var dirModes fs.FileMode
	h := sha256.New()
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read kept archive: %w", err)
		}
		if n >= 100000 {
			return nil, errors.New("kept archive has more than 100000 entries")
		}
		name := strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "./"), "/")
		if name == "" || name == "." {
			continue
		}
		if err := manifest.CheckPath(name); err != nil {
			return nil, fmt.Errorf("kept archive: %w", err)
		}
		mode := fs.FileMode(hdr.Mode) & fs.ModePerm
		switch hdr.Typeflag {
		case tar.TypeDir:
			t[name] = want{kind: kindDir, perm: mode | 0o700, upTo: true}
			dirModes |= mode | 0o700
		case tar.TypeReg:
			h.Reset()
			size, err := io.Copy(h, tr)
			if err != nil {
				return nil, fmt.Errorf("read kept archive: %w", err)
			}
			t[name] = want{kind: kindFile, sum: hex.EncodeToString(h.Sum(nil)), size: size, perm: mode}
		case tar.TypeSymlink:
			t[name] = want{kind: kindSymlink, target: hdr.Linkname}
		default:
			return nil, fmt.Errorf("kept archive entry %s has type %q", name, hdr.Typeflag)
		}
	}
	// Parents the installer created with MkdirAll: 0755, or the mode of a
	// directory entry created through them.
	names := make([]string, 0, len(t))
	for p := range t {
		names = append(names, p)
	}
	for _, p := range names {
		t.parents(p, dirPerm|dirModes)
	}
	return t, nil
}
