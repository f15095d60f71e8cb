package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
)

// Errors from the artifact store; match them with errors.Is.
var (
	// ErrDigestMismatch: the content does not have the declared SHA-256.
	ErrDigestMismatch = errors.New("artifact digest does not match")
	// ErrSizeMismatch: the content is longer or shorter than declared.
	ErrSizeMismatch = errors.New("artifact size does not match")
	// ErrNotFound: no object with that digest.
	ErrNotFound = errors.New("artifact not found")
)

var digestPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Store is a content-addressed directory of artifacts: each is kept once,
// at objects/sha256/ab/abcdef… (its SHA-256 in hex, fanned out by the first
// two digits). Content arrives through a temporary file in tmp/, is hashed
// while it is written, synced, and renamed into place only when its size and
// digest are what was declared, so a reader never sees a partial object.
// A Store is safe for concurrent use.
type Store struct {
	dir string
}

// OpenStore opens (creating it if needed) the store in dir and removes
// temporary files left by an interrupted Put.
func OpenStore(dir string) (*Store, error) {
	s := &Store{dir: dir}
	for _, d := range []string{s.tmpDir(), filepath.Join(dir, "objects", "sha256")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("open artifact store: %w", err)
		}
	}
	stale, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return nil, fmt.Errorf("open artifact store: %w", err)
	}
	for _, e := range stale {
		if err := os.Remove(filepath.Join(s.tmpDir(), e.Name())); err != nil {
			return nil, fmt.Errorf("open artifact store: remove stale upload: %w", err)
		}
	}
	return s, nil
}

func (s *Store) tmpDir() string { return filepath.Join(s.dir, "tmp") }

// path returns where the object with digest lives.
func (s *Store) path(digest string) string {
	return filepath.Join(s.dir, "objects", "sha256", digest[:2], digest)
}

// Has reports whether the object is stored.
func (s *Store) Has(digest string) (bool, error) {
	if !digestPattern.MatchString(digest) {
		return false, fmt.Errorf("artifact digest %q: want 64 lowercase hex digits", digest)
	}
	_, err := os.Stat(s.path(digest))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}

// Put stores the content of r if it is exactly wantSize bytes with SHA-256
// wantSHA256 (lowercase hex). Reading stops one byte past wantSize, so a
// longer stream is refused without reading it all. On any mismatch nothing
// is stored. created is false when the object was already there (r is still
// read and checked).
func (s *Store) Put(ctx context.Context, r io.Reader, wantSHA256 string, wantSize int64) (created bool, err error) {
	if !digestPattern.MatchString(wantSHA256) {
		return false, fmt.Errorf("store artifact: digest %q: want 64 lowercase hex digits", wantSHA256)
	}
	if wantSize < 0 {
		return false, fmt.Errorf("store artifact %s: negative size %d", wantSHA256, wantSize)
	}
	exists, err := s.Has(wantSHA256)
	if err != nil {
		return false, fmt.Errorf("store artifact %s: %w", wantSHA256, err)
	}
	if exists {
		// Check the upload anyway: the caller must learn if it was wrong.
		return false, check(ctx, io.Discard, r, wantSHA256, wantSize)
	}
	f, err := os.CreateTemp(s.tmpDir(), "put-*")
	if err != nil {
		return false, fmt.Errorf("store artifact %s: %w", wantSHA256, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := check(ctx, f, r, wantSHA256, wantSize); err != nil {
		return false, err
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("store artifact %s: sync: %w", wantSHA256, err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("store artifact %s: %w", wantSHA256, err)
	}
	dst := s.path(wantSHA256)
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return false, fmt.Errorf("store artifact %s: %w", wantSHA256, err)
	}
	if err := os.Chmod(tmp, 0o440); err != nil {
		return false, fmt.Errorf("store artifact %s: %w", wantSHA256, err)
	}
	// Two concurrent Puts of the same content both rename a complete,
	// verified file: whichever lands last wins and both are identical.
	if err := os.Rename(tmp, dst); err != nil {
		return false, fmt.Errorf("store artifact %s: %w", wantSHA256, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return false, fmt.Errorf("store artifact %s: %w", wantSHA256, err)
	}
	return true, nil
}

// check copies r to w, hashing as it goes, and fails unless exactly
// wantSize bytes with SHA-256 wantSHA256 arrive.
func check(ctx context.Context, w io.Writer, r io.Reader, wantSHA256 string, wantSize int64) error {
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(w, h), &ctxReader{ctx: ctx, r: io.LimitReader(r, wantSize+1)}, make([]byte, 256<<10))
	if err != nil {
		return fmt.Errorf("store artifact %s: read upload: %w", wantSHA256, err)
	}
	switch {
	case n > wantSize:
		return fmt.Errorf("%w: artifact %s is longer than its declared %d bytes", ErrSizeMismatch, wantSHA256, wantSize)
	case n < wantSize:
		return fmt.Errorf("%w: artifact %s has %d bytes, %d declared (truncated upload?)", ErrSizeMismatch, wantSHA256, n, wantSize)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != wantSHA256 {
		return fmt.Errorf("%w: got sha256 %s, manifest says %s", ErrDigestMismatch, got, wantSHA256)
	}
	return nil
}

// Open opens a stored object for reading.
func (s *Store) Open(digest string) (*os.File, error) {
	if !digestPattern.MatchString(digest) {
		return nil, fmt.Errorf("open artifact: digest %q: want 64 lowercase hex digits", digest)
	}
	f, err := os.Open(s.path(digest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, digest)
	}
	return f, err
}

// Delete removes one object; a missing object is not an error.
func (s *Store) Delete(digest string) error {
	if !digestPattern.MatchString(digest) {
		return fmt.Errorf("delete artifact: digest %q: want 64 lowercase hex digits", digest)
	}
	if err := os.Remove(s.path(digest)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete artifact %s: %w", digest, err)
	}
	return nil
}

// GC deletes every object whose digest keep does not report as in use and
// returns the digests it removed. keep is called once per stored object.
func (s *Store) GC(ctx context.Context, keep func(digest string) bool) ([]string, error) {
	var removed []string
	root := filepath.Join(s.dir, "objects", "sha256")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !digestPattern.MatchString(d.Name()) || keep(d.Name()) {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		removed = append(removed, d.Name())
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("collect unused artifacts: %w", err)
	}
	return removed, nil
}

// ctxReader stops a copy when its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
