package catalog_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/edgewarden/edgewarden/controller/catalog"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

type parityCase struct {
	name     string
	manifest []byte
	sig      []byte
	keys     []string
	accept   bool
}

// TestParity feeds the same good and bad manifests and signatures (base64,
// cosign bundle and sigstore bundle; ECDSA and Ed25519 keys) to the
// controller's cosign-based verifier and the agent's lean one and requires
// the same verdict, and the expected one.
func TestParity(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	m := manifestFor([]byte("app"))
	other := manifestFor([]byte("app2"))
	attacker := newECDSAKey(t, dir, "attacker", "")
	otherPublisher := newEd25519Key(t, dir, "globex", "")

	var cases []parityCase
	for _, k := range []testKey{newECDSAKey(t, dir, "ec", "p"), newEd25519Key(t, dir, "ed", "p")} {
		sig, err := catalog.Sign(ctx, k.Priv, func() ([]byte, error) { return []byte(k.Pass), nil }, m)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := base64.StdEncoding.DecodeString(sig)
		flipped := append([]byte(nil), raw...)
		flipped[len(flipped)/2] ^= 1
		kind := strings.TrimSuffix(k.Priv[strings.LastIndex(k.Priv, "/")+1:], ".key")
		for form, s := range forms(sig, m) {
			p := kind + "/" + form + "/"
			cases = append(cases,
				parityCase{p + "good", m, s, []string{k.Pub}, true},
				parityCase{p + "second of two keys", m, s, []string{attacker.Pub, k.Pub}, true},
				parityCase{p + "unreadable key then good key", m, s, []string{"not a key", k.Pub}, true},
				parityCase{p + "different manifest", other, s, []string{k.Pub}, false},
				parityCase{p + "untrusted key", m, s, []string{attacker.Pub}, false},
				parityCase{p + "other publisher's key", m, s, []string{otherPublisher.Pub}, false},
				parityCase{p + "no keys", m, s, nil, false},
				parityCase{p + "one byte of the manifest changed", append(append([]byte(nil), m[:len(m)-2]...), '}', '}'), s, []string{k.Pub}, false},
			)
		}
		for form, s := range forms(base64.StdEncoding.EncodeToString(flipped), m) {
			cases = append(cases, parityCase{kind + "/" + form + "/signature bit flipped", m, s, []string{k.Pub}, false})
		}
		cases = append(cases,
			parityCase{kind + "/sigstore bundle digest of other manifest", m, forms(sig, other)["sigstore-bundle"], []string{k.Pub}, false},
			parityCase{kind + "/raw DER, not base64", m, raw, []string{k.Pub}, false},
		)
	}
	good := []string{attacker.Pub}
	for _, c := range []struct{ name, sig string }{
		{"unsigned", ""},
		{"whitespace only", " \n"},
		{"garbage", "not a signature!!"},
		{"json without signature", `{"cert":"x"}`},
		{"bundle with bad base64", `{"base64Signature":"***"}`},
		{"json array", `[1,2]`},
		{"unknown media type", `{"mediaType":"application/x-other","base64Signature":"AAAA"}`},
		{"sigstore dsse bundle", `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{"payload":"e30=","payloadType":"x","signatures":[{"sig":"AAAA"}]}}`},
		{"sigstore bundle without signature", `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"x"}},"messageSignature":{}}`},
		{"oversized", strings.Repeat("A", manifest.MaxSignatureBytes+4)},
	} {
		cases = append(cases, parityCase{c.name, m, []byte(c.sig), good, false})
	}

	for _, c := range cases {
		_, errC := catalog.VerifyManifest(ctx, "acme", c.manifest, c.sig, c.keys)
		_, errA := manifest.VerifySignature("acme", c.manifest, c.sig, c.keys)
		if (errC == nil) != (errA == nil) {
			t.Errorf("%s: verdicts differ: controller %v, agent %v", c.name, errC, errA)
			continue
		}
		if (errC == nil) != c.accept {
			t.Errorf("%s: want accept=%v, got controller %v, agent %v", c.name, c.accept, errC, errA)
			continue
		}
		for _, sentinel := range []error{manifest.ErrUnsigned, manifest.ErrSignatureFormat, manifest.ErrNoTrustedKey} {
			if errors.Is(errC, sentinel) != errors.Is(errA, sentinel) {
				t.Errorf("%s: error kinds differ: controller %v, agent %v", c.name, errC, errA)
			}
		}
	}
	t.Logf("%d parity cases", len(cases))
}

// TestParityCosignCLI runs the parity check on signatures the real cosign
// CLI made.
func TestParityCosignCLI(t *testing.T) {
	cosignCLI(t)
	dir := t.TempDir()
	m := manifestFor([]byte("cli"))
	s := cosignSigned(t, dir, m)
	attacker := newEd25519Key(t, dir, "attacker", "")
	for name, sig := range map[string][]byte{"base64": s.b64, "bundle": s.bundle, "sigstore-bundle": s.newBundle} {
		for _, c := range []parityCase{
			{name + "/good", m, sig, []string{s.pub}, true},
			{name + "/untrusted", m, sig, []string{attacker.Pub}, false},
			{name + "/other manifest", manifestFor([]byte("cli2")), sig, []string{s.pub}, false},
		} {
			_, errC := catalog.VerifyManifest(context.Background(), "acme", c.manifest, c.sig, c.keys)
			_, errA := manifest.VerifySignature("acme", c.manifest, c.sig, c.keys)
			if (errC == nil) != c.accept || (errA == nil) != c.accept {
				t.Errorf("%s: want accept=%v, got controller %v, agent %v", c.name, c.accept, errC, errA)
			}
		}
	}
}
