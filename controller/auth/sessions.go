package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Audience is the audience of controller session tokens. Tokens for local
// access on devices use a different audience, so one can never stand in for
// the other.
const Audience = "edgewarden-controller"

// Errors returned by Sessions.Verify. Every refusal wraps ErrInvalidSession;
// an expired token also wraps ErrSessionExpired.
var (
	ErrInvalidSession = errors.New("invalid session token")
	ErrSessionExpired = errors.New("session expired")
)

// MaxTokenBytes bounds a session token; longer input is refused unparsed.
const MaxTokenBytes = 4096

// Claims are the claims of a session token. Subject is the user's
// immutable id (never its name, which can be reused).
type Claims struct {
	jwt.RegisteredClaims
	// Gen is the user's session generation when the session was issued;
	// the controller refuses it once the user's generation moved on.
	Gen int64 `json:"gen"`
}

// User returns the id of the user the session belongs to.
func (c *Claims) User() string { return c.Subject }

// SessionOptions configure Sessions.
type SessionOptions struct {
	// Key signs and verifies the tokens. Required.
	Key ed25519.PrivateKey
	// Issuer is the iss claim written and required. Empty means
	// "edgewarden-controller".
	Issuer string
	// TTL is how long a session lasts. Zero means 12 hours.
	TTL time.Duration
	// Leeway is the clock skew tolerated on exp, nbf and iat. Zero means
	// 30 seconds; it is capped at 5 minutes.
	Leeway time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Sessions issues and verifies session tokens: JWTs signed with EdDSA
// (Ed25519) only, audience Audience, a fixed issuer, an expiry (required),
// and a unique id. It is safe for concurrent use.
type Sessions struct {
	key    ed25519.PrivateKey
	pub    ed25519.PublicKey
	issuer string
	ttl    time.Duration
	now    func() time.Time
	parser *jwt.Parser
}

// NewSessions returns Sessions for opts.
func NewSessions(opts SessionOptions) (*Sessions, error) {
	if len(opts.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("sessions: an Ed25519 private key is required")
	}
	s := &Sessions{
		key:    opts.Key,
		pub:    opts.Key.Public().(ed25519.PublicKey),
		issuer: opts.Issuer,
		ttl:    opts.TTL,
		now:    opts.Now,
	}
	if s.issuer == "" {
		s.issuer = "edgewarden-controller"
	}
	if s.ttl <= 0 {
		s.ttl = 12 * time.Hour
	}
	if s.now == nil {
		s.now = time.Now
	}
	leeway := opts.Leeway
	if leeway <= 0 {
		leeway = 30 * time.Second
	}
	leeway = min(leeway, 5*time.Minute)
	s.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithAudience(Audience),
		jwt.WithIssuer(s.issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(s.now),
		jwt.WithStrictDecoding(),
	)
	return s, nil
}

// TTL returns how long issued sessions last.
func (s *Sessions) TTL() time.Duration { return s.ttl }

// Issue returns a new session token for the user with immutable id user,
// in session generation gen, and when it expires.
func (s *Sessions) Issue(user string, gen int64) (token string, expiresAt time.Time, err error) {
	if user == "" {
		return "", time.Time{}, errors.New("issue session: empty user id")
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", time.Time{}, fmt.Errorf("issue session: read random id: %w", err)
	}
	now := s.now().Truncate(time.Second)
	expiresAt = now.Add(s.ttl)
	claims := Claims{jwt.RegisteredClaims{
		Issuer:    s.issuer,
		Subject:   user,
		Audience:  jwt.ClaimStrings{Audience},
		ExpiresAt: jwt.NewNumericDate(expiresAt),
		NotBefore: jwt.NewNumericDate(now),
		IssuedAt:  jwt.NewNumericDate(now),
		ID:        base64.RawURLEncoding.EncodeToString(jti),
	}, gen}
	token, err = jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(s.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issue session: sign: %w", err)
	}
	return token, expiresAt, nil
}

// Verify checks token and returns its claims. It refuses any algorithm but
// EdDSA, any key but the session key, another audience or issuer, a token
// without expiry or subject or id, and an expired one (ErrSessionExpired).
func (s *Sessions) Verify(token string) (*Claims, error) {
	if len(token) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: token is longer than %d bytes", ErrInvalidSession, MaxTokenBytes)
	}
	var claims Claims
	_, err := s.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		return s.pub, nil
	})
	if errors.Is(err, jwt.ErrTokenExpired) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSession, ErrSessionExpired)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSession, err)
	}
	if claims.Subject == "" || claims.ID == "" {
		return nil, fmt.Errorf("%w: token has no subject or no id", ErrInvalidSession)
	}
	return &claims, nil
}

// LoadOrCreateKey reads the Ed25519 private key (PKCS#8 PEM) at path, or
// creates one there (mode 0600, parent directory 0700) if the file does not
// exist. A key file readable by group or others is refused.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	key, err := loadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("create session key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("create session key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create session key: %w", err)
	}
	// O_EXCL: if another process created the file meanwhile, use its key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("create session key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("create session key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("create session key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("create session key %s: %w", path, err)
	}
	return priv, nil
}

func loadKey(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("session key %s is readable by others (mode %v): run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read session key: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("session key %s is not a PEM \"PRIVATE KEY\"; move it away to create a new one (existing sessions end)", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("session key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("session key %s is a %T, want Ed25519", path, k)
	}
	return priv, nil
}
