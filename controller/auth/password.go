// Package auth holds the controller's user authentication: password hashing
// (argon2id, stored as a PHC string; bcrypt hashes are also accepted) and
// session tokens (JWTs signed with an Ed25519 key that lives in the
// controller's data directory).
//
// Sessions prove who a user is; what the user may do is decided elsewhere
// (the access evaluator), on every request.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// ErrWrongPassword is returned by CheckPassword when the password does not
// match the hash.
var ErrWrongPassword = errors.New("wrong password")

// argon2id parameters for new hashes: the OWASP minimum for argon2id
// (19 MiB, 2 passes, 1 lane), which keeps a login around 20-30 ms.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16

	// Limits on the parameters of a stored hash, so a tampered or corrupt
	// hash cannot make a login allocate gigabytes or spin for minutes.
	maxArgonMemoryKiB = 1 << 20 // 1 GiB
	maxArgonTime      = 16
	maxArgonThreads   = 64

	// MaxPasswordBytes bounds a password: longer input is refused before it
	// is hashed (bcrypt silently ignores bytes beyond 72; argon2 would hash
	// anything, so the bound only protects against abuse).
	MaxPasswordBytes = 1024
)

// HashPassword checks password against the policy (CheckPolicy), then
// hashes it with argon2id and a random salt and returns the PHC string ("$argon2id$v=19$m=...,t=...,p=...$salt$hash").
func HashPassword(password string) (string, error) {
	if err := CheckPolicy(password); err != nil {
		return "", err
	}
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: read random salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemoryKiB, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPassword reports whether password matches hash (an argon2id PHC
// string or a bcrypt hash). It returns nil on a match, ErrWrongPassword on a
// mismatch, and another error when hash cannot be read. The comparison of
// the derived keys is constant-time.
func CheckPassword(hash, password string) error {
	if len(password) > MaxPasswordBytes {
		return ErrWrongPassword
	}
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		return checkArgon2id(hash, password)
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return ErrWrongPassword
		}
		if err != nil {
			return fmt.Errorf("check password: unreadable bcrypt hash: %w", err)
		}
		return nil
	}
	return errors.New("check password: the stored hash is neither argon2id nor bcrypt")
}

// dummyHash is checked against when a user does not exist, so that a login
// for an unknown user costs as much as one for a known user.
var dummyHash = sync.OnceValue(func() string {
	h, err := HashPassword("edgewarden-no-such-user")
	if err != nil {
		panic(err) // only fails when the system has no randomness
	}
	return h
})

// CheckDummy spends the time of one CheckPassword without a real hash. Call
// it when the user is unknown so response times do not reveal which user
// names exist.
func CheckDummy(password string) {
	_ = CheckPassword(dummyHash(), password)
}

func checkArgon2id(hash, password string) error {
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	parts := strings.Split(hash, "$")
	if len(parts) != 6 {
		return errors.New("check password: malformed argon2id hash")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return fmt.Errorf("check password: unsupported argon2 version %q", parts[2])
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return fmt.Errorf("check password: malformed argon2id parameters %q", parts[3])
	}
	if m == 0 || m > maxArgonMemoryKiB || t == 0 || t > maxArgonTime || p == 0 || p > maxArgonThreads {
		return fmt.Errorf("check password: argon2id parameters %q are out of range", parts[3])
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return errors.New("check password: malformed argon2id salt")
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) < 16 || len(want) > 128 {
		return errors.New("check password: malformed argon2id key")
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrWrongPassword
	}
	return nil
}
