package catalog_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgewarden/edgewarden/controller/catalog"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

const testManifest = `{"name":"hello","version":"1.0.0","publisher":"acme","runtime":"process",` +
	`"exec":{"command":"bin/hello"},"artifacts":[{"path":"bin/hello","sha256":"%s","size":%d,"mode":493}]}`

func manifestFor(content []byte) []byte {
	sum := sha256.Sum256(content)
	return fmt.Appendf(nil, testManifest, fmt.Sprintf("%x", sum), len(content))
}

func TestSignVerifyRoundTrip(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	m := manifestFor([]byte("#!/bin/sh\necho hi\n"))
	for _, k := range []testKey{
		newECDSAKey(t, dir, "ec", "pw"),
		newEd25519Key(t, dir, "ed", ""),
		newRSAKey(t, dir, "rsa", "secret"),
	} {
		sig, err := catalog.Sign(ctx, k.Priv, func() ([]byte, error) { return []byte(k.Pass), nil }, m)
		if err != nil {
			t.Fatalf("Sign %s: %v", k.Priv, err)
		}
		if i, err := catalog.VerifyManifest(ctx, "acme", m, []byte(sig), []string{k.Pub}); err != nil || i != 0 {
			t.Errorf("controller verify %s: %d %v", k.Priv, i, err)
		}
		if i, err := manifest.VerifySignature("acme", m, []byte(sig), []string{k.Pub}); err != nil || i != 0 {
			t.Errorf("agent verify %s: %d %v", k.Priv, i, err)
		}
	}
}

func TestSignWrongPassword(t *testing.T) {
	dir := t.TempDir()
	k := newECDSAKey(t, dir, "ec", "right")
	_, err := catalog.Sign(context.Background(), k.Priv, func() ([]byte, error) { return []byte("wrong"), nil }, []byte("{}"))
	if err == nil || !strings.Contains(err.Error(), "COSIGN_PASSWORD") {
		t.Fatalf("want a password error, got %v", err)
	}
	t.Setenv("COSIGN_PASSWORD", "right")
	if _, err := catalog.Sign(context.Background(), k.Priv, nil, []byte("{}")); err != nil {
		t.Fatalf("Sign with COSIGN_PASSWORD: %v", err)
	}
}

// The real cosign CLI accepts what Sign produces.
func TestCosignVerifyBlobAcceptsSign(t *testing.T) {
	cosignCLI(t)
	dir := t.TempDir()
	m := manifestFor([]byte("payload"))
	mPath := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(mPath, m, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, k := range []testKey{newECDSAKey(t, dir, "ec", "pw"), newEd25519Key(t, dir, "ed", "pw")} {
		sig, err := catalog.Sign(context.Background(), k.Priv, func() ([]byte, error) { return []byte(k.Pass), nil }, m)
		if err != nil {
			t.Fatal(err)
		}
		sigPath := filepath.Join(dir, "manifest.sig")
		if err := os.WriteFile(sigPath, []byte(sig), 0o644); err != nil {
			t.Fatal(err)
		}
		pub := strings.TrimSuffix(k.Priv, ".key") + ".pub"
		out, err := runCosign(t, dir, "", "verify-blob", "--key", pub, "--signature", sigPath, "--insecure-ignore-tlog=true", mPath)
		if err != nil {
			t.Fatalf("cosign verify-blob refused our signature (%s): %v\n%s", k.Priv, err, out)
		}
		// And refuses it over another manifest: the check is real.
		other := filepath.Join(dir, "other.json")
		os.WriteFile(other, append(m, ' '), 0o644)
		if out, err := runCosign(t, dir, "", "verify-blob", "--key", pub, "--signature", sigPath, "--insecure-ignore-tlog=true", other); err == nil {
			t.Fatalf("cosign verify-blob accepted a signature over a different manifest\n%s", out)
		}
	}
}

// sigSet is the same manifest signed in every form the real cosign CLI
// writes, with a key pair made by `cosign generate-key-pair`.
type sigSet struct {
	pub                    string
	b64, bundle, newBundle []byte
}

func cosignSigned(t *testing.T, dir string, m []byte) sigSet {
	t.Helper()
	const pass = "cosign-pass"
	if out, err := runCosign(t, dir, pass, "generate-key-pair"); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	mPath := filepath.Join(dir, "manifest.json")
	os.WriteFile(mPath, m, 0o644)
	if out, err := runCosign(t, dir, pass, "sign-blob", "--key", "cosign.key", "--tlog-upload=false", "-y",
		"--output-signature", "m.sig", "--bundle", "m.bundle", mPath); err != nil {
		t.Fatalf("cosign sign-blob: %v\n%s", err, out)
	}
	if out, err := runCosign(t, dir, pass, "sign-blob", "--key", "cosign.key", "--tlog-upload=false", "-y",
		"--new-bundle-format", "--bundle", "m.sigstore.json", mPath); err != nil {
		t.Fatalf("cosign sign-blob --new-bundle-format: %v\n%s", err, out)
	}
	read := func(n string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return sigSet{pub: string(read("cosign.pub")), b64: read("m.sig"), bundle: read("m.bundle"), newBundle: read("m.sigstore.json")}
}

// Signatures made by the real cosign CLI verify with both verifiers, in all
// three forms, and fail for a changed manifest.
func TestCosignSignBlobAcceptedByBoth(t *testing.T) {
	cosignCLI(t)
	dir := t.TempDir()
	m := manifestFor([]byte("payload"))
	s := cosignSigned(t, dir, m)
	changed := manifestFor([]byte("payloaD"))
	for name, sig := range map[string][]byte{"base64": s.b64, "bundle": s.bundle, "sigstore-bundle": s.newBundle} {
		if _, err := catalog.VerifyManifest(context.Background(), "acme", m, sig, []string{s.pub}); err != nil {
			t.Errorf("controller refused cosign %s: %v", name, err)
		}
		if _, err := manifest.VerifySignature("acme", m, sig, []string{s.pub}); err != nil {
			t.Errorf("agent refused cosign %s: %v", name, err)
		}
		if _, err := catalog.VerifyManifest(context.Background(), "acme", changed, sig, []string{s.pub}); !errors.Is(err, manifest.ErrBadSignature) {
			t.Errorf("controller: cosign %s over another manifest: want ErrBadSignature, got %v", name, err)
		}
		if _, err := manifest.VerifySignature("acme", changed, sig, []string{s.pub}); !errors.Is(err, manifest.ErrBadSignature) {
			t.Errorf("agent: cosign %s over another manifest: want ErrBadSignature, got %v", name, err)
		}
	}
}

func TestVerifyErrorMessage(t *testing.T) {
	dir := t.TempDir()
	m := manifestFor([]byte("x"))
	signer := newECDSAKey(t, dir, "attacker", "")
	trusted := []string{newECDSAKey(t, dir, "a", "").Pub, newEd25519Key(t, dir, "b", "").Pub}
	sig, err := catalog.Sign(context.Background(), signer.Priv, func() ([]byte, error) { return nil, nil }, m)
	if err != nil {
		t.Fatal(err)
	}
	want := "signature does not verify against any trusted key of publisher acme (2 keys configured)"
	_, err1 := catalog.VerifyManifest(context.Background(), "acme", m, []byte(sig), trusted)
	_, err2 := manifest.VerifySignature("acme", m, []byte(sig), trusted)
	for _, err := range []error{err1, err2} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q, got %v", want, err)
		}
	}
}

// forms turns a base64 signature into the other uploaded forms.
func forms(sigB64 string, m []byte) map[string][]byte {
	sum := sha256.Sum256(m)
	return map[string][]byte{
		"base64":         []byte(sigB64),
		"base64-newline": []byte(sigB64 + "\n"),
		"bundle":         fmt.Appendf(nil, `{"base64Signature":%q}`, sigB64),
		"sigstore-bundle": fmt.Appendf(nil, `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json",`+
			`"verificationMaterial":{"publicKey":{"hint":"x"}},"messageSignature":{"messageDigest":`+
			`{"algorithm":"SHA2_256","digest":%q},"signature":%q}}`, base64.StdEncoding.EncodeToString(sum[:]), sigB64),
	}
}
