package manifest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

type key struct {
	signer signature.Signer
	pem    string
}

func newKeys(t testing.TB) map[string]key {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	out := map[string]key{}
	for name, priv := range map[string]crypto.Signer{"ecdsa": ec, "ed25519": ed, "rsa": rs} {
		s, err := signature.LoadSigner(priv, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		p, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
		if err != nil {
			t.Fatal(err)
		}
		out[name] = key{s, string(p)}
	}
	return out
}

func sign(t testing.TB, k key, msg []byte) string {
	sig, err := k.signer.SignMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func TestVerifySignatureKeysAndForms(t *testing.T) {
	m := []byte(validManifest)
	keys := newKeys(t)
	for name, k := range keys {
		b64 := sign(t, k, m)
		sum := sha256.Sum256(m)
		for form, sig := range map[string]string{
			FormatBase64: b64 + "\n",
			FormatBundle: fmt.Sprintf(`{"base64Signature":%q,"cert":"","rekorBundle":null}`, b64),
			FormatSigstoreBundle: fmt.Sprintf(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","messageSignature":`+
				`{"messageDigest":{"algorithm":"SHA2_256","digest":%q},"signature":%q}}`, base64.StdEncoding.EncodeToString(sum[:]), b64),
		} {
			d, err := DecodeSignature([]byte(sig))
			if err != nil || d.Format != form {
				t.Fatalf("%s/%s: decode: %v %v", name, form, d.Format, err)
			}
			others := []string{keys["rsa"].pem, keys["ecdsa"].pem, keys["ed25519"].pem}
			i, err := VerifySignature("acme", m, []byte(sig), others)
			if err != nil || others[i] != k.pem {
				t.Errorf("%s/%s: verify: %d %v", name, form, i, err)
			}
			changed := bytes.Replace(m, []byte("hello"), []byte("hellp"), 1)
			if _, err := VerifySignature("acme", changed, []byte(sig), others); !errors.Is(err, ErrBadSignature) {
				t.Errorf("%s/%s: changed manifest: want ErrBadSignature, got %v", name, form, err)
			}
		}
	}
}

func TestVerifySignatureRefuses(t *testing.T) {
	m := []byte(validManifest)
	keys := newKeys(t)
	good := sign(t, keys["ecdsa"], m)
	trusted := []string{keys["ecdsa"].pem}
	for _, c := range []struct {
		name string
		sig  string
		keys []string
		want error
		msg  string
	}{
		{"unsigned", "", trusted, ErrUnsigned, "not signed"},
		{"untrusted key", sign(t, keys["ed25519"], m), []string{keys["ecdsa"].pem, keys["rsa"].pem}, ErrBadSignature,
			"signature does not verify against any trusted key of publisher acme (2 keys configured)"},
		{"no keys", good, nil, ErrNoTrustedKey, "publishers add acme"},
		{"unreadable key only", good, []string{"garbage"}, ErrNoTrustedKey, "unreadable: key 1"},
		{"not base64", "%%%", trusted, ErrSignatureFormat, "not base64"},
		{"bundle without signature", `{"cert":"x"}`, trusted, ErrSignatureFormat, "no base64Signature"},
		{"dsse bundle", `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{}}`, trusted, ErrSignatureFormat, "DSSE"},
		{"sha512 digest", `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","messageSignature":{"messageDigest":{"algorithm":"SHA2_512","digest":"AAAA"},"signature":"AAAA"}}`, trusted, ErrSignatureFormat, "SHA2_256"},
		{"too big", strings.Repeat("A", MaxSignatureBytes+1), trusted, ErrSignatureFormat, "limit"},
	} {
		_, err := VerifySignature("acme", m, []byte(c.sig), c.keys)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: want %v mentioning %q, got %v", c.name, c.want, c.msg, err)
		}
	}
}

func cosignCLI(t testing.TB) string {
	if p, err := exec.LookPath("cosign"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "cosign")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("cosign CLI not found on PATH or in $(go env GOPATH)/bin; install it with `go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5` (CI does)")
	return ""
}

// The real cosign CLI signs (encrypted key from generate-key-pair) and the
// lean verifier accepts all three output forms.
func TestCosignCLISignatures(t *testing.T) {
	bin := cosignCLI(t)
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=s3cret", "HOME="+dir, "TUF_ROOT="+filepath.Join(dir, ".tuf"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cosign %v: %v\n%s", args, err, out)
		}
	}
	os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(validManifest), 0o644)
	run("generate-key-pair")
	run("sign-blob", "--key", "cosign.key", "--tlog-upload=false", "-y", "--output-signature", "m.sig", "--bundle", "m.bundle", "manifest.json")
	run("sign-blob", "--key", "cosign.key", "--tlog-upload=false", "-y", "--new-bundle-format", "--bundle", "m.sigstore.json", "manifest.json")
	pub, _ := os.ReadFile(filepath.Join(dir, "cosign.pub"))
	other := newKeys(t)["ecdsa"].pem
	for _, f := range []string{"m.sig", "m.bundle", "m.sigstore.json"} {
		sig, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if i, err := VerifySignature("acme", []byte(validManifest), sig, []string{other, string(pub)}); err != nil || i != 1 {
			t.Errorf("%s: %d %v", f, i, err)
		}
		if _, err := VerifySignature("acme", []byte(validManifest+" "), sig, []string{string(pub)}); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s over another manifest: %v", f, err)
		}
	}
}
