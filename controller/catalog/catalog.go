package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// Catalog runs checkpoint 1: an app version is accepted only when its
// manifest signature verifies against a trusted key of the publisher the
// manifest names and every artifact arrives with its declared size and
// SHA-256. Artifacts go to the Store; the caller persists the returned
// Version (the catalog holds no database).
//
// Use: Begin (verify and parse; nothing stored), Artifact for each file as
// it arrives, Commit, persist the Version, then Close. A push that fails or
// is closed without Commit removes the objects it alone created.
type Catalog struct {
	store *Store

	mu   sync.Mutex
	pins map[string]*pin // digests held by pushes in progress
}

type pin struct {
	count  int
	shared bool // held or found by more than the push that created it
}

// New returns a catalog storing artifacts in store.
func New(store *Store) *Catalog {
	return &Catalog{store: store, pins: make(map[string]*pin)}
}

// Store returns the artifact store.
func (c *Catalog) Store() *Store { return c.store }

// PushRequest is what a publisher uploads besides the artifact files.
type PushRequest struct {
	Manifest  []byte // exact bytes that were signed
	Signature []byte // base64 text, cosign bundle or sigstore bundle
	// Keys are the PEM public keys trusted for the publisher the manifest
	// names (manifest.Parse(raw).Publisher).
	Keys []string
}

// Version is what the caller persists for an accepted app version.
type Version struct {
	Manifest  *manifest.Manifest
	Raw       []byte // exact manifest bytes
	Signature []byte // as uploaded
	KeyIndex  int    // which of PushRequest.Keys verified
	// NewObjects are the digests this push added to the store.
	NewObjects []string
}

// Push is one upload in progress.
type Push struct {
	c        *Catalog
	req      PushRequest
	m        *manifest.Manifest
	keyIndex int
	want     map[string]manifest.Artifact // by path, not yet received
	pinned   []string
	created  map[string]bool
	failed   error
	done     bool
	closed   bool
}

// Begin verifies the signature and parses the manifest. Nothing is stored.
func (c *Catalog) Begin(ctx context.Context, req PushRequest) (*Push, error) {
	m, err := manifest.Parse(req.Manifest)
	if err != nil {
		return nil, fmt.Errorf("push app: %w; nothing stored", err)
	}
	i, err := VerifyManifest(ctx, m.Publisher, req.Manifest, req.Signature, req.Keys)
	if err != nil {
		return nil, fmt.Errorf("push %s@%s: %w; nothing stored (sign the manifest with a key listed by `edgewarden publishers ls`)", m.Name, m.Version, err)
	}
	p := &Push{c: c, req: req, m: m, keyIndex: i, want: make(map[string]manifest.Artifact, len(m.Artifacts)), created: make(map[string]bool)}
	for _, a := range m.Artifacts {
		p.want[a.Path] = a
	}
	return p, nil
}

// Manifest returns the verified manifest.
func (p *Push) Manifest() *manifest.Manifest { return p.m }

// Artifact stores the file the manifest lists at path, read from r, if its
// size and digest match. After an error the push is failed: Commit refuses.
func (p *Push) Artifact(ctx context.Context, path string, r io.Reader) error {
	if p.failed != nil || p.done {
		return fmt.Errorf("push %s@%s: artifact %s: push already finished", p.m.Name, p.m.Version, path)
	}
	a, ok := p.want[path]
	if !ok {
		p.failed = fmt.Errorf("push %s@%s: artifact %q is not in the manifest or was sent twice; artifacts not stored", p.m.Name, p.m.Version, path)
		p.rollback()
		return p.failed
	}
	p.pin(a.SHA256)
	created, err := p.c.store.Put(ctx, r, a.SHA256, a.Size)
	if err != nil {
		p.failed = fmt.Errorf("push %s@%s: artifact %s: %w; artifact not stored, version not stored (rebuild the manifest with `edgewarden apps manifest` from the files you push)", p.m.Name, p.m.Version, path, err)
		p.rollback()
		return p.failed
	}
	if created {
		p.created[a.SHA256] = true
	}
	delete(p.want, path)
	return nil
}

// Commit checks that every artifact arrived and returns what to persist.
// Keep the push open until the Version is persisted, then Close it.
func (p *Push) Commit() (*Version, error) {
	if p.failed != nil {
		return nil, p.failed
	}
	if len(p.want) > 0 {
		missing := make([]string, 0, len(p.want))
		for path := range p.want {
			missing = append(missing, path)
		}
		p.failed = fmt.Errorf("push %s@%s: %d artifacts missing (%v); version not stored", p.m.Name, p.m.Version, len(missing), missing)
		p.rollback()
		return nil, p.failed
	}
	p.done = true
	v := &Version{Manifest: p.m, Raw: p.req.Manifest, Signature: p.req.Signature, KeyIndex: p.keyIndex}
	for d := range p.created {
		v.NewObjects = append(v.NewObjects, d)
	}
	return v, nil
}

// Close releases the push. Without a successful Commit it removes the
// objects the push created that no other push touched. Safe to call twice.
func (p *Push) Close() error {
	if p.closed {
		return nil
	}
	if !p.done && p.failed == nil {
		p.rollback()
	}
	p.closed = true
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	for _, d := range p.pinned {
		if pn := p.c.pins[d]; pn != nil {
			if pn.count--; pn.count == 0 {
				delete(p.c.pins, d)
			}
		}
	}
	p.pinned = nil
	return nil
}

func (p *Push) pin(d string) {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	pn := p.c.pins[d]
	if pn == nil {
		pn = &pin{}
		p.c.pins[d] = pn
	}
	if pn.count > 0 {
		pn.shared = true
	}
	pn.count++
	p.pinned = append(p.pinned, d)
}

// rollback deletes objects this push created unless another push holds or
// found them.
func (p *Push) rollback() {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	for d := range p.created {
		if pn := p.c.pins[d]; pn != nil && pn.shared {
			continue
		}
		_ = p.c.store.Delete(d) // best effort: GC removes leftovers
	}
	p.created = map[string]bool{}
}

// GC deletes stored objects that are neither in referenced (the digests of
// every persisted version) nor held by a push in progress.
func (c *Catalog) GC(ctx context.Context, referenced map[string]bool) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.store.GC(ctx, func(d string) bool { return referenced[d] || c.pins[d] != nil })
}

// PushFiles is the one-shot form of Begin / Artifact / Commit for callers
// that have every artifact at hand (files[path] reads the artifact at path).
// The caller persists the Version; on error nothing is kept.
func (c *Catalog) PushFiles(ctx context.Context, req PushRequest, files map[string]io.Reader) (*Version, error) {
	p, err := c.Begin(ctx, req)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	for path := range files {
		if _, listed := p.want[path]; !listed {
			return nil, fmt.Errorf("push %s@%s: file %q is not in the manifest; nothing stored", p.m.Name, p.m.Version, path)
		}
	}
	for _, a := range p.m.Artifacts {
		if r, ok := files[a.Path]; ok {
			if err := p.Artifact(ctx, a.Path, r); err != nil {
				return nil, err
			}
		}
	}
	return p.Commit()
}

// IsRejected reports whether err means the upload itself was refused (bad
// signature, bad manifest, bad artifact), as opposed to a server fault.
func IsRejected(err error) bool {
	for _, e := range []error{manifest.ErrInvalid, manifest.ErrUnsigned, manifest.ErrSignatureFormat, manifest.ErrNoTrustedKey, manifest.ErrBadSignature, ErrDigestMismatch, ErrSizeMismatch} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
