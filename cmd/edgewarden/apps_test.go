package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgewarden/edgewarden/protocol/manifest"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// TestAppsManifestAndSign builds a manifest from files and signs it with an
// encrypted cosign key file; the lean verifier the agent uses accepts it.
func TestAppsManifestAndSign(t *testing.T) {
	c := newCLI(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "run.sh")
	data := filepath.Join(dir, "data.bin")
	os.WriteFile(script, []byte("#!/bin/sh\nexec sleep 1\n"), 0o755)
	os.WriteFile(data, []byte("data"), 0o644)

	out := c.ok("apps", "manifest", "--name", "web", "--version", "1.2.3", "--publisher", "acme",
		"--exec", "bin/run.sh", "--arg", "--port=1", "--depends", "db=>=1.0.0", script+"=bin/run.sh", data)
	m, err := manifest.Parse([]byte(out))
	if err != nil {
		t.Fatalf("apps manifest wrote an invalid manifest: %v\n%s", err, out)
	}
	sum := sha256.Sum256([]byte("data"))
	if len(m.Artifacts) != 2 || m.Artifacts[0].Path != "bin/run.sh" || m.Artifacts[0].Mode != 0o755 ||
		m.Artifacts[1].Path != "data.bin" || m.Artifacts[1].SHA256 != hex.EncodeToString(sum[:]) || m.Artifacts[1].Size != 4 || m.Artifacts[1].Mode != 0 {
		t.Errorf("artifacts: %+v", m.Artifacts)
	}
	if len(m.Dependencies) != 1 || m.Exec.Args[0] != "--port=1" {
		t.Errorf("manifest: %+v", m)
	}
	mf := filepath.Join(dir, "manifest.json")
	os.WriteFile(mf, []byte(out), 0o644)

	// Bad manifests are usage errors, and print nothing.
	c.fails(exitUsage, `contains ".."`, "apps", "manifest", "--name", "web", "--version", "1.0.0", "--publisher", "acme", "--exec", "run.sh", script+"=../run.sh")
	c.fails(exitUsage, "version", "apps", "manifest", "--name", "web", "--version", "v1", "--publisher", "acme", "--exec", "run.sh", script)

	// A cosign key file without a password (COSIGN_PASSWORD unset).
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := cryptoutils.MarshalPrivateKeyToEncryptedDER(key, func(bool) ([]byte, error) { return []byte{}, nil })
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "cosign.key")
	os.WriteFile(keyFile, cryptoutils.PEMEncode(cryptoutils.EncryptedSigstorePrivateKeyPEMType, der), 0o600)
	pub, _ := cryptoutils.MarshalPublicKeyToPEM(key.Public())

	c.ok("apps", "sign", "--key", keyFile, mf)
	sig, err := os.ReadFile(mf + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := manifest.VerifySignature("acme", []byte(out), sig, []string{string(pub)}); err != nil {
		t.Errorf("the agent's verifier refuses what apps sign wrote: %v", err)
	}
	stdoutSig := c.ok("apps", "sign", "--key", keyFile, "--output", "-", mf)
	if _, err := manifest.VerifySignature("acme", []byte(out), []byte(stdoutSig), []string{string(pub)}); err != nil {
		t.Errorf("--output -: %v", err)
	}

	c.fails(exitUsage, "--key", "apps", "sign", mf)
	c.fails(exitFailure, "load cosign key", "apps", "sign", "--key", mf, mf)
	c.fails(exitUsage, "--manifest", "apps", "push", script)
	// The CLI matches files to the manifest before it contacts anyone.
	c.fails(exitUsage, "no ARTIFACT argument matches", "apps", "push", "--manifest", mf, "--signature", mf+".sig", script+"=bin/run.sh")
	c.fails(exitUsage, "not in the manifest", "apps", "push", "--manifest", mf, "--signature", mf+".sig", script+"=bin/run.sh", data, mf)
	if strings.Contains(c.run("apps", "check", "web", "1.0.0").stderr, "--group") == false {
		t.Error("apps check without --group does not ask for it")
	}
}
