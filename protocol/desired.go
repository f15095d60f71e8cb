package protocol

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/edgewarden/edgewarden/protocol/access"
)

// DesiredState is everything one device must enforce, in one signed document:
// one signature and one revision, so an old grant list never mixes with a new
// app list. Empty lists mean "none": no groups, no grants (so no local
// access), no apps (so every managed app is removed), no trusted publishers.
type DesiredState struct {
	Schema   int    `json:"schema"`
	DeviceID string `json:"device_id"`
	// Revision counts content changes for this device and only grows.
	// A refresh re-signs the same content and revision with later times.
	Revision  uint64    `json:"revision"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`

	// Groups are the names of every device group the device belongs to:
	// directly, by label selector, or through an included group. Sorted.
	Groups []string `json:"groups"`
	// Labels are the device's labels as the controller knows them.
	Labels map[string]string `json:"labels,omitempty"`

	// Access holds the grants that concern this device, for offline
	// authorization of local actions (see protocol/access).
	Access access.Policy `json:"access"`
	// TokenKeys verify operator tokens (JWT) presented to the agent.
	TokenKeys []PublicKey `json:"token_keys,omitempty"`
	// RevokedTokens are ids (jti) of operator tokens that must be refused
	// even though they have not expired.
	RevokedTokens []string `json:"revoked_tokens,omitempty"`

	// Publishers are the trusted app publisher keys.
	Publishers []Publisher `json:"publishers,omitempty"`
	// Apps are the app versions assigned to this device.
	Apps []AppAssignment `json:"apps,omitempty"`
	// Sideload is the sideload policy in force on this device.
	Sideload SideloadPolicy `json:"sideload"`
	// Banner is the system-use notification shown before local login.
	Banner string `json:"banner,omitempty"`

	// NextControllerKey, when set, announces the key the controller will
	// sign with after a rotation. Because this document is signed by a key
	// the agent already trusts, the agent adds it to its trusted keys.
	NextControllerKey *PublicKey `json:"next_controller_key,omitempty"`
}

// PublicKey is a public key carried in a document.
type PublicKey struct {
	KeyID     string `json:"key_id"`
	Algorithm string `json:"algorithm" openapi:"enum=Ed25519|ES256"` // "Ed25519", "ES256"
	PEM       string `json:"pem"`                                    // PKIX public key, PEM-encoded
}

// ControllerPublicKey returns an Ed25519 controller key as documents and
// enrollment responses carry it.
func ControllerPublicKey(pub ed25519.PublicKey) PublicKey {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		// An Ed25519 public key always marshals.
		panic(fmt.Sprintf("protocol: marshal Ed25519 public key: %v", err))
	}
	return PublicKey{
		KeyID:     KeyID(pub),
		Algorithm: "Ed25519",
		PEM:       string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	}
}

// Publisher is a trusted app publisher and its keys (several, for rotation).
type Publisher struct {
	Name string   `json:"name"`
	Keys []string `json:"keys"` // PKIX public keys, PEM-encoded (cosign.pub)
}

// AppAssignment is one app version assigned to the device, with its
// publisher-signed manifest. Manifest holds the exact bytes the publisher
// signed; the agent verifies Signature over them before install.
type AppAssignment struct {
	Name      string `json:"name"`
	Version   string `json:"version"`
	Publisher string `json:"publisher"`
	Manifest  []byte `json:"manifest"`  // exact signed bytes, base64 in JSON
	Signature []byte `json:"signature"` // cosign signature as uploaded: base64 text or bundle JSON
}

// SideloadPolicy says whether local installs are allowed. The zero value is
// the default: banned.
type SideloadPolicy struct {
	Allowed bool `json:"allowed"`
	// Groups names the device groups whose override decided Allowed
	// (sorted): the groups that ban sideloading when Allowed is false, the
	// ones that allow it otherwise. Empty: no group of the device has an
	// override, so the controller's global policy decided.
	Groups []string `json:"groups,omitempty"`
}

// ContentDigest identifies the content of a document, leaving out what a
// refresh changes (revision, issued_at, expires_at). The controller bumps the
// revision when this changes; the agent takes an equal revision as a refresh
// only when this is unchanged.
func (d *DesiredState) ContentDigest() string {
	c := *d
	c.Revision, c.IssuedAt, c.ExpiresAt = 0, time.Time{}, time.Time{}
	b, err := json.Marshal(&c)
	if err != nil {
		// Every field is a plain value; Marshal cannot fail.
		panic(fmt.Sprintf("protocol: marshal desired state: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// SignDesired encodes and signs d with the controller key.
func SignDesired(d *DesiredState, key ed25519.PrivateKey) ([]byte, error) {
	return SignDesiredKeys(d, key)
}

// SignDesiredKeys encodes d and signs it with each key (see
// SignEnvelopeKeys): the current controller key and, after a key rotation,
// the previous one.
func SignDesiredKeys(d *DesiredState, keys ...ed25519.PrivateKey) ([]byte, error) {
	payload, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode desired state for %s: %w", d.DeviceID, err)
	}
	return SignEnvelopeKeys(PayloadTypeDesired, payload, keys...)
}

// Applied is what an agent knows of the document it applied last. The zero
// value means nothing has been applied yet.
type Applied struct {
	Revision      uint64
	ContentDigest string
	IssuedAt      time.Time
}

// CheckOptions are the inputs of CheckDesired.
type CheckOptions struct {
	// DeviceID is the device's own id; a document for any other is refused.
	DeviceID string
	// Keys are the trusted controller keys, indexed by KeyID.
	Keys map[string]ed25519.PublicKey
	// Applied is the last applied document (zero if none).
	Applied Applied
	// Now is the current time, for the expiry check.
	Now time.Time
}

// Verdict says what the agent should do with a document that passed
// CheckDesired.
type Verdict int

const (
	// Apply: a new revision; apply it.
	Apply Verdict = iota + 1
	// Refresh: the applied revision re-signed with later times; renew the
	// expiry and apply nothing.
	Refresh
)

func (v Verdict) String() string {
	switch v {
	case Apply:
		return "apply"
	case Refresh:
		return "refresh"
	}
	return "invalid"
}

// CheckDesired is where an agent verifies a desired-state document. It
// decodes the envelope, verifies the signature over the exact payload bytes,
// then decodes the payload and checks, in this order: device id, expiry,
// revision (or refresh). A document passes only if every check does; the
// error wraps one of the Err* reasons and says what to do.
// It is a pure function: no I/O, and the clock comes from opts.Now.
func CheckDesired(raw []byte, opts CheckOptions) (*DesiredState, Verdict, error) {
	env, err := DecodeEnvelope(raw)
	if err != nil {
		return nil, 0, err
	}
	if _, err := VerifyEnvelope(env, PayloadTypeDesired, opts.Keys); err != nil {
		return nil, 0, err
	}
	var d DesiredState
	if err := json.Unmarshal(env.Payload, &d); err != nil {
		return nil, 0, fmt.Errorf("%w: desired state: %v", ErrMalformed, err)
	}
	if d.Schema < 1 {
		return nil, 0, fmt.Errorf("%w: desired state has schema %d", ErrMalformed, d.Schema)
	}
	if d.DeviceID != opts.DeviceID {
		return nil, 0, fmt.Errorf("%w: document names device %q, this device is %q", ErrWrongDevice, d.DeviceID, opts.DeviceID)
	}
	if d.Revision == 0 {
		return nil, 0, fmt.Errorf("%w: desired state has revision 0", ErrMalformed)
	}
	if d.ExpiresAt.IsZero() || !d.ExpiresAt.After(d.IssuedAt) {
		return nil, 0, fmt.Errorf("%w: desired state expiry %s is not after issue time %s", ErrMalformed, d.ExpiresAt.Format(time.RFC3339), d.IssuedAt.Format(time.RFC3339))
	}
	if !opts.Now.Before(d.ExpiresAt) {
		return nil, 0, fmt.Errorf("%w: revision %d expired at %s (now %s); the controller re-signs documents before they expire, so check that it is running and reachable, and the device clock", ErrExpired, d.Revision, d.ExpiresAt.Format(time.RFC3339), opts.Now.UTC().Format(time.RFC3339))
	}
	if _, err := d.Access.Evaluator(); err != nil {
		return nil, 0, fmt.Errorf("%w: access policy: %v", ErrMalformed, err)
	}
	if len(d.Apps) > MaxAppsPerDevice {
		return nil, 0, fmt.Errorf("%w: %d apps, limit %d", ErrMalformed, len(d.Apps), MaxAppsPerDevice)
	}
	switch {
	case d.Revision > opts.Applied.Revision:
		return &d, Apply, nil
	case d.Revision == opts.Applied.Revision:
		if d.ContentDigest() != opts.Applied.ContentDigest {
			return nil, 0, fmt.Errorf("%w: revision %d is already applied with different content; a changed document must carry a higher revision", ErrReplay, d.Revision)
		}
		if !d.IssuedAt.After(opts.Applied.IssuedAt) {
			return nil, 0, fmt.Errorf("%w: revision %d issued at %s is not newer than the applied copy (issued %s)", ErrReplay, d.Revision, d.IssuedAt.Format(time.RFC3339Nano), opts.Applied.IssuedAt.Format(time.RFC3339Nano))
		}
		return &d, Refresh, nil
	default:
		return nil, 0, fmt.Errorf("%w: revision %d is older than the applied revision %d", ErrReplay, d.Revision, opts.Applied.Revision)
	}
}
