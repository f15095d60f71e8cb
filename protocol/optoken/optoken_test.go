package optoken

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/edgewarden/edgewarden/protocol"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

type fixture struct {
	ed, other *Signer
	edKey     ed25519.PrivateKey
	otherKey  ed25519.PrivateKey
	es        *Signer
	esKey     *ecdsa.PrivateKey
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{}
	var err error
	_, f.edKey, _ = ed25519.GenerateKey(rand.Reader)
	_, f.otherKey, _ = ed25519.GenerateKey(rand.Reader)
	f.esKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if f.ed, err = NewSigner(f.edKey); err != nil {
		t.Fatal(err)
	}
	if f.other, err = NewSigner(f.otherKey); err != nil {
		t.Fatal(err)
	}
	if f.es, err = NewSigner(f.esKey); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) verifier(t testing.TB, revoked ...string) *Verifier {
	t.Helper()
	v, err := NewVerifier(VerifierOptions{Keys: []protocol.PublicKey{f.ed.PublicKey(), f.es.PublicKey()}, Revoked: revoked})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (f *fixture) issue(t testing.TB, s *Signer, opts IssueOptions) string {
	t.Helper()
	if opts.Now.IsZero() {
		opts.Now = t0
	}
	if opts.Subject == "" {
		opts.Subject = "alice"
	}
	tok, _, err := s.Issue(opts)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// forge signs arbitrary claims and header with any method and key.
func forge(t testing.TB, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func goodClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss": Issuer, "aud": Audience, "sub": "alice", "jti": "tok-1",
		"iat": t0.Unix(), "nbf": t0.Unix(), "exp": t0.Add(time.Hour).Unix(),
	}
}

func with(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for kk, vv := range c {
		out[kk] = vv
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func TestIssueAndVerify(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t)
	for _, s := range []*Signer{f.ed, f.es} {
		tok, issued, err := s.Issue(IssueOptions{Subject: "alice", Now: t0, TTL: time.Hour, ID: "tok-" + s.PublicKey().Algorithm})
		if err != nil {
			t.Fatal(err)
		}
		c, err := v.Verify(tok, t0.Add(time.Minute))
		if err != nil {
			t.Fatalf("%s: %v", s.PublicKey().Algorithm, err)
		}
		if c != issued || c.Subject != "alice" || c.KeyID != s.PublicKey().KeyID || !c.ExpiresAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("claims %+v, issued %+v", c, issued)
		}
		// Second presentation comes from the cache with the same answer.
		if c2, err := v.Verify(tok, t0.Add(2*time.Minute)); err != nil || c2 != c {
			t.Errorf("cached: %+v, %v", c2, err)
		}
	}
	if f.ed.PublicKey().KeyID != protocol.KeyID(f.edKey.Public().(ed25519.PublicKey)) {
		t.Error("Ed25519 key id differs from protocol.KeyID")
	}
	// Defaults: random id, DefaultTTL.
	_, c, err := f.ed.Issue(IssueOptions{Subject: "bob", Now: t0})
	if err != nil || c.ID == "" || !c.ExpiresAt.Equal(t0.Add(DefaultTTL)) {
		t.Errorf("defaults: %+v, %v", c, err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	f := newFixture(t)
	kid := f.ed.PublicKey().KeyID
	edHeader := map[string]any{"kid": kid}
	good := f.issue(t, f.ed, IssueOptions{ID: "tok-1", TTL: time.Hour})
	parts := strings.Split(good, ".")
	tamperedPayload := func() string {
		raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
		raw = []byte(strings.Replace(string(raw), `"alice"`, `"admin"`, 1))
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(raw) + "." + parts[2]
	}()

	tests := []struct {
		name  string
		token string
		now   time.Time
		want  error
		msg   string
	}{
		{"alg none", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, edHeader, goodClaims()), t0, ErrAlgorithm, `"none"`},
		{"HS256 with the public key PEM", forge(t, jwt.SigningMethodHS256, []byte(f.ed.PublicKey().PEM), edHeader, goodClaims()), t0, ErrAlgorithm, "HS256"},
		{"HS256 with the raw public key", forge(t, jwt.SigningMethodHS256, []byte(f.edKey.Public().(ed25519.PublicKey)), edHeader, goodClaims()), t0, ErrAlgorithm, "HS256"},
		{"ES256 token naming an Ed25519 key", forge(t, jwt.SigningMethodES256, f.esKey, edHeader, goodClaims()), t0, ErrAlgorithm, "Ed25519"},
		{"unknown algorithm", parts[0][:0] + base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"XY99","kid":"`+kid+`"}`)) + "." + parts[1] + "." + parts[2], t0, ErrAlgorithm, "XY99"},
		{"wrong audience", forge(t, jwt.SigningMethodEdDSA, f.edKey, edHeader, with(goodClaims(), "aud", "edgewarden-api")), t0, ErrClaims, "audience"},
		{"no audience", forge(t, jwt.SigningMethodEdDSA, f.edKey, edHeader, with(goodClaims(), "aud", nil)), t0, ErrClaims, "aud"},
		{"wrong issuer", forge(t, jwt.SigningMethodEdDSA, f.edKey, edHeader, with(goodClaims(), "iss", "someone")), t0, ErrClaims, "issuer"},
		{"missing exp", forge(t, jwt.SigningMethodEdDSA, f.edKey, edHeader, with(goodClaims(), "exp", nil)), t0, ErrClaims, "exp claim is required"},
		{"past exp", good, t0.Add(time.Hour + MaxLeeway + time.Second), ErrExpired, "tokens issue"},
		{"exp just past the leeway", good, t0.Add(time.Hour + MaxLeeway), ErrExpired, ""},
		{"nbf in the future", forge(t, jwt.SigningMethodEdDSA, f.edKey, edHeader, with(goodClaims(), "nbf", t0.Add(time.Minute).Unix())), t0, ErrNotYet, "clock"},
		{"iat in the future", forge(t, jwt.SigningMethodEdDSA, f.edKey, edHeader, with(goodClaims(), "iat", t0.Add(time.Minute).Unix())), t0, ErrNotYet, ""},
		{"no subject", forge(t, jwt.SigningMethodEdDSA, f.edKey, edHeader, with(goodClaims(), "sub", nil)), t0, ErrClaims, "sub"},
		{"no jti", forge(t, jwt.SigningMethodEdDSA, f.edKey, edHeader, with(goodClaims(), "jti", nil)), t0, ErrClaims, "jti"},
		{"unknown kid", f.issue(t, f.other, IssueOptions{}), t0, ErrUnknownKey, f.other.PublicKey().KeyID},
		{"kid with path characters", forge(t, jwt.SigningMethodEdDSA, f.edKey, map[string]any{"kid": "../../etc/passwd"}, goodClaims()), t0, ErrMalformed, "kid"},
		{"kid over 64 characters", forge(t, jwt.SigningMethodEdDSA, f.edKey, map[string]any{"kid": strings.Repeat("a", 65)}, goodClaims()), t0, ErrMalformed, "kid"},
		{"kid not a string", forge(t, jwt.SigningMethodEdDSA, f.edKey, map[string]any{"kid": 7}, goodClaims()), t0, ErrMalformed, "kid"},
		{"no kid", forge(t, jwt.SigningMethodEdDSA, f.edKey, map[string]any{"kid": nil}, goodClaims()), t0, ErrMalformed, "no kid"},
		{"trusted kid, other key's signature", forge(t, jwt.SigningMethodEdDSA, f.otherKey, edHeader, goodClaims()), t0, ErrSignature, "altered"},
		{"tampered payload", tamperedPayload, t0, ErrSignature, ""},
		{"tampered signature", parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64)), t0, ErrSignature, ""},
		{"revoked", f.issue(t, f.ed, IssueOptions{ID: "tok-revoked"}), t0, ErrRevoked, "tok-revoked"},
		{"not a JWT", "hello", t0, ErrMalformed, ""},
		{"empty", "", t0, ErrMalformed, ""},
		{"too long", strings.Repeat("a", MaxTokenBytes+1), t0, ErrMalformed, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := f.verifier(t, "tok-revoked")
			for try := range 2 { // a refused token is not cached: refused again
				c, err := v.Verify(tt.token, tt.now)
				if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("try %d: Verify error = %v, want %v containing %q", try, err, tt.want, tt.msg)
				}
				if c != (Claims{}) {
					t.Errorf("claims returned with an error: %+v", c)
				}
			}
			if n := v.cache.len(); n != 0 {
				t.Errorf("a refused token left %d cache entries", n)
			}
		})
	}
}

func TestLeeway(t *testing.T) {
	f := newFixture(t)
	tok := f.issue(t, f.ed, IssueOptions{TTL: time.Hour})
	v := f.verifier(t)
	if _, err := v.Verify(tok, t0.Add(time.Hour+MaxLeeway-time.Second)); err != nil {
		t.Errorf("within the leeway: %v", err)
	}
	// Cached now; expiry is still checked on the cached path.
	if _, err := v.Verify(tok, t0.Add(time.Hour+MaxLeeway)); !errors.Is(err, ErrExpired) {
		t.Errorf("cached token past expiry: %v", err)
	}
	strict, err := NewVerifier(VerifierOptions{Keys: []protocol.PublicKey{f.ed.PublicKey()}, Leeway: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strict.Verify(tok, t0.Add(time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("no leeway, at exp: %v", err)
	}
	if _, err := NewVerifier(VerifierOptions{Leeway: MaxLeeway + time.Second}); err == nil {
		t.Error("a leeway over 30s was accepted")
	}
}

func TestCacheIsBoundedAndKeepsChecking(t *testing.T) {
	f := newFixture(t)
	v, err := NewVerifier(VerifierOptions{Keys: []protocol.PublicKey{f.ed.PublicKey()}, CacheSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	var toks []string
	for i := range 5 {
		toks = append(toks, f.issue(t, f.ed, IssueOptions{Subject: "u" + string(rune('a'+i))}))
	}
	for _, tok := range toks {
		if _, err := v.Verify(tok, t0); err != nil {
			t.Fatal(err)
		}
	}
	if n := v.cache.len(); n != 3 {
		t.Errorf("cache holds %d, bound 3", n)
	}
	// Evicted and cached tokens both still verify.
	for _, tok := range toks {
		if c, err := v.Verify(tok, t0); err != nil || c.Subject == "" {
			t.Errorf("re-verify: %+v %v", c, err)
		}
	}
	// The cache does not survive a new document: a revoked token is refused
	// by the next verifier even though the old one had it cached.
	tok := f.issue(t, f.ed, IssueOptions{ID: "tok-x"})
	old := f.verifier(t)
	if _, err := old.Verify(tok, t0); err != nil {
		t.Fatal(err)
	}
	next := f.verifier(t, "tok-x")
	if _, err := next.Verify(tok, t0); !errors.Is(err, ErrRevoked) {
		t.Errorf("revoked in the next document: %v", err)
	}
	// The cached path itself checks revocation.
	old.revoked["tok-x"] = struct{}{}
	if _, err := old.Verify(tok, t0); !errors.Is(err, ErrRevoked) {
		t.Errorf("cached revoked token: %v", err)
	}
	// No cache at all.
	nc, _ := NewVerifier(VerifierOptions{Keys: []protocol.PublicKey{f.ed.PublicKey()}, CacheSize: -1})
	if _, err := nc.Verify(tok, t0); err != nil || nc.cache != nil {
		t.Errorf("uncached verifier: %v", err)
	}
}

func TestVerifyConcurrent(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t)
	toks := []string{f.issue(t, f.ed, IssueOptions{Subject: "a"}), f.issue(t, f.es, IssueOptions{Subject: "b"})}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if _, err := v.Verify(toks[(g+i)%2], t0); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestNilVerifierRefuses(t *testing.T) {
	var v *Verifier
	if _, err := v.Verify("x.y.z", t0); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("nil verifier: %v", err)
	}
	empty, _ := NewVerifier(VerifierOptions{})
	f := newFixture(t)
	if _, err := empty.Verify(f.issue(t, f.ed, IssueOptions{}), t0); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("verifier without keys: %v", err)
	}
}

func TestNewVerifierRefusesBadKeys(t *testing.T) {
	f := newFixture(t)
	ed := f.ed.PublicKey()
	es := f.es.PublicKey()
	tests := []struct {
		name string
		key  protocol.PublicKey
		msg  string
	}{
		{"path in kid", protocol.PublicKey{KeyID: "../k", Algorithm: ed.Algorithm, PEM: ed.PEM}, "key id"},
		{"long kid", protocol.PublicKey{KeyID: strings.Repeat("k", 65), Algorithm: ed.Algorithm, PEM: ed.PEM}, "key id"},
		{"algorithm mismatch", protocol.PublicKey{KeyID: "k1", Algorithm: AlgES256, PEM: ed.PEM}, "does not match"},
		{"algorithm mismatch ecdsa", protocol.PublicKey{KeyID: "k1", Algorithm: AlgEd25519, PEM: es.PEM}, "does not match"},
		{"bad pem", protocol.PublicKey{KeyID: "k1", Algorithm: AlgEd25519, PEM: "nope"}, "PEM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewVerifier(VerifierOptions{Keys: []protocol.PublicKey{tt.key}})
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("NewVerifier = %v, want an error containing %q", err, tt.msg)
			}
		})
	}
	if _, err := NewVerifier(VerifierOptions{Keys: []protocol.PublicKey{ed, ed}}); err == nil {
		t.Error("duplicate key accepted")
	}
}

func TestNewSignerRefuses(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := NewSigner(p384); err == nil || !strings.Contains(err.Error(), "P-256") {
		t.Errorf("P-384 key: %v", err)
	}
	f := newFixture(t)
	if _, _, err := f.ed.Issue(IssueOptions{}); err == nil {
		t.Error("token without subject issued")
	}
	if _, _, err := f.ed.Issue(IssueOptions{Subject: "a", TTL: -time.Second}); err == nil {
		t.Error("token with negative lifetime issued")
	}
}

// FuzzVerify feeds arbitrary text to Verify: it must never panic, and the
// only thing that may verify is the genuine token's content.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	good := fx.issue(f, fx.ed, IssueOptions{ID: "tok-1", TTL: time.Hour})
	v := fx.verifier(f)
	want, err := v.Verify(good, t0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(forge(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, map[string]any{"kid": want.KeyID}, goodClaims()))
	f.Add("e30.e30.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(tok, t0)
		if err == nil && c != want {
			t.Fatalf("forged token verified: %q → %+v", tok, c)
		}
	})
}
