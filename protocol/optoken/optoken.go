// Package optoken issues and verifies operator tokens: the JWTs a user
// presents to an agent for local access on a device (`edgewarden local
// --token T`). A token proves who the user is; the grants in the device's
// policy (protocol/access) decide what they may do.
//
// The controller issues tokens with a Signer (EdDSA, or ES256). The agent
// checks them offline with a Verifier built from the token keys and the
// revoked token ids of its current desired state: fixed algorithms (the one
// matching the key the kid names), audience "edgewarden-device", issuer
// "edgewarden-controller", expiry required, at most 30 s of clock leeway. A
// Verifier is immutable apart from its cache; build a new one with each
// document and swap it atomically.
//
// The agent binary links this package, so it imports only the standard
// library, golang-jwt and protocol.
package optoken

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/edgewarden/edgewarden/protocol"
)

// Fixed claim values and limits.
const (
	// Audience is the "aud" of every operator token.
	Audience = "edgewarden-device"
	// Issuer is the "iss" of every operator token.
	Issuer = "edgewarden-controller"
	// MaxLeeway is the largest clock skew a Verifier tolerates.
	MaxLeeway = 30 * time.Second
	// MaxKeyIDLen bounds the "kid" header.
	MaxKeyIDLen = 64
	// MaxTokenBytes bounds a token; longer ones are refused unparsed.
	MaxTokenBytes = 4 << 10
	// DefaultTTL is the lifetime of a token when IssueOptions.TTL is zero.
	DefaultTTL = 8 * time.Hour
)

// Key algorithms, as in protocol.PublicKey.Algorithm.
const (
	AlgEd25519 = "Ed25519" // JWT alg EdDSA
	AlgES256   = "ES256"   // ECDSA P-256 with SHA-256
)

// Errors Verify returns, wrapped with a message for the user.
var (
	ErrMalformed  = errors.New("malformed operator token")
	ErrUnknownKey = errors.New("operator token signed by an unknown key")
	ErrAlgorithm  = errors.New("operator token algorithm not allowed")
	ErrSignature  = errors.New("operator token signature invalid")
	ErrClaims     = errors.New("operator token claims invalid")
	ErrExpired    = errors.New("operator token expired")
	ErrNotYet     = errors.New("operator token not valid yet")
	ErrRevoked    = errors.New("operator token revoked")
)

// kidPattern is what a key id may look like: no path characters.
var kidPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Claims are the verified contents of an operator token.
type Claims struct {
	// Subject is the user the token was issued to.
	Subject string `json:"sub"`
	// ID is the token id (jti), by which it is revoked.
	ID    string `json:"jti"`
	KeyID string `json:"kid"`
	// Times are whole seconds, in UTC. NotBefore is zero if absent.
	IssuedAt  time.Time `json:"iat"`
	NotBefore time.Time `json:"nbf"`
	ExpiresAt time.Time `json:"exp"`
}

// KeyID returns the id by which tokens and documents name a token key: for
// Ed25519 the same as protocol.KeyID, for ECDSA the first 16 bytes of the
// SHA-256 of the PKIX encoding, in hex.
func KeyID(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return protocol.KeyID(k), nil
	case *ecdsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return "", fmt.Errorf("encode ECDSA key: %w", err)
		}
		sum := sha256.Sum256(der)
		return hex.EncodeToString(sum[:16]), nil
	}
	return "", fmt.Errorf("operator token keys are Ed25519 or ECDSA P-256, not %T", pub)
}

// Signer issues operator tokens with one key.
type Signer struct {
	key    crypto.Signer
	method jwt.SigningMethod
	pub    protocol.PublicKey
}

// NewSigner returns a Signer for an ed25519.PrivateKey (EdDSA, preferred)
// or an *ecdsa.PrivateKey on P-256 (ES256).
func NewSigner(key crypto.Signer) (*Signer, error) {
	s := &Signer{key: key}
	switch k := key.(type) {
	case ed25519.PrivateKey:
		s.method, s.pub.Algorithm = jwt.SigningMethodEdDSA, AlgEd25519
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("operator token key: ECDSA keys must be on P-256, not %s", k.Curve.Params().Name)
		}
		s.method, s.pub.Algorithm = jwt.SigningMethodES256, AlgES256
	default:
		return nil, fmt.Errorf("operator token key: want an Ed25519 or ECDSA P-256 private key, not %T", key)
	}
	kid, err := KeyID(key.Public())
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("operator token key: encode public key: %w", err)
	}
	s.pub.KeyID = kid
	s.pub.PEM = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	return s, nil
}

// PublicKey is the verification key to publish in desired-state documents
// (DesiredState.TokenKeys).
func (s *Signer) PublicKey() protocol.PublicKey { return s.pub }

// IssueOptions are the inputs of Issue.
type IssueOptions struct {
	// Subject is the user name; required.
	Subject string
	// Now is the issue time; zero means time.Now().
	Now time.Time
	// TTL is the lifetime; zero means DefaultTTL. Must be positive.
	TTL time.Duration
	// ID is the token id (jti); empty means a random one (crypto/rand.Text,
	// 26 base32 characters).
	ID string
}

// Issue signs a token and returns it with its claims.
func (s *Signer) Issue(opts IssueOptions) (string, Claims, error) {
	if opts.Subject == "" {
		return "", Claims{}, errors.New("issue operator token: no subject (user name)")
	}
	if opts.TTL < 0 {
		return "", Claims{}, fmt.Errorf("issue operator token for %s: negative lifetime %s", opts.Subject, opts.TTL)
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.ID == "" {
		opts.ID = rand.Text()
	}
	now := opts.Now.UTC().Truncate(time.Second) // JWT times are whole seconds
	c := Claims{
		Subject:   opts.Subject,
		ID:        opts.ID,
		KeyID:     s.pub.KeyID,
		IssuedAt:  now,
		NotBefore: now,
		ExpiresAt: now.Add(opts.TTL),
	}
	t := jwt.NewWithClaims(s.method, jwt.RegisteredClaims{
		Issuer:    Issuer,
		Subject:   c.Subject,
		Audience:  jwt.ClaimStrings{Audience},
		ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
		NotBefore: jwt.NewNumericDate(c.NotBefore),
		IssuedAt:  jwt.NewNumericDate(c.IssuedAt),
		ID:        c.ID,
	})
	t.Header["kid"] = c.KeyID
	signed, err := t.SignedString(s.key)
	if err != nil {
		return "", Claims{}, fmt.Errorf("issue operator token for %s: %w", opts.Subject, err)
	}
	return signed, c, nil
}

// Issue signs one token with key (see NewSigner and Signer.Issue).
func Issue(key crypto.Signer, opts IssueOptions) (string, Claims, error) {
	s, err := NewSigner(key)
	if err != nil {
		return "", Claims{}, err
	}
	return s.Issue(opts)
}
