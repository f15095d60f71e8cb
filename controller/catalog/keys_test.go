package catalog_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// testKey is a cosign-format key pair on disk.
type testKey struct {
	Priv string // path of the encrypted private key (cosign.key)
	Pub  string // PEM public key (cosign.pub content)
	Pass string
}

// writeKey writes priv as an encrypted cosign key file, as
// `cosign generate-key-pair` would.
func writeKey(t testing.TB, dir, name string, priv crypto.Signer, pass string) testKey {
	t.Helper()
	der, err := cryptoutils.MarshalPrivateKeyToEncryptedDER(priv, func(bool) ([]byte, error) { return []byte(pass), nil })
	if err != nil {
		t.Fatal(err)
	}
	pemPriv := cryptoutils.PEMEncode(cryptoutils.EncryptedSigstorePrivateKeyPEMType, der)
	pub, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".key")
	if err := os.WriteFile(path, pemPriv, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".pub"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return testKey{Priv: path, Pub: string(pub), Pass: pass}
}

func newECDSAKey(t testing.TB, dir, name, pass string) testKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return writeKey(t, dir, name, k, pass)
}

func newEd25519Key(t testing.TB, dir, name, pass string) testKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return writeKey(t, dir, name, k, pass)
}

func newRSAKey(t testing.TB, dir, name, pass string) testKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return writeKey(t, dir, name, k, pass)
}

// cosignCLI returns the path of the real cosign CLI or skips the test.
func cosignCLI(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("cosign"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "cosign")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("cosign CLI not found on PATH or in $(go env GOPATH)/bin; install it with `go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5` (CI does)")
	return ""
}

// runCosign runs the cosign CLI in dir with COSIGN_PASSWORD set and no
// network-dependent trust roots.
func runCosign(t testing.TB, dir, pass string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(cosignCLI(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD="+pass, "TUF_ROOT="+filepath.Join(dir, ".tuf"), "HOME="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}
