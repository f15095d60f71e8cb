package catalog

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// PasswordFunc returns the password of an encrypted cosign private key.
type PasswordFunc func() ([]byte, error)

// EnvPassword reads the key password from COSIGN_PASSWORD, as cosign does.
// An unset variable means the empty password (cosign's default for keys
// generated without one).
func EnvPassword() ([]byte, error) {
	return []byte(os.Getenv("COSIGN_PASSWORD")), nil
}

// Sign signs manifestBytes with the cosign private key file at keyPath (the
// cosign.key that `cosign generate-key-pair` writes: an encrypted
// "ENCRYPTED SIGSTORE PRIVATE KEY" or older "ENCRYPTED COSIGN PRIVATE KEY"
// PEM), decrypting it with password (nil: EnvPassword). It returns the
// base64 signature text, the same form `cosign sign-blob --key` writes, which
// `cosign verify-blob --key cosign.pub --insecure-ignore-tlog=true` accepts.
//
// ECDSA keys sign the SHA-256 of the manifest (ASN.1 signature), RSA keys
// use PKCS#1 v1.5 with SHA-256, and Ed25519 keys sign with plain Ed25519
// (not Ed25519ph), which is what verify-blob and the agent check.
func Sign(ctx context.Context, keyPath string, password PasswordFunc, manifestBytes []byte) (string, error) {
	pemBytes, err := os.ReadFile(keyPath)
	if err != nil {
		return "", fmt.Errorf("sign manifest: read key: %w", err)
	}
	if password == nil {
		password = EnvPassword
	}
	pass, err := password()
	if err != nil {
		return "", fmt.Errorf("sign manifest: key password: %w", err)
	}
	// An empty option list (rather than nil) keeps cosign from choosing
	// Ed25519ph for Ed25519 keys.
	sv, err := cosign.LoadPrivateKey(pemBytes, pass, &[]signature.LoadOption{})
	if err != nil {
		return "", fmt.Errorf("sign manifest: load cosign key %s: %w (is COSIGN_PASSWORD right?)", keyPath, err)
	}
	sig, err := sv.SignMessage(bytes.NewReader(manifestBytes), options.WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("sign manifest with %s: %w", keyPath, err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}
