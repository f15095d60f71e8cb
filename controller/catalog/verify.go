package catalog

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	cosignsig "github.com/sigstore/cosign/v2/pkg/signature"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// VerifyManifest checks that sig, a cosign signature as uploaded (base64
// text, cosign bundle or sigstore bundle), signs exactly manifestBytes with
// one of keys, the PEM public keys of publisher. It returns the index of the
// key that verified.
//
// Verification runs through cosign's own code, as `cosign verify-blob --key
// K --insecure-ignore-tlog=true` does: cosign.VerifyBlobSignature for base64
// signatures and cosign bundles, cosign.VerifyNewBundle for sigstore bundles.
// Transparency logs are not consulted (keys, not logs, carry trust here).
// Errors wrap the sentinels of protocol/manifest (ErrUnsigned,
// ErrSignatureFormat, ErrNoTrustedKey, ErrBadSignature) so callers treat
// both verifiers alike.
func VerifyManifest(ctx context.Context, publisher string, manifestBytes, sig []byte, keys []string) (int, error) {
	form, err := classify(sig)
	if err != nil {
		return -1, fmt.Errorf("verify signature of publisher %s: %w", publisher, err)
	}
	if err := form.checkDigest(manifestBytes); err != nil {
		return -1, fmt.Errorf("%w: the bundle was made for a different manifest (digest mismatch) of publisher %s", manifest.ErrBadSignature, publisher)
	}
	usable := 0
	var bad []string
	for i, k := range keys {
		v, err := cosignsig.LoadPublicKeyRaw([]byte(k), crypto.SHA256)
		if err != nil {
			bad = append(bad, fmt.Sprintf("key %d: %v", i+1, err))
			continue
		}
		usable++
		if form.verify(ctx, v, manifestBytes) == nil {
			return i, nil
		}
	}
	var out error
	if usable == 0 {
		out = fmt.Errorf("%w of publisher %s (%d keys configured); add one with `edgewarden publishers add %s --key cosign.pub`", manifest.ErrNoTrustedKey, publisher, len(keys), publisher)
	} else {
		out = fmt.Errorf("%w against any trusted key of publisher %s (%d keys configured)", manifest.ErrBadSignature, publisher, len(keys))
	}
	if len(bad) > 0 {
		out = fmt.Errorf("%w (unreadable: %s)", out, strings.Join(bad, "; "))
	}
	return -1, out
}

// sigForm is an uploaded signature sorted into what cosign verifies.
type sigForm struct {
	b64    string           // base64 signature (text or cosign bundle)
	bundle *sgbundle.Bundle // sigstore bundle
}

// classify sorts an uploaded signature the way verify-blob's --signature and
// --bundle flags would. Unlike verify-blob, surrounding whitespace is ignored
// and raw (non-base64) signature bytes are refused, as the agent does.
func classify(sig []byte) (sigForm, error) {
	if len(sig) > manifest.MaxSignatureBytes {
		return sigForm{}, fmt.Errorf("%w: %d bytes, limit %d", manifest.ErrSignatureFormat, len(sig), manifest.MaxSignatureBytes)
	}
	s := bytes.TrimSpace(sig)
	if len(s) == 0 {
		return sigForm{}, manifest.ErrUnsigned
	}
	if s[0] != '{' {
		if raw, err := base64.StdEncoding.DecodeString(string(s)); err != nil || len(raw) == 0 {
			return sigForm{}, fmt.Errorf("%w: not base64 text and not a JSON bundle; pass the file `cosign sign-blob --output-signature` or `--bundle` wrote", manifest.ErrSignatureFormat)
		}
		return sigForm{b64: string(s)}, nil
	}
	var probe struct {
		MediaType string `json:"mediaType"`
	}
	if err := json.Unmarshal(s, &probe); err != nil {
		return sigForm{}, fmt.Errorf("%w: bundle is not valid JSON: %v", manifest.ErrSignatureFormat, err)
	}
	if strings.HasPrefix(probe.MediaType, "application/vnd.dev.sigstore.bundle") {
		var b sgbundle.Bundle
		if err := b.UnmarshalJSON(s); err != nil {
			return sigForm{}, fmt.Errorf("%w: sigstore bundle: %v", manifest.ErrSignatureFormat, err)
		}
		if b.GetMessageSignature() == nil || len(b.GetMessageSignature().GetSignature()) == 0 {
			return sigForm{}, fmt.Errorf("%w: sigstore bundle without a messageSignature (DSSE attestations are not manifest signatures); sign the manifest with `cosign sign-blob`", manifest.ErrSignatureFormat)
		}
		return sigForm{bundle: &b}, nil
	}
	if probe.MediaType != "" {
		return sigForm{}, fmt.Errorf("%w: unknown bundle media type %q", manifest.ErrSignatureFormat, probe.MediaType)
	}
	var lp cosign.LocalSignedPayload
	if err := json.Unmarshal(s, &lp); err != nil {
		return sigForm{}, fmt.Errorf("%w: cosign bundle: %v", manifest.ErrSignatureFormat, err)
	}
	if lp.Base64Signature == "" {
		return sigForm{}, fmt.Errorf("%w: bundle has no base64Signature", manifest.ErrSignatureFormat)
	}
	if raw, err := base64.StdEncoding.DecodeString(lp.Base64Signature); err != nil || len(raw) == 0 {
		return sigForm{}, fmt.Errorf("%w: bundle base64Signature is not base64", manifest.ErrSignatureFormat)
	}
	return sigForm{b64: lp.Base64Signature}, nil
}

// checkDigest refuses a sigstore bundle whose messageDigest is not the
// SHA-256 of blob. sigstore-go checks only the signature over the blob and
// lets a contradicting digest pass; the agent refuses it, and so do we.
func (f sigForm) checkDigest(blob []byte) error {
	if f.bundle == nil {
		return nil
	}
	md := f.bundle.GetMessageSignature().GetMessageDigest()
	if md == nil {
		return nil
	}
	sum := sha256.Sum256(blob)
	if md.GetAlgorithm() != protocommon.HashAlgorithm_SHA2_256 || !bytes.Equal(md.GetDigest(), sum[:]) {
		return errors.New("digest mismatch")
	}
	return nil
}

// verify runs cosign's verification of the signature with one key.
func (f sigForm) verify(ctx context.Context, v signature.Verifier, blob []byte) error {
	co := &cosign.CheckOpts{SigVerifier: v, IgnoreTlog: true}
	if f.bundle != nil {
		co.NewBundleFormat = true
		co.TrustedMaterial = &root.BaseTrustedMaterial{} // keys only: no CA, log or TSA is trusted
		_, err := cosign.VerifyNewBundle(ctx, co, sgverify.WithArtifact(bytes.NewReader(blob)), f.bundle)
		return err
	}
	sig, err := static.NewSignature(blob, f.b64)
	if err != nil {
		return err
	}
	_, err = cosign.VerifyBlobSignature(ctx, sig, co)
	if err == nil {
		return nil
	}
	return errors.Join(manifest.ErrBadSignature, err)
}
