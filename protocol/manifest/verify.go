package manifest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// MaxSignatureBytes bounds a signature as uploaded (base64 text or bundle).
const MaxSignatureBytes = 64 << 10

// Signature formats DecodeSignature recognises.
const (
	// FormatBase64 is what `cosign sign-blob --key K --output-signature F`
	// writes (and prints): the base64 (standard alphabet) of the raw
	// signature. Surrounding whitespace is ignored.
	FormatBase64 = "base64"
	// FormatBundle is what `cosign sign-blob --key K --bundle F` writes by
	// default: {"base64Signature": ..., "cert": ..., "rekorBundle": ...}.
	// Only base64Signature is used; a certificate or transparency-log
	// entry in it is ignored, because trust comes from the publisher keys.
	FormatBundle = "bundle"
	// FormatSigstoreBundle is the protobuf-spec bundle that
	// `cosign sign-blob --new-bundle-format --bundle F` writes
	// (media type application/vnd.dev.sigstore.bundle...+json) with a
	// messageSignature. Its messageDigest, when present, must be the
	// SHA-256 of the manifest. DSSE-envelope bundles (attestations) are
	// refused.
	FormatSigstoreBundle = "sigstore-bundle"
)

// Errors from signature checks; match them with errors.Is.
var (
	// ErrUnsigned: no signature was given.
	ErrUnsigned = errors.New("manifest is not signed")
	// ErrSignatureFormat: the signature is neither base64 text nor a bundle
	// this code understands.
	ErrSignatureFormat = errors.New("signature is not in a cosign format")
	// ErrNoTrustedKey: the publisher has no usable key.
	ErrNoTrustedKey = errors.New("no trusted key")
	// ErrBadSignature: the signature does not verify against any trusted key.
	ErrBadSignature = errors.New("signature does not verify")
)

// Signature is a decoded cosign signature.
type Signature struct {
	Format string // FormatBase64, FormatBundle or FormatSigstoreBundle
	Raw    []byte // the signature bytes (ASN.1 for ECDSA)
	// Digest is the SHA-256 a sigstore bundle says was signed (nil if the
	// format carries none).
	Digest []byte
}

// bundleJSON covers both bundle shapes: cosign's own and the sigstore
// protobuf-spec JSON. Unknown fields are ignored, as cosign does.
type bundleJSON struct {
	// cosign's bundle
	Base64Signature *string `json:"base64Signature"`
	// sigstore bundle
	MediaType        string `json:"mediaType"`
	MessageSignature *struct {
		MessageDigest *struct {
			Algorithm string `json:"algorithm"`
			Digest    []byte `json:"digest"`
		} `json:"messageDigest"`
		Signature []byte `json:"signature"`
	} `json:"messageSignature"`
	DSSEEnvelope json.RawMessage `json:"dsseEnvelope"`
}

// DecodeSignature decodes a signature as uploaded: base64 text or a bundle
// (see the Format constants). It checks the form only, not the signature.
func DecodeSignature(sig []byte) (Signature, error) {
	if len(sig) > MaxSignatureBytes {
		return Signature{}, fmt.Errorf("%w: %d bytes, limit %d", ErrSignatureFormat, len(sig), MaxSignatureBytes)
	}
	s := bytes.TrimSpace(sig)
	if len(s) == 0 {
		return Signature{}, ErrUnsigned
	}
	if s[0] != '{' {
		raw, err := base64.StdEncoding.DecodeString(string(s))
		if err != nil || len(raw) == 0 {
			return Signature{}, fmt.Errorf("%w: not base64 text and not a JSON bundle; pass the file `cosign sign-blob --output-signature` or `--bundle` wrote", ErrSignatureFormat)
		}
		return Signature{Format: FormatBase64, Raw: raw}, nil
	}
	var b bundleJSON
	if err := json.Unmarshal(s, &b); err != nil {
		return Signature{}, fmt.Errorf("%w: bundle is not valid JSON: %v", ErrSignatureFormat, err)
	}
	if strings.HasPrefix(b.MediaType, "application/vnd.dev.sigstore.bundle") {
		if b.DSSEEnvelope != nil || b.MessageSignature == nil {
			return Signature{}, fmt.Errorf("%w: sigstore bundle without a messageSignature (DSSE attestations are not manifest signatures); sign the manifest with `cosign sign-blob`", ErrSignatureFormat)
		}
		ms := b.MessageSignature
		if len(ms.Signature) == 0 {
			return Signature{}, fmt.Errorf("%w: sigstore bundle has an empty signature", ErrSignatureFormat)
		}
		out := Signature{Format: FormatSigstoreBundle, Raw: ms.Signature}
		if md := ms.MessageDigest; md != nil {
			if md.Algorithm != "SHA2_256" || len(md.Digest) != sha256.Size {
				return Signature{}, fmt.Errorf("%w: sigstore bundle digest is %s of %d bytes; want SHA2_256", ErrSignatureFormat, clip(md.Algorithm), len(md.Digest))
			}
			out.Digest = md.Digest
		}
		return out, nil
	}
	if b.MediaType != "" {
		return Signature{}, fmt.Errorf("%w: unknown bundle media type %q", ErrSignatureFormat, clip(b.MediaType))
	}
	if b.Base64Signature == nil || *b.Base64Signature == "" {
		return Signature{}, fmt.Errorf("%w: bundle has no base64Signature", ErrSignatureFormat)
	}
	raw, err := base64.StdEncoding.DecodeString(*b.Base64Signature)
	if err != nil || len(raw) == 0 {
		return Signature{}, fmt.Errorf("%w: bundle base64Signature is not base64", ErrSignatureFormat)
	}
	return Signature{Format: FormatBundle, Raw: raw}, nil
}

// ParseKey parses a publisher public key: PKIX PEM ("PUBLIC KEY", what
// cosign.pub holds) of an ECDSA, Ed25519 or RSA key.
// PKCS#1 "RSA PUBLIC KEY" PEM is accepted too, as cosign does.
func ParseKey(pemKey string) (crypto.PublicKey, error) {
	block, _ := pem.Decode([]byte(pemKey))
	if block == nil {
		return nil, errors.New("read public key: not PEM; pass the cosign.pub file (-----BEGIN PUBLIC KEY-----)")
	}
	var (
		pub crypto.PublicKey
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, fmt.Errorf("read public key: PEM block is %q, want PUBLIC KEY (cosign.pub)", clip(block.Type))
	}
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	return pub, nil
}

// VerifySignature checks that sig, a cosign signature (base64 text or
// bundle, see DecodeSignature), signs exactly the bytes of manifest with one
// of keys, the PEM public keys of publisher. It returns the index of the key
// that verified. Key kinds and algorithms are what `cosign verify-blob --key`
// uses: ECDSA (ASN.1 signature over the SHA-256 of the manifest), Ed25519
// (over the manifest itself) and RSA PKCS#1 v1.5 with SHA-256. A key that
// cannot be read is skipped (and named in the error if nothing verifies).
func VerifySignature(publisher string, manifest, sig []byte, keys []string) (int, error) {
	pubs := make([]crypto.PublicKey, len(keys))
	var bad []string
	for i, k := range keys {
		pub, err := ParseKey(k)
		if err != nil {
			bad = append(bad, fmt.Sprintf("key %d: %v", i+1, err))
			continue
		}
		pubs[i] = pub
	}
	i, err := VerifySignatureKeys(publisher, manifest, sig, pubs)
	if err != nil && len(bad) > 0 {
		return -1, fmt.Errorf("%w (unreadable: %s)", err, strings.Join(bad, "; "))
	}
	return i, err
}

// VerifySignatureKeys is VerifySignature with parsed keys; nil entries are
// skipped.
func VerifySignatureKeys(publisher string, manifest, sig []byte, keys []crypto.PublicKey) (int, error) {
	s, err := DecodeSignature(sig)
	if err != nil {
		return -1, fmt.Errorf("verify signature of publisher %s: %w", publisher, err)
	}
	if s.Digest != nil {
		sum := sha256.Sum256(manifest)
		if !bytes.Equal(sum[:], s.Digest) {
			return -1, fmt.Errorf("%w: the bundle was made for a different manifest (digest mismatch) of publisher %s", ErrBadSignature, publisher)
		}
	}
	usable := 0
	digest := sha256.Sum256(manifest)
	for i, pub := range keys {
		ok, known := verifyRaw(pub, manifest, digest[:], s.Raw)
		if !known {
			continue
		}
		usable++
		if ok {
			return i, nil
		}
	}
	if usable == 0 {
		return -1, fmt.Errorf("%w of publisher %s (%d keys configured); add one with `edgewarden publishers add %s --key cosign.pub`", ErrNoTrustedKey, publisher, len(keys), publisher)
	}
	return -1, fmt.Errorf("%w against any trusted key of publisher %s (%d keys configured)", ErrBadSignature, publisher, len(keys))
}

// verifyRaw checks one raw signature the way sigstore/sigstore's
// signature.LoadVerifier(pub, crypto.SHA256) does for `cosign verify-blob
// --key`, with the standard library alone (the agent stays small without
// sigstore's dependencies; the parity test in controller/catalog holds the
// two to the same verdicts): ECDSA over the SHA-256 digest, ASN.1 or IEEE
// P1363 encoded; Ed25519 over the message itself; RSA PKCS#1 v1.5 with
// SHA-256. known is false for a key kind it cannot use (or nil).
func verifyRaw(pub crypto.PublicKey, msg, digest, sig []byte) (ok, known bool) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil || k.X == nil || k.Y == nil {
			return false, false
		}
		var rs struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(sig, &rs); err == nil {
			return ecdsa.VerifyASN1(k, digest, sig), true
		}
		// Not ASN.1: IEEE P1363, r || s, each half the length.
		if len(sig) == 0 || len(sig) > 132 || len(sig)%2 != 0 {
			return false, true
		}
		r := new(big.Int).SetBytes(sig[:len(sig)/2])
		s := new(big.Int).SetBytes(sig[len(sig)/2:])
		return ecdsa.Verify(k, digest, r, s), true
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return false, false
		}
		return ed25519.Verify(k, msg, sig), true
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return false, false
		}
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig) == nil, true
	}
	return false, false
}
