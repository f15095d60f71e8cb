package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/protocol"
)

func newAuthority(t *testing.T) (*Authority, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	a, err := Init(dir, InitOptions{})
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return a, dir
}

func csrFor(t *testing.T, cn string, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatalf("create CSR: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func p256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestInitLoadRoundTrip(t *testing.T) {
	a, dir := newAuthority(t)

	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %04o, want 0700", info.Mode().Perm())
	}
	for _, name := range allFiles {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if strings.HasSuffix(name, ".key") && info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %04o, want 0600", name, info.Mode().Perm())
		}
	}

	b, err := Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if a.Fingerprint() != b.Fingerprint() {
		t.Errorf("fingerprint changed across load: %s vs %s", a.Fingerprint(), b.Fingerprint())
	}
	if !bytes.Equal(a.CAPEM(), b.CAPEM()) {
		t.Error("CA PEM changed across load")
	}
	if !a.SigningKey().Equal(b.SigningKey()) {
		t.Error("signing key changed across load")
	}
	ka, kb := a.ControllerKeys(), b.ControllerKeys()
	if len(ka) != 1 || ka[0] != kb[0] {
		t.Fatalf("controller keys differ: %+v vs %+v", ka, kb)
	}
	if ka[0].Algorithm != "Ed25519" || ka[0].KeyID != protocol.KeyID(a.SigningKey().Public().(ed25519.PublicKey)) {
		t.Errorf("controller key %+v", ka[0])
	}
	block, _ := pem.Decode([]byte(ka[0].PEM))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil || !a.SigningKey().Public().(ed25519.PublicKey).Equal(pub) {
		t.Errorf("controller key PEM does not hold the signing key: %v", err)
	}

	// CA file on disk is what CAPEM returns.
	onDisk, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil || !bytes.Equal(onDisk, a.CAPEM()) {
		t.Errorf("ca.pem differs from CAPEM (%v)", err)
	}
}

func TestInitRefusesOverwrite(t *testing.T) {
	_, dir := newAuthority(t)
	before, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Init(dir, InitOptions{}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second Init: err = %v, want already exists", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if !bytes.Equal(before, after) {
		t.Fatal("second Init changed ca.key")
	}

	// A single leftover file is enough to refuse, and nothing else is written.
	dir2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir2, SigningKeyFile), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(dir2, InitOptions{}); err == nil {
		t.Fatal("Init over an existing signing.key succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir2, CAFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused Init still wrote ca.pem: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "run edgewarden-controller init first") {
		t.Fatalf("Load of empty dir: %v", err)
	}

	_, dir := newAuthority(t)
	if err := os.Chmod(filepath.Join(dir, SigningKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Load with world-readable key: %v", err)
	}
	os.Chmod(filepath.Join(dir, SigningKeyFile), 0o600)

	// A CA key from another identity does not fit the CA certificate.
	_, other := newAuthority(t)
	otherKey, _ := os.ReadFile(filepath.Join(other, CAKeyFile))
	if err := os.WriteFile(filepath.Join(dir, CAKeyFile), otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Fatalf("Load with mismatched CA key: %v", err)
	}
}

func TestServerCertificate(t *testing.T) {
	dir := t.TempDir()
	a, err := Init(filepath.Join(dir, "d"), InitOptions{Hosts: []string{"controller.plant.example", "10.1.2.3"}})
	if err != nil {
		t.Fatal(err)
	}
	leaf := a.server.Leaf
	for _, name := range []string{"controller.plant.example", "10.1.2.3"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: a.CACertPool()}); err != nil {
			t.Errorf("server cert not valid for %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: a.CACertPool()}); err == nil {
		t.Error("server cert valid for localhost although Hosts did not name it")
	}
	// The server certificate must not work as a client identity.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: a.CACertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("server certificate verifies for client auth")
	}

	def, _ := newAuthority(t)
	for _, name := range DefaultHosts {
		if _, err := def.server.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: def.CACertPool()}); err != nil {
			t.Errorf("default server cert not valid for %s: %v", name, err)
		}
	}
	c := def.controller.Leaf
	if c.Subject.CommonName != ControllerIdentity {
		t.Errorf("controller cert CN %q", c.Subject.CommonName)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: def.CACertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("controller cert does not verify for client auth: %v", err)
	}
	if def.MQTTServerConfig().ClientAuth != tls.RequireAndVerifyClientCert {
		t.Error("MQTT server config does not require client certificates")
	}
}

func TestSignDeviceCSR(t *testing.T) {
	a, _ := newAuthority(t)
	for _, tc := range []struct {
		name string
		key  crypto.Signer
	}{
		{"p256", p256(t)},
		{"ed25519", func() crypto.Signer { _, k, _ := ed25519.GenerateKey(rand.Reader); return k }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certPEM, serial, err := a.SignDeviceCSR(csrFor(t, "press-7", tc.key), "press-7", time.Hour)
			if err != nil {
				t.Fatalf("SignDeviceCSR: %v", err)
			}
			block, _ := pem.Decode(certPEM)
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: a.CACertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Fatalf("device cert does not verify for client auth: %v", err)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: a.CACertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
				t.Error("device cert verifies for server auth")
			}
			if cert.Subject.CommonName != "press-7" || cert.IsCA {
				t.Errorf("cert subject %v, IsCA %v", cert.Subject, cert.IsCA)
			}
			if got := cert.SerialNumber.Text(16); strings.TrimLeft(serial, "0") != got || len(serial) != 32 {
				t.Errorf("serial %q, cert serial %s", serial, got)
			}
			if !tc.key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
				t.Error("certificate holds a different key")
			}
			if d := cert.NotAfter.Sub(time.Now()); d > time.Hour+time.Minute || d < 50*time.Minute {
				t.Errorf("validity ends in %s, want about 1h", d)
			}
		})
	}

	_, s1, _ := a.SignDeviceCSR(csrFor(t, "a", p256(t)), "a", 0)
	_, s2, _ := a.SignDeviceCSR(csrFor(t, "a", p256(t)), "a", 0)
	if s1 == s2 {
		t.Error("two certificates share a serial")
	}
}

func TestSignDeviceCSRRefuses(t *testing.T) {
	a, _ := newAuthority(t)
	key := p256(t)
	good := csrFor(t, "press-7", key)

	// Flip a byte in the signature (the last bytes of the DER).
	block, _ := pem.Decode(good)
	der := append([]byte(nil), block.Bytes...)
	der[len(der)-3] ^= 0xff
	badSig := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})

	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)

	for _, tc := range []struct {
		name, id, want string
		csr            []byte
	}{
		{"someone else's id", "press-8", "CSR names \"press-7\" but you are enrolling as \"press-8\"", good},
		{"bad signature", "press-7", "", badSig},
		{"rsa-1024", "press-7", "use an ECDSA P-256 or Ed25519 key", csrFor(t, "press-7", rsaKey)},
		{"p384", "press-7", "use an ECDSA P-256 or Ed25519 key", csrFor(t, "press-7", p384)},
		{"garbage", "press-7", "not a PEM-encoded", []byte("hello")},
		{"certificate instead of CSR", "press-7", "not a PEM-encoded", a.CAPEM()},
		{"controller identity", ControllerIdentity, "invalid device id", csrFor(t, ControllerIdentity, key)},
		{"wildcard id", "+", "invalid device id", csrFor(t, "+", key)},
		{"huge", "press-7", "limit", bytes.Repeat([]byte("A"), MaxCSRBytes+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, serial, err := a.SignDeviceCSR(tc.csr, tc.id, 0)
			if err == nil {
				t.Fatalf("accepted: serial %s", serial)
			}
			if cert != nil {
				t.Error("returned a certificate with an error")
			}
			if !errors.Is(err, ErrBadCSR) {
				t.Errorf("error %v does not wrap ErrBadCSR", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestFingerprintMatchesOpenSSL(t *testing.T) {
	a, dir := newAuthority(t)
	block, _ := pem.Decode(a.CAPEM())
	sum := sha256.Sum256(block.Bytes)
	if want := "sha256:" + hex.EncodeToString(sum[:]); a.Fingerprint() != want {
		t.Fatalf("Fingerprint %s, want %s", a.Fingerprint(), want)
	}

	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed; computed fingerprint checked above")
	}
	out, err := exec.Command(openssl, "x509", "-noout", "-fingerprint", "-sha256", "-in", filepath.Join(dir, CAFile)).Output()
	if err != nil {
		t.Fatalf("openssl: %v", err)
	}
	// "sha256 Fingerprint=AB:CD:..."
	_, fp, ok := strings.Cut(strings.TrimSpace(string(out)), "=")
	if !ok {
		t.Fatalf("unexpected openssl output %q", out)
	}
	want := "sha256:" + strings.ToLower(strings.ReplaceAll(fp, ":", ""))
	if a.Fingerprint() != want {
		t.Fatalf("Fingerprint %s, openssl says %s", a.Fingerprint(), want)
	}
}
