package optoken

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/edgewarden/edgewarden/protocol"
)

// DefaultCacheSize is the number of verified tokens a Verifier remembers
// when VerifierOptions.CacheSize is zero.
const DefaultCacheSize = 1024

// maxTokenID bounds the "jti" claim.
const maxTokenID = 128

// VerifierOptions are the inputs of NewVerifier.
type VerifierOptions struct {
	// Keys are the token verification keys (DesiredState.TokenKeys), named
	// by KeyID. None: every token is refused.
	Keys []protocol.PublicKey
	// Revoked are the ids (jti) of revoked tokens (DesiredState.RevokedTokens).
	Revoked []string
	// Leeway is the clock skew tolerated on exp, nbf and iat. Zero means
	// MaxLeeway (30 s); negative means none; more than MaxLeeway is an error.
	Leeway time.Duration
	// CacheSize bounds the verified-token cache. Zero means
	// DefaultCacheSize; negative disables the cache.
	CacheSize int
}

// Verifier checks operator tokens offline. It is safe for concurrent use.
// Apart from its cache it is immutable: build a new one when the keys or
// the revocations change.
type Verifier struct {
	keys    map[string]verifyKey
	revoked map[string]struct{}
	leeway  time.Duration
	cache   *tokenCache
}

type verifyKey struct {
	alg  string // JWT alg: "EdDSA" or "ES256"
	kind string // AlgEd25519 or AlgES256
	pub  any    // ed25519.PublicKey or *ecdsa.PublicKey
}

// NewVerifier builds a Verifier. It refuses a key whose id is not a plain
// token (letters, digits, '-', '_', at most 64), whose PEM does not parse,
// whose type does not match its Algorithm, or whose id is listed twice.
func NewVerifier(opts VerifierOptions) (*Verifier, error) {
	v := &Verifier{
		keys:    make(map[string]verifyKey, len(opts.Keys)),
		revoked: make(map[string]struct{}, len(opts.Revoked)),
		leeway:  opts.Leeway,
	}
	switch {
	case v.leeway == 0:
		v.leeway = MaxLeeway
	case v.leeway < 0:
		v.leeway = 0
	case v.leeway > MaxLeeway:
		return nil, fmt.Errorf("operator token verifier: leeway %s is more than the allowed %s", opts.Leeway, MaxLeeway)
	}
	for _, k := range opts.Keys {
		if !kidPattern.MatchString(k.KeyID) {
			return nil, fmt.Errorf("operator token key %q: a key id is 1-%d letters, digits, '-' or '_'", k.KeyID, MaxKeyIDLen)
		}
		if _, dup := v.keys[k.KeyID]; dup {
			return nil, fmt.Errorf("operator token key %s is listed twice", k.KeyID)
		}
		vk, err := parseKey(k)
		if err != nil {
			return nil, fmt.Errorf("operator token key %s: %w", k.KeyID, err)
		}
		v.keys[k.KeyID] = vk
	}
	for _, id := range opts.Revoked {
		v.revoked[id] = struct{}{}
	}
	size := opts.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	if size > 0 {
		v.cache = newTokenCache(size)
	}
	return v, nil
}

func parseKey(k protocol.PublicKey) (verifyKey, error) {
	block, _ := pem.Decode([]byte(k.PEM))
	if block == nil || block.Type != "PUBLIC KEY" {
		return verifyKey{}, errors.New("pem: want a PEM \"PUBLIC KEY\" block")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return verifyKey{}, fmt.Errorf("parse public key: %w", err)
	}
	switch p := pub.(type) {
	case ed25519.PublicKey:
		if k.Algorithm != AlgEd25519 {
			return verifyKey{}, fmt.Errorf("algorithm %q does not match its Ed25519 key", k.Algorithm)
		}
		return verifyKey{alg: jwt.SigningMethodEdDSA.Alg(), kind: AlgEd25519, pub: p}, nil
	case *ecdsa.PublicKey:
		if k.Algorithm != AlgES256 || p.Curve != elliptic.P256() {
			return verifyKey{}, fmt.Errorf("algorithm %q does not match its ECDSA %s key (want ES256 with P-256)", k.Algorithm, p.Curve.Params().Name)
		}
		return verifyKey{alg: jwt.SigningMethodES256.Alg(), kind: AlgES256, pub: p}, nil
	}
	return verifyKey{}, fmt.Errorf("unsupported key type %T: want Ed25519 or ECDSA P-256", pub)
}

// registered is the claim set decoded from a token.
type registered struct {
	jwt.RegisteredClaims
}

// Verify checks a token at time now and returns its claims. It refuses,
// with an error wrapping one of the Err* values: a token over MaxTokenBytes
// or not a JWS; an algorithm other than EdDSA or ES256, or one that does
// not match the key the kid names; a missing, unknown or malformed kid
// (path characters, over 64 characters); a bad signature; an audience other
// than "edgewarden-device" or an issuer other than "edgewarden-controller";
// a missing or past exp, a future nbf or iat (beyond the leeway); a missing
// sub or jti; a revoked jti.
//
// A token seen before and verified is found in the cache by its SHA-256 and
// skips signature verification; revocation and time are checked again on
// every call. A nil Verifier refuses every token.
func (v *Verifier) Verify(token string, now time.Time) (Claims, error) {
	if v == nil {
		return Claims{}, fmt.Errorf("%w: no token keys are known yet (the device has no desired state)", ErrUnknownKey)
	}
	if len(token) > MaxTokenBytes {
		return Claims{}, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(token), MaxTokenBytes)
	}
	var sum [32]byte
	if v.cache != nil {
		sum = sha256.Sum256([]byte(token))
		if c, ok := v.cache.get(sum); ok {
			return c, v.checkLive(c, now)
		}
	}
	c, err := v.verify(token, now)
	if err != nil {
		return Claims{}, err
	}
	if v.cache != nil {
		v.cache.put(sum, c)
	}
	return c, nil
}

// checkLive checks what can change after a token was verified: time and
// revocation.
func (v *Verifier) checkLive(c Claims, now time.Time) error {
	if _, ok := v.revoked[c.ID]; ok {
		return fmt.Errorf("%w: token %s of %s was revoked; get a new one with `edgewarden tokens issue`", ErrRevoked, c.ID, c.Subject)
	}
	if !now.Before(c.ExpiresAt.Add(v.leeway)) {
		return fmt.Errorf("%w: token %s of %s expired at %s; get a new one with `edgewarden tokens issue`", ErrExpired, c.ID, c.Subject, c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if !c.NotBefore.IsZero() && now.Before(c.NotBefore.Add(-v.leeway)) {
		return fmt.Errorf("%w: token %s is valid from %s; check the device clock", ErrNotYet, c.ID, c.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

func (v *Verifier) verify(token string, now time.Time) (Claims, error) {
	var kid string
	var keyErr error // the keyfunc's own error, clearer than jwt's wrapping of it
	keyfunc := func(t *jwt.Token) (key any, err error) {
		defer func() { keyErr = err }()
		raw, present := t.Header["kid"]
		s, ok := raw.(string)
		switch {
		case !present:
			return nil, fmt.Errorf("%w: no kid in the header", ErrMalformed)
		case !ok || !kidPattern.MatchString(s):
			return nil, fmt.Errorf("%w: kid must be 1-%d letters, digits, '-' or '_'", ErrMalformed, MaxKeyIDLen)
		}
		k, ok := v.keys[s]
		if !ok {
			return nil, fmt.Errorf("%w: kid %s is not a token key of this device; the token may come from another controller, or the device's document is out of date", ErrUnknownKey, s)
		}
		if t.Method.Alg() != k.alg {
			return nil, fmt.Errorf("%w: %s for key %s, which is an %s key (alg %s)", ErrAlgorithm, t.Method.Alg(), s, k.kind, k.alg)
		}
		kid = s
		return k.pub, nil
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg(), jwt.SigningMethodES256.Alg()}),
		jwt.WithAudience(Audience),
		jwt.WithIssuer(Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithStrictDecoding(),
	)
	var rc registered
	t, err := p.ParseWithClaims(token, &rc, keyfunc)
	if err != nil {
		if keyErr != nil {
			return Claims{}, keyErr
		}
		return Claims{}, classify(t, err)
	}
	switch {
	case rc.Subject == "":
		return Claims{}, fmt.Errorf("%w: no subject (sub)", ErrClaims)
	case rc.ID == "" || len(rc.ID) > maxTokenID:
		return Claims{}, fmt.Errorf("%w: token id (jti) must be 1-%d characters", ErrClaims, maxTokenID)
	}
	c := Claims{Subject: rc.Subject, ID: rc.ID, KeyID: kid, ExpiresAt: rc.ExpiresAt.UTC()}
	if rc.IssuedAt != nil {
		c.IssuedAt = rc.IssuedAt.UTC()
	}
	if rc.NotBefore != nil {
		c.NotBefore = rc.NotBefore.UTC()
	}
	if err := v.checkLive(c, now); err != nil {
		return Claims{}, err
	}
	return c, nil
}

// classify turns a jwt error into one wrapping an Err* value, with a message
// for the user.
func classify(t *jwt.Token, err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	case errors.Is(err, jwt.ErrTokenUnverifiable), // unknown alg
		errors.Is(err, jwt.ErrTokenSignatureInvalid) && t != nil && t.Method != nil &&
			t.Method.Alg() != jwt.SigningMethodEdDSA.Alg() && t.Method.Alg() != jwt.SigningMethodES256.Alg():
		var alg string
		if t != nil {
			alg, _ = t.Header["alg"].(string)
		}
		return fmt.Errorf("%w: %q; operator tokens are signed with EdDSA or ES256", ErrAlgorithm, alg)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fmt.Errorf("%w: the token was altered or not signed by the controller", ErrSignature)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: %v; get a new one with `edgewarden tokens issue`", ErrExpired, err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fmt.Errorf("%w: %v (operator tokens must carry iss, aud, sub, jti and exp)", ErrClaims, err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fmt.Errorf("%w: %v; check the device clock", ErrNotYet, err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fmt.Errorf("%w: audience is not %q: this token is not for devices", ErrClaims, Audience)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return fmt.Errorf("%w: issuer is not %q", ErrClaims, Issuer)
	}
	return fmt.Errorf("%w: %v", ErrClaims, err)
}

// tokenCache remembers verified tokens by the SHA-256 of their text. It is
// bounded: the oldest entry is evicted first (entries also stop counting
// once their token expires, see checkLive).
type tokenCache struct {
	mu    sync.Mutex
	m     map[[32]byte]Claims
	order [][32]byte // ring of insertion order
	next  int
}

func newTokenCache(size int) *tokenCache {
	return &tokenCache{m: make(map[[32]byte]Claims, size), order: make([][32]byte, 0, size)}
}

func (c *tokenCache) get(sum [32]byte) (Claims, bool) {
	c.mu.Lock()
	cl, ok := c.m[sum]
	c.mu.Unlock()
	return cl, ok
}

func (c *tokenCache) put(sum [32]byte, cl Claims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[sum]; ok {
		return
	}
	if len(c.order) < cap(c.order) {
		c.order = append(c.order, sum)
	} else {
		delete(c.m, c.order[c.next])
		c.order[c.next] = sum
		c.next = (c.next + 1) % len(c.order)
	}
	c.m[sum] = cl
}

// len returns how many tokens the cache holds.
func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
