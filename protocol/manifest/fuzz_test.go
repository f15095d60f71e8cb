package manifest

import (
	"crypto/ed25519"
	"encoding/base64"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(validManifest))
	f.Add([]byte(`{"name":"a","version":"1.0.0-rc.1+b","publisher":"p","runtime":"systemd","exec":{"command":"x"},"artifacts":[{"path":"x","sha256":"` + hex64 + `","size":1}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Parse(raw)
		if err != nil {
			return
		}
		// Whatever parses obeys the rules the installer relies on.
		for _, a := range m.Artifacts {
			if CheckPath(a.Path) != nil || a.Size <= 0 || a.Size > MaxArtifactSize {
				t.Fatalf("Parse accepted artifact %+v", a)
			}
		}
		if CheckPath(m.Exec.Command) != nil || !NamePattern.MatchString(m.Name) {
			t.Fatalf("Parse accepted %+v", m)
		}
		if m.SemVer().String() != m.Version {
			t.Fatalf("version %q round-trips as %q", m.Version, m.SemVer())
		}
	})
}

func FuzzDecodeSignature(f *testing.F) {
	f.Add([]byte("MEUCIQD3fK1n5m8h1n9f1ZC3rEq1z5b1XnGq2Z5a5w1yP3c5QwIgKx"))
	f.Add([]byte(`{"base64Signature":"AAAA","rekorBundle":{"SignedEntryTimestamp":"x"}}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},"signature":"AAAA"}}`))
	f.Fuzz(func(t *testing.T, sig []byte) {
		d, err := DecodeSignature(sig)
		if err == nil && (len(d.Raw) == 0 || d.Format == "") {
			t.Fatalf("decoded %q to %+v", sig, d)
		}
	})
}

func FuzzVerifySignature(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	pemKey, _ := cryptoutils.MarshalPublicKeyToPEM(pub)
	m := []byte(validManifest)
	f.Add(m, ed25519.Sign(priv, m))
	f.Fuzz(func(t *testing.T, manifest, sig []byte) {
		for _, s := range [][]byte{sig, []byte(encodeB64(sig))} {
			_, err := VerifySignature("acme", manifest, s, []string{string(pemKey)})
			if err == nil && !ed25519.Verify(pub, manifest, rawOf(t, s)) {
				t.Fatalf("accepted a signature ed25519 refuses")
			}
		}
	})
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{">=1.2.0 <2.0.0", "^1.2", "~0.1", "=1.0.0", "*", "1"} {
		f.Add(s, "1.2.3")
	}
	f.Fuzz(func(t *testing.T, r, v string) {
		rg, err := ParseRange(r)
		if err != nil {
			return
		}
		if ver, err := ParseVersion(v); err == nil {
			rg.Contains(ver)
		}
	})
}

func encodeB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func rawOf(t *testing.T, s []byte) []byte {
	d, err := DecodeSignature(s)
	if err != nil {
		t.Fatal(err)
	}
	return d.Raw
}
