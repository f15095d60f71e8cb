package identity_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/edgewarden/edgewarden/agent/identity"
	"github.com/edgewarden/edgewarden/protocol"
)

func TestParseFingerprint(t *testing.T) {
	good := "sha256:" + strings.Repeat("AB", 32)
	got, err := identity.ParseFingerprint(good)
	if err != nil || got != strings.ToLower(good) {
		t.Fatalf("%q: %q %v", good, got, err)
	}
	for _, bad := range []string{"", strings.Repeat("ab", 32), "sha1:" + strings.Repeat("ab", 20), "sha256:xyz", "sha256:" + strings.Repeat("ab", 31)} {
		if _, err := identity.ParseFingerprint(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseControllerKey(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if _, err := identity.ParseControllerKey(protocol.PublicKey{KeyID: protocol.KeyID(pub), Algorithm: "Ed25519", PEM: pemKey}); err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]protocol.PublicKey{
		"key id mismatch": {KeyID: "0011", Algorithm: "Ed25519", PEM: pemKey},
		"other algorithm": {Algorithm: "ES256", PEM: pemKey},
		"no PEM":          {Algorithm: "Ed25519", PEM: "junk"},
	} {
		if _, err := identity.ParseControllerKey(k); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
