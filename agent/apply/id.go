package apply

import (
	"crypto/rand"
	"encoding/hex"
)

// RandomID returns a random 128-bit id in hex, for events.
func RandomID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics on failure)
	return hex.EncodeToString(b[:])
}
