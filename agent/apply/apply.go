// Package apply is where the agent takes a desired-state document off the
// wire: it verifies it (protocol.CheckDesired, against the pinned controller
// keys and the document in force), stores it, and swaps the in-memory
// policy that everything on the device enforces.
//
// The policy is immutable and published through an atomic pointer: readers
// never lock and never see half a document. Before any document has been
// applied the pointer is nil, which means "no access" (fail closed).
package apply

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewarden/edgewarden/agent/identity"
	"github.com/edgewarden/edgewarden/agent/state"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/access"
	"github.com/edgewarden/edgewarden/protocol/optoken"
)

// Store is what the applier needs from the agent's local state.
type Store interface {
	Applied(ctx context.Context) (*state.AppliedDoc, error)
	SaveApplied(ctx context.Context, d state.AppliedDoc, learned *protocol.PublicKey) error
	LearnedKeys(ctx context.Context) ([]protocol.PublicKey, error)
	LastRejection(ctx context.Context) (*state.StoredRejection, error)
	RecordRejection(ctx context.Context, rej state.StoredRejection, ev *protocol.Event) error
}

var _ Store = (*state.Store)(nil)

// Policy is a verified document in force. It is immutable: a new document
// or a refresh makes a new Policy. Never modify Doc or what it points to.
type Policy struct {
	Doc           *protocol.DesiredState
	Revision      uint64
	ContentDigest string
	IssuedAt      time.Time
	ExpiresAt     time.Time
	AppliedAt     time.Time

	// Local access, compiled once from Doc (see LocalAccess). Nil Access or
	// Tokens (a stored document this agent can no longer compile) means
	// every local request is refused.
	//
	// Access decides local actions (Doc.Access.Evaluator()).
	Access *access.Evaluator
	// Tokens verifies operator tokens against Doc.TokenKeys and
	// Doc.RevokedTokens. A refresh keeps the Verifier (and its cache) of
	// the policy it renews: the content, so keys and revocations, is equal.
	Tokens *optoken.Verifier
	// Device is this device as an access resource, with the group paths of
	// Doc.Access, for Access.Decide.
	Device access.Resource
}

// LocalAccess compiles the local-access parts of a verified document: the
// grant evaluator, the operator token verifier and the device resource. It
// fails on a malformed access policy or token key.
func LocalAccess(doc *protocol.DesiredState) (*access.Evaluator, *optoken.Verifier, access.Resource, error) {
	ev, err := doc.Access.Evaluator()
	if err != nil {
		return nil, nil, access.Resource{}, fmt.Errorf("access policy: %w", err)
	}
	v, err := optoken.NewVerifier(optoken.VerifierOptions{Keys: doc.TokenKeys, Revoked: doc.RevokedTokens})
	if err != nil {
		return nil, nil, access.Resource{}, fmt.Errorf("token keys: %w", err)
	}
	return ev, v, doc.Access.Device(doc.DeviceID), nil
}

// Expired reports whether the policy has expired at now.
func (p *Policy) Expired(now time.Time) bool { return !now.Before(p.ExpiresAt) }

// Outcome is what Handle did with a document.
type Outcome int

const (
	// Applied: a new revision is in force.
	Applied Outcome = iota + 1
	// Refreshed: the revision in force was re-signed; its expiry is renewed.
	Refreshed
	// Unchanged: the document is the one in force (typically the broker
	// re-delivering its retained copy); nothing was done.
	Unchanged
	// Rejected: the document was refused; the policy in force is kept.
	Rejected
)

func (o Outcome) String() string {
	switch o {
	case Applied:
		return "applied"
	case Refreshed:
		return "refreshed"
	case Unchanged:
		return "unchanged"
	case Rejected:
		return "rejected"
	}
	return "invalid"
}

// Result describes the handling of one document.
type Result struct {
	Outcome  Outcome
	Revision uint64 // of the document handled (0 if it could not be read)
	// Err is the rejection (Outcome Rejected) or a local failure, such as
	// the database being unwritable (then Outcome is 0).
	Err error
	// Reported is false when the rejection repeats the last one recorded
	// (the same bytes refused again): it was not queued as a new event.
	Reported bool
}

// Options configure an Applier.
type Options struct {
	// DeviceID is this device's id.
	DeviceID string
	// Keys are the controller keys pinned at enrollment.
	Keys []protocol.PublicKey
	// Store holds the applied document, learned keys and rejections.
	Store Store
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// NewEventID makes event ids. Nil means random 128-bit hex.
	NewEventID func() string
	// Logger. Nil means slog.Default().
	Logger *slog.Logger
}

// Applier verifies and applies documents. Handle may be called from any
// goroutine; calls are serialised.
type Applier struct {
	opts    Options
	mu      sync.Mutex // serialises Handle
	keys    map[string]ed25519.PublicKey
	applied *state.AppliedDoc // guarded by mu
	current atomic.Pointer[Policy]
}

// New loads the document in force (if any) and the trusted keys.
func New(ctx context.Context, opts Options) (*Applier, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.NewEventID == nil {
		opts.NewEventID = RandomID
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	keys, err := identity.TrustedKeys(opts.Keys)
	if err != nil {
		return nil, fmt.Errorf("pinned controller keys: %w", err)
	}
	learned, err := opts.Store.LearnedKeys(ctx)
	if err != nil {
		return nil, err
	}
	for _, k := range learned {
		pub, err := identity.ParseControllerKey(k)
		if err != nil {
			return nil, fmt.Errorf("learned controller key: %w", err)
		}
		keys[protocol.KeyID(pub)] = pub
	}
	a := &Applier{opts: opts, keys: keys}
	applied, err := opts.Store.Applied(ctx)
	if err != nil {
		return nil, err
	}
	if applied != nil {
		p, err := policyFromStored(applied)
		if err != nil {
			return nil, err
		}
		a.applied = applied
		a.current.Store(p)
	}
	return a, nil
}

// policyFromStored decodes the stored envelope. It was verified before it
// was stored, so only its shape is checked here.
func policyFromStored(d *state.AppliedDoc) (*Policy, error) {
	env, err := protocol.DecodeEnvelope(d.Envelope)
	if err != nil {
		return nil, fmt.Errorf("stored document: %w", err)
	}
	var doc protocol.DesiredState
	if err := json.Unmarshal(env.Payload, &doc); err != nil {
		return nil, fmt.Errorf("stored document: %w", err)
	}
	if doc.Revision != d.Revision {
		return nil, fmt.Errorf("stored document: envelope has revision %d, record says %d", doc.Revision, d.Revision)
	}
	p := &Policy{
		Doc:           &doc,
		Revision:      d.Revision,
		ContentDigest: d.ContentDigest,
		IssuedAt:      d.IssuedAt,
		ExpiresAt:     d.ExpiresAt,
		AppliedAt:     d.AppliedAt,
	}
	// A document stored by an older agent that this one cannot compile
	// keeps its apps in force but allows no local access (Access and
	// Tokens stay nil) until the next document.
	p.Access, p.Tokens, p.Device, _ = LocalAccess(&doc)
	return p, nil
}

// Current returns the policy in force, or nil before any document was
// applied. A nil policy allows nothing.
func (a *Applier) Current() *Policy { return a.current.Load() }

// TrustedKeyIDs returns the ids of the controller keys documents are
// verified against.
func (a *Applier) TrustedKeyIDs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := make([]string, 0, len(a.keys))
	for id := range maps.Keys(a.keys) {
		ids = append(ids, id)
	}
	return ids
}

// Handle verifies raw (a signed envelope from the desired topic) and applies,
// refreshes, ignores or rejects it. Everything is committed to the store
// before Handle returns, so the caller may acknowledge the message then.
func (a *Applier) Handle(ctx context.Context, raw []byte) Result {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.opts.Now()

	if a.applied != nil && bytes.Equal(raw, a.applied.Envelope) {
		return Result{Outcome: Unchanged, Revision: a.applied.Revision}
	}
	var applied protocol.Applied
	if a.applied != nil {
		applied = a.applied.Applied
	}
	doc, verdict, err := protocol.CheckDesired(raw, protocol.CheckOptions{
		DeviceID: a.opts.DeviceID,
		Keys:     a.keys,
		Applied:  applied,
		Now:      now,
	})
	if err != nil {
		if a.sameAsApplied(raw) {
			// The document in force, encoded differently: not an attack,
			// and nothing to do (even if it has expired meanwhile).
			return Result{Outcome: Unchanged, Revision: a.applied.Revision}
		}
		return a.reject(ctx, raw, err, now)
	}

	rec := state.AppliedDoc{
		Envelope: bytes.Clone(raw),
		Applied: protocol.Applied{
			Revision:      doc.Revision,
			ContentDigest: doc.ContentDigest(),
			IssuedAt:      doc.IssuedAt,
		},
		ExpiresAt: doc.ExpiresAt,
		AppliedAt: now,
	}
	var p *Policy
	switch verdict {
	case protocol.Refresh:
		// Same content: keep the decoded document in force, renew times.
		old := a.current.Load()
		renewed := *old.Doc
		renewed.IssuedAt, renewed.ExpiresAt = doc.IssuedAt, doc.ExpiresAt
		rec.AppliedAt = old.AppliedAt
		p = &Policy{Doc: &renewed, Revision: doc.Revision, ContentDigest: rec.ContentDigest,
			IssuedAt: doc.IssuedAt, ExpiresAt: doc.ExpiresAt, AppliedAt: old.AppliedAt,
			Access: old.Access, Tokens: old.Tokens, Device: old.Device}
	default:
		ev, tokens, dev, err := LocalAccess(doc)
		if err != nil {
			return a.reject(ctx, raw, fmt.Errorf("%w: %v", protocol.ErrMalformed, err), now)
		}
		p = &Policy{Doc: doc, Revision: doc.Revision, ContentDigest: rec.ContentDigest,
			IssuedAt: doc.IssuedAt, ExpiresAt: doc.ExpiresAt, AppliedAt: now,
			Access: ev, Tokens: tokens, Device: dev}
	}

	var learned *protocol.PublicKey
	var learnedPub ed25519.PublicKey
	if nk := doc.NextControllerKey; nk != nil && verdict == protocol.Apply {
		pub, err := identity.ParseControllerKey(*nk)
		if err != nil {
			a.opts.Logger.Warn("document announces an unusable next controller key; ignoring it", "revision", doc.Revision, "err", err)
		} else if _, ok := a.keys[protocol.KeyID(pub)]; !ok {
			k := *nk
			k.KeyID, k.Algorithm = protocol.KeyID(pub), "Ed25519"
			learned, learnedPub = &k, pub
		}
	}

	if err := a.opts.Store.SaveApplied(ctx, rec, learned); err != nil {
		// Not stored, so not in force: the message is not acknowledged
		// as handled and the policy stays as it was.
		return Result{Revision: doc.Revision, Err: err}
	}
	if learned != nil {
		a.keys[learned.KeyID] = learnedPub
	}
	a.applied = &rec
	a.current.Store(p)
	if verdict == protocol.Refresh {
		return Result{Outcome: Refreshed, Revision: doc.Revision}
	}
	return Result{Outcome: Applied, Revision: doc.Revision}
}

// sameAsApplied reports whether raw carries the document in force: signed
// by a trusted key, same device, revision, content and issue time.
func (a *Applier) sameAsApplied(raw []byte) bool {
	if a.applied == nil {
		return false
	}
	doc, ok := a.verifiedPayload(raw)
	if !ok {
		return false
	}
	return doc.DeviceID == a.opts.DeviceID &&
		doc.Revision == a.applied.Revision &&
		doc.IssuedAt.Equal(a.applied.IssuedAt) &&
		doc.ContentDigest() == a.applied.ContentDigest
}

// verifiedPayload decodes raw if a trusted key signed it.
func (a *Applier) verifiedPayload(raw []byte) (*protocol.DesiredState, bool) {
	env, err := protocol.DecodeEnvelope(raw)
	if err != nil {
		return nil, false
	}
	if _, err := protocol.VerifyEnvelope(env, protocol.PayloadTypeDesired, a.keys); err != nil {
		return nil, false
	}
	var doc protocol.DesiredState
	if err := json.Unmarshal(env.Payload, &doc); err != nil {
		return nil, false
	}
	return &doc, true
}

// RejectOversized records the rejection of a desired message of size
// bytes that was dropped unread because it exceeds protocol.MaxEnvelopeBytes.
func (a *Applier) RejectOversized(ctx context.Context, size int) Result {
	a.mu.Lock()
	defer a.mu.Unlock()
	cause := fmt.Errorf("%w: desired-state message is %d bytes, limit %d; it was dropped unread", protocol.ErrTooLarge, size, protocol.MaxEnvelopeBytes)
	return a.record(ctx, fmt.Sprintf("size:%d", size), 0, cause, a.opts.Now())
}

func (a *Applier) reject(ctx context.Context, raw []byte, cause error, now time.Time) Result {
	sum := sha256.Sum256(raw)
	// The revision is reported only when a trusted key signed the document;
	// an unsigned number is not worth repeating.
	var rev uint64
	if doc, ok := a.verifiedPayload(raw); ok {
		rev = doc.Revision
	}
	return a.record(ctx, hex.EncodeToString(sum[:]), rev, cause, now)
}

// record stores a rejection and queues its event, unless it repeats the
// last rejection (same digest).
func (a *Applier) record(ctx context.Context, digest string, rev uint64, cause error, now time.Time) Result {
	rej := state.StoredRejection{
		Rejection: protocol.Rejection{
			Revision: rev,
			Reason:   protocol.Reason(cause),
			Message:  cause.Error(),
			At:       now.UTC(),
		},
		Digest: digest,
	}
	res := Result{Outcome: Rejected, Revision: rev, Err: cause}

	last, err := a.opts.Store.LastRejection(ctx)
	if err != nil {
		return Result{Revision: rev, Err: errors.Join(cause, err)}
	}
	var ev *protocol.Event
	if last == nil || last.Digest != digest {
		details := map[string]string{"reason": rej.Reason}
		if rev != 0 {
			details["revision"] = fmt.Sprint(rev)
		}
		if a.applied != nil {
			details["applied_revision"] = fmt.Sprint(a.applied.Revision)
		}
		ev = &protocol.Event{
			ID:       a.opts.NewEventID(),
			At:       now.UTC(),
			Kind:     protocol.EventDocumentRejected,
			Severity: protocol.SeverityWarning,
			Message:  "desired state refused: " + cause.Error(),
			Details:  details,
		}
		res.Reported = true
	}
	if err := a.opts.Store.RecordRejection(ctx, rej, ev); err != nil {
		return Result{Revision: rev, Err: errors.Join(cause, err)}
	}
	return res
}
