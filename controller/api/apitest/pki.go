package apitest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/controller/api"
	"github.com/edgewarden/edgewarden/protocol"
)

// PKI is an in-memory api.PKI with an ECDSA P-256 CA.
type PKI struct {
	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate
	caPEM  []byte
	docKey ed25519.PrivateKey
	// Signed counts the certificates signed.
	Signed atomic.Int64
}

var _ api.PKI = (*PKI)(nil)

// NewPKI creates a CA and a document-signing key.
func NewPKI() (*PKI, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "apitest CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	_, docKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &PKI{caKey: key, caCert: cert, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), docKey: docKey}, nil
}

// SignDeviceCSR implements api.PKI.
func (p *PKI) SignDeviceCSR(csrPEM []byte, deviceID string, validity time.Duration) ([]byte, string, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil {
		return nil, "", fmt.Errorf("not a PEM CSR")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, "", err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, "", err
	}
	if csr.Subject.CommonName != deviceID {
		return nil, "", fmt.Errorf("CSR names %q, not %q", csr.Subject.CommonName, deviceID)
	}
	serial := make([]byte, 16)
	if _, err := rand.Read(serial); err != nil {
		return nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).SetBytes(serial),
		Subject:      pkix.Name{CommonName: deviceID},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, csr.PublicKey, p.caKey)
	if err != nil {
		return nil, "", err
	}
	p.Signed.Add(1)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), hex.EncodeToString(serial), nil
}

// CAPEM implements api.PKI.
func (p *PKI) CAPEM() []byte { return p.caPEM }

// CACert returns the CA certificate.
func (p *PKI) CACert() *x509.Certificate { return p.caCert }

// ControllerKeys implements api.PKI.
func (p *PKI) ControllerKeys() []protocol.PublicKey {
	pub := p.docKey.Public().(ed25519.PublicKey)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	return []protocol.PublicKey{{
		KeyID:     protocol.KeyID(pub),
		Algorithm: "Ed25519",
		PEM:       string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	}}
}

// NewCSR returns a PEM CSR for deviceID with a new ECDSA P-256 key.
func NewCSR(t testing.TB, deviceID string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: deviceID}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}
