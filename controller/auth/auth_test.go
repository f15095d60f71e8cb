package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

func TestPasswordRoundTrip(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$") {
		t.Fatalf("hash %q is not an argon2id PHC string", h)
	}
	if err := CheckPassword(h, "correct horse battery"); err != nil {
		t.Fatalf("right password: %v", err)
	}
	for _, wrong := range []string{"", "correct horse batterY", "correct horse battery ", strings.Repeat("x", MaxPasswordBytes+1)} {
		if err := CheckPassword(h, wrong); !errors.Is(err, ErrWrongPassword) {
			t.Errorf("CheckPassword(%q) = %v, want ErrWrongPassword", wrong, err)
		}
	}
	h2, _ := HashPassword("correct horse battery")
	if h2 == h {
		t.Error("two hashes of one password are equal: salt is not random")
	}
}

func TestHashPasswordRefusesShortAndLong(t *testing.T) {
	for _, p := range []string{"", "short", strings.Repeat("a", MaxPasswordBytes+1)} {
		if _, err := HashPassword(p); err == nil {
			t.Errorf("HashPassword(len %d) succeeded", len(p))
		}
	}
}

func TestCheckPasswordBcrypt(t *testing.T) {
	h, err := bcrypt.GenerateFromPassword([]byte("secret-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPassword(string(h), "secret-pass"); err != nil {
		t.Fatal(err)
	}
	if err := CheckPassword(string(h), "secret-pasS"); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("got %v", err)
	}
}

func TestCheckPasswordRefusesBadHashes(t *testing.T) {
	salt := base64.RawStdEncoding.EncodeToString(make([]byte, 16))
	key := base64.RawStdEncoding.EncodeToString(make([]byte, 32))
	for _, h := range []string{
		"",
		"plaintext",
		"$argon2i$v=19$m=1024,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=18$m=1024,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + key, // would allocate 4 TiB
		"$argon2id$v=19$m=1024,t=1000000,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=1024,t=1,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=1024,t=1,p=1$!!$" + key,
		"$argon2id$v=19$m=1024,t=1,p=1$" + salt + "$",
		"$argon2id$v=19$m=1024,t=1,p=1$" + salt,
	} {
		err := CheckPassword(h, "whatever-password")
		if err == nil || errors.Is(err, ErrWrongPassword) {
			t.Errorf("CheckPassword(%q) = %v, want an unreadable-hash error", h, err)
		}
	}
}

func newTestSessions(t *testing.T, now func() time.Time) (*Sessions, ed25519.PrivateKey) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSessions(SessionOptions{Key: key, TTL: time.Hour, Leeway: 10 * time.Second, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return s, key
}

func TestSessionRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	s, _ := newTestSessions(t, func() time.Time { return now })
	tok, exp, err := s.Issue("alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(now.Add(time.Hour)) {
		t.Errorf("expires %v, want %v", exp, now.Add(time.Hour))
	}
	c, err := s.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.User() != "alice" || c.ID == "" || c.Issuer != "edgewarden-controller" {
		t.Errorf("claims %+v", c)
	}
	tok2, _, _ := s.Issue("alice", 0)
	c2, _ := s.Verify(tok2)
	if c2.ID == c.ID {
		t.Error("two sessions share a jti")
	}
	if _, _, err := s.Issue("", 0); err == nil {
		t.Error("Issue(\"\") succeeded")
	}
}

// sign makes a token with arbitrary claims and method, for attack tests.
func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestSessionVerifyRefusesForgeries(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s, key := newTestSessions(t, clock)
	pub := key.Public().(ed25519.PublicKey)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)

	good := func() jwt.MapClaims {
		return jwt.MapClaims{
			"iss": "edgewarden-controller", "sub": "alice", "aud": []string{Audience},
			"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "nbf": now.Unix(), "jti": "abc",
		}
	}
	with := func(k string, v any) jwt.MapClaims {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	if _, err := s.Verify(sign(t, jwt.SigningMethodEdDSA, key, good())); err != nil {
		t.Fatalf("control token refused: %v", err)
	}

	valid := sign(t, jwt.SigningMethodEdDSA, key, good())
	parts := strings.Split(valid, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[0] ^= 1
	tamperedSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	otherPayload := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"edgewarden-controller","sub":"admin","aud":["edgewarden-controller"],"exp":` +
		strconv.FormatInt(now.Add(time.Hour).Unix(), 10) + `,"jti":"x"}`))
	tamperedPayload := parts[0] + "." + otherPayload + "." + parts[2]

	cases := map[string]string{
		"alg none":               sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good()),
		"HS256 with public key":  sign(t, jwt.SigningMethodHS256, []byte(pub), good()),
		"HS256 with pem-ish key": sign(t, jwt.SigningMethodHS256, []byte(base64.StdEncoding.EncodeToString(pub)), good()),
		"wrong audience":         sign(t, jwt.SigningMethodEdDSA, key, with("aud", []string{"edgewarden-device"})),
		"no audience":            sign(t, jwt.SigningMethodEdDSA, key, with("aud", nil)),
		"wrong issuer":           sign(t, jwt.SigningMethodEdDSA, key, with("iss", "someone-else")),
		"expired":                sign(t, jwt.SigningMethodEdDSA, key, with("exp", now.Add(-time.Minute).Unix())),
		"missing exp":            sign(t, jwt.SigningMethodEdDSA, key, with("exp", nil)),
		"not yet valid":          sign(t, jwt.SigningMethodEdDSA, key, with("nbf", now.Add(time.Hour).Unix())),
		"issued in the future":   sign(t, jwt.SigningMethodEdDSA, key, with("iat", now.Add(time.Hour).Unix())),
		"no subject":             sign(t, jwt.SigningMethodEdDSA, key, with("sub", nil)),
		"no jti":                 sign(t, jwt.SigningMethodEdDSA, key, with("jti", nil)),
		"other key":              sign(t, jwt.SigningMethodEdDSA, otherKey, good()),
		"tampered signature":     tamperedSig,
		"tampered payload":       tamperedPayload,
		"empty":                  "",
		"garbage":                "not.a.jwt",
		"oversized":              strings.Repeat("a", MaxTokenBytes+1),
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := s.Verify(tok)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !errors.Is(err, ErrInvalidSession) {
				t.Errorf("error %v does not wrap ErrInvalidSession", err)
			}
		})
	}
}

func TestSessionExpiryAndLeeway(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	clock := now
	s, _ := newTestSessions(t, func() time.Time { return clock })
	tok, _, err := s.Issue("bob", 0)
	if err != nil {
		t.Fatal(err)
	}
	clock = now.Add(time.Hour + 5*time.Second) // within the 10s leeway
	if _, err := s.Verify(tok); err != nil {
		t.Fatalf("token within leeway refused: %v", err)
	}
	clock = now.Add(time.Hour + 11*time.Second)
	_, err = s.Verify(tok)
	if !errors.Is(err, ErrSessionExpired) {
		t.Fatalf("expired token: got %v, want ErrSessionExpired", err)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "session.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Fatal("second load returned a different key")
	}

	// A token from the first load verifies with the reloaded key.
	s1, _ := NewSessions(SessionOptions{Key: k1})
	s2, _ := NewSessions(SessionOptions{Key: k2})
	tok, _, _ := s1.Issue("carol", 0)
	if _, err := s2.Verify(tok); err != nil {
		t.Fatalf("token did not survive a restart: %v", err)
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: got %v", err)
	}

	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(bad); err == nil {
		t.Fatal("garbage key accepted")
	}
	if raw, _ := os.ReadFile(bad); string(raw) != "garbage" {
		t.Fatal("a bad key file was overwritten")
	}
}
