// Package desired compiles the controller's state into one signed
// desired-state document per device (see protocol.DesiredState).
//
// The compiler is a pure function of a store.Snapshot, the signing key and
// the clock: it reads no database and publishes nothing. The server takes a
// snapshot, compiles, stores the changed records with store.PutDesired and
// then publishes their envelopes; NextRefresh tells it when to run again for
// the refreshes alone.
//
// Revisions count content changes: a device's revision grows only when the
// content digest of its document changes. Before a document expires, the
// compiler re-signs the same content and revision with later times (a
// refresh), which agents accept without re-applying anything.
package desired

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/edgewarden/edgewarden/controller/fleet"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
)

// Settings read by the compiler (store.Snapshot.Settings).
const (
	// SettingBanner is the system-use banner shown before local login.
	SettingBanner = "banner"
	// SettingSideload is the global sideload policy: "allow" lifts the ban;
	// anything else, or unset, keeps it (the default: banned).
	SettingSideload = store.SettingSideload
)

// Options configure a Compiler.
type Options struct {
	// Key signs the documents. Required.
	Key ed25519.PrivateKey
	// TTL is how long a signed document stays valid. Zero means 24h.
	TTL time.Duration
	// RefreshBefore is how long before expiry a document is re-signed.
	// Zero means TTL/3. Must be less than TTL.
	RefreshBefore time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Workers is how many goroutines sign documents in parallel within one
	// Compile call. Zero means GOMAXPROCS.
	Workers int
	// TokenKeys verify operator tokens; every document carries them
	// (access.go). None: agents refuse every operator token.
	TokenKeys []protocol.PublicKey
	// NextKey, during a signing-key rotation, is the announced next key:
	// every document carries its public half as NextControllerKey, signed
	// by Key, so agents learn to trust it. Nil: no announcement.
	NextKey ed25519.PrivateKey
	// PrevKey, after a rotation, is the retired key: every document is
	// signed by Key and PrevKey, so agents that missed the announcement
	// still verify it, and (unless NextKey is set) announces Key, so they
	// learn to trust it before PrevKey is dropped. Nil: signed by Key alone.
	PrevKey ed25519.PrivateKey
}

// Compiler turns snapshots into signed desired-state records. It holds no
// mutable state and is safe for concurrent use.
type Compiler struct {
	key           ed25519.PrivateKey
	ttl           time.Duration
	refreshBefore time.Duration
	now           func() time.Time
	workers       int
	tokenKeys     []protocol.PublicKey
	signers       []ed25519.PrivateKey // key, then the previous key if any
	signerIDs     []string             // their key ids
	next          *protocol.PublicKey  // announced as NextControllerKey
}

// New returns a compiler. It panics if opts.Key is not an Ed25519 private
// key (nor are NextKey or PrevKey when set) or RefreshBefore is not less
// than TTL: both are programming errors.
func New(opts Options) *Compiler {
	if len(opts.Key) != ed25519.PrivateKeySize {
		panic("desired: Options.Key must be an Ed25519 private key")
	}
	for _, k := range []ed25519.PrivateKey{opts.NextKey, opts.PrevKey} {
		if k != nil && len(k) != ed25519.PrivateKeySize {
			panic("desired: Options.NextKey and PrevKey must be Ed25519 private keys")
		}
	}
	c := &Compiler{key: opts.Key, ttl: opts.TTL, refreshBefore: opts.RefreshBefore, now: opts.Now}
	if c.ttl <= 0 {
		c.ttl = 24 * time.Hour
	}
	if c.refreshBefore <= 0 {
		c.refreshBefore = c.ttl / 3
	}
	if c.refreshBefore >= c.ttl {
		panic(fmt.Sprintf("desired: RefreshBefore %s must be less than TTL %s", c.refreshBefore, c.ttl))
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.tokenKeys = slices.Clone(opts.TokenKeys)
	c.signers = []ed25519.PrivateKey{opts.Key}
	if opts.PrevKey != nil {
		c.signers = append(c.signers, opts.PrevKey)
	}
	for _, k := range c.signers {
		c.signerIDs = append(c.signerIDs, protocol.KeyID(k.Public().(ed25519.PublicKey)))
	}
	switch {
	case opts.NextKey != nil:
		pk := protocol.ControllerPublicKey(opts.NextKey.Public().(ed25519.PublicKey))
		c.next = &pk
	case opts.PrevKey != nil:
		pk := protocol.ControllerPublicKey(opts.Key.Public().(ed25519.PublicKey))
		c.next = &pk
	}
	c.workers = opts.Workers
	if c.workers <= 0 {
		c.workers = runtime.GOMAXPROCS(0)
	}
	return c
}

// ErrNoMembership is wrapped when the snapshot's groups cannot be resolved
// (an include cycle or unknown group that the store should have refused).
var ErrNoMembership = errors.New("cannot resolve group membership")

// Compile builds the document of every active device in snap (pending
// devices get none) and returns the records that changed, in the order of
// snap.Devices (by id, as the store lists them):
//
//   - content differs from snap.Desired (or there is no record): revision+1
//     (1 for a device that never had one), new times, signed;
//   - content unchanged but the stored document expires within
//     RefreshBefore: a refresh, with the same revision and content and new
//     times, signed again;
//   - content unchanged but the stored document is not signed by exactly the
//     compiler's keys (after a signing-key rotation): the same, re-signed;
//   - otherwise nothing.
//
// The returned records are meant for store.PutDesired, then publishing.
func (c *Compiler) Compile(snap *store.Snapshot) ([]store.DesiredRecord, error) {
	return c.compile(snap, nil)
}

// CompileDirty is Compile for the devices snap.Dirty marks (all of them when
// it marks every device). Unmarked devices are built only when Compile would
// have something to do for them without a content change: no record yet, a
// refresh due, other signing keys, or an applied revision above the stored
// one. A change touching a few devices of a large fleet signs only those.
func (c *Compiler) CompileDirty(snap *store.Snapshot) ([]store.DesiredRecord, error) {
	if snap.Dirty.All {
		return c.compile(snap, nil)
	}
	return c.compile(snap, snap.Dirty.Has)
}

// compile compiles every active device for which only is nil or true, and
// the others when they need a refresh or a first document.
func (c *Compiler) compile(snap *store.Snapshot, only func(id string) bool) ([]store.DesiredRecord, error) {
	m, err := snap.Membership()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoMembership, err)
	}
	now := c.now().UTC().Round(0)
	acc, err := c.prepareAccess(snap, m, now)
	if err != nil {
		return nil, err
	}
	// Which devices to look at is cheap and decided here; building,
	// digesting and signing their documents is the cost, spread over the
	// workers, each taking a contiguous chunk, so the output keeps the
	// device order. Everything the workers read (snapshot, membership,
	// access view) is read-only.
	var todo []*store.Device
	for i := range snap.Devices {
		dev := &snap.Devices[i]
		if dev.State != store.DeviceActive {
			continue
		}
		if old, had := snap.Desired[dev.ID]; only != nil && !only(dev.ID) && had &&
			dev.AppliedRevision <= old.Revision && old.ExpiresAt.Sub(now) >= c.refreshBefore && c.signedByAll(old) {
			continue // not touched by a change, nothing due
		}
		todo = append(todo, dev)
	}
	out := make([]*store.DesiredRecord, len(todo))
	errs := make([]error, len(todo))
	work := func(lo, hi int) {
		for k := lo; k < hi; k++ {
			out[k], errs[k] = c.compileOne(snap, m, acc, todo[k], now)
		}
	}
	workers := min(c.workers, len(todo)/minPerWorker)
	if workers <= 1 {
		work(0, len(todo))
	} else {
		var wg sync.WaitGroup
		chunk := (len(todo) + workers - 1) / workers
		for lo := 0; lo < len(todo); lo += chunk {
			wg.Go(func() { work(lo, min(lo+chunk, len(todo))) })
		}
		wg.Wait()
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	recs := make([]store.DesiredRecord, 0, len(todo))
	for _, r := range out {
		if r != nil {
			recs = append(recs, *r)
		}
	}
	return recs, nil
}

// compileOne builds dev's document and, when it differs from the stored
// one (or a refresh or re-signing is due), signs it; nil when nothing is to
// be stored.
func (c *Compiler) compileOne(snap *store.Snapshot, m *fleet.Membership, acc *accessPart, dev *store.Device, now time.Time) (*store.DesiredRecord, error) {
	doc := c.build(snap, m, dev)
	acc.apply(doc, dev) // doc.Access, TokenKeys, RevokedTokens (access.go)
	digest := doc.ContentDigest()
	old, had := snap.Desired[dev.ID]
	switch {
	case dev.AppliedRevision > old.Revision:
		// The device applied a revision this controller does not know
		// (its data was restored from an older backup): continue above
		// it, or the device would refuse every document as a replay.
		doc.Revision = dev.AppliedRevision + 1
	case !had || old.Digest != digest:
		doc.Revision = old.Revision + 1
	case old.ExpiresAt.Sub(now) < c.refreshBefore || !c.signedByAll(old):
		// Due for a refresh, or signed by other keys than the compiler's
		// (a signing-key rotation was promoted or finished).
		doc.Revision = old.Revision
		if !now.After(old.IssuedAt) {
			// Agents take a refresh only with a later issue time; with a
			// clock that went back, keep the old document.
			return nil, nil
		}
	default:
		return nil, nil
	}
	doc.IssuedAt, doc.ExpiresAt = now, now.Add(c.ttl)
	env, err := protocol.SignDesiredKeys(doc, c.signers...)
	if err == nil && len(env) > protocol.MaxEnvelopeBytes {
		err = fmt.Errorf("it is %d bytes, over the %d-byte limit agents accept; assign fewer apps or publishers to it", len(env), protocol.MaxEnvelopeBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("sign desired state of %s: %w", doc.DeviceID, err)
	}
	return &store.DesiredRecord{
		DeviceID:  doc.DeviceID,
		Revision:  doc.Revision,
		Digest:    digest,
		IssuedAt:  doc.IssuedAt,
		ExpiresAt: doc.ExpiresAt,
		Signers:   c.signerIDs,
		Envelope:  env,
	}, nil
}

// signedByAll reports whether a stored record carries exactly one
// signature per signing key of the compiler (its Signers, which the store
// keeps beside the envelope so a snapshot need not read envelopes).
func (c *Compiler) signedByAll(r store.DesiredRecord) bool {
	if len(r.Signers) != len(c.signerIDs) {
		return false
	}
	for _, id := range c.signerIDs {
		if !slices.Contains(r.Signers, id) {
			return false
		}
	}
	return true
}

// minPerWorker is the fewest documents worth a signing goroutine.
const minPerWorker = 64

// build assembles the content of one device's document (no revision, no
// times).
func (c *Compiler) build(snap *store.Snapshot, m *fleet.Membership, dev *store.Device) *protocol.DesiredState {
	groups := m.GroupsOf(dev.ID)
	if groups == nil {
		groups = []string{}
	}
	doc := &protocol.DesiredState{
		Schema:   protocol.Schema,
		DeviceID: dev.ID,
		Groups:   groups,
		Banner:   snap.Settings[SettingBanner],
		Sideload: sideloadPolicy(snap, groups), // sideload.go
	}
	if len(dev.Labels) > 0 {
		doc.Labels = dev.Labels
	}
	if c.next != nil {
		nk := *c.next
		doc.NextControllerKey = &nk
	}
	apps(snap, groups, doc) // doc.Apps and doc.Publishers (apps.go)
	return doc
}

// NextRefresh returns when Compile will next have a refresh to do for snap:
// the earliest ExpiresAt-RefreshBefore over the active devices' records. It
// returns the current time when an active device has no record yet, and the
// zero time when there is no active device. Content changes are not
// predicted: the server compiles after every change anyway.
func (c *Compiler) NextRefresh(snap *store.Snapshot) time.Time {
	var next time.Time
	for i := range snap.Devices {
		dev := &snap.Devices[i]
		if dev.State != store.DeviceActive {
			continue
		}
		rec, ok := snap.Desired[dev.ID]
		if !ok {
			return c.now().UTC().Round(0)
		}
		due := rec.ExpiresAt.Add(-c.refreshBefore)
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	return next
}

// TTL returns the validity of the documents the compiler signs.
func (c *Compiler) TTL() time.Duration { return c.ttl }

// KeyID returns the id of the signing key, as it appears in envelopes.
func (c *Compiler) KeyID() string {
	return protocol.KeyID(c.key.Public().(ed25519.PublicKey))
}
