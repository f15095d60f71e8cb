package apitest

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/controller/api"
	"github.com/edgewarden/edgewarden/controller/auth"
	"github.com/edgewarden/edgewarden/controller/store"
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

// Admin credentials of every Server.
const (
	AdminUser     = "admin"
	AdminPassword = "admin-password-1"
)

// Server runs the real API over HTTPS on 127.0.0.1 with an in-memory Store
// and PKI, and an active admin user (AdminUser, AdminPassword).
type Server struct {
	*httptest.Server
	Store    *Store
	PKI      *PKI
	Sessions *auth.Sessions
	API      *api.API
	// CAFile is a PEM file holding the certificate that clients must
	// trust to reach the server.
	CAFile string
	// Changes counts calls of Options.Changed.
	Changes atomic.Int64
}

// NewServer starts a Server, closed when the test ends. configure, if not
// nil, may change the API options before the API is built.
func NewServer(t testing.TB, configure func(*api.Options)) *Server {
	t.Helper()
	pki, err := NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := auth.NewSessions(auth.SessionOptions{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Store: NewStore(), PKI: pki, Sessions: sessions}
	hash, err := auth.HashPassword(AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.CreateUser(context.Background(), store.User{Name: AdminUser, PasswordHash: hash, State: store.UserActive, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	opts := api.Options{
		Store:      s.Store,
		PKI:        pki,
		Membership: s.Store,
		Sessions:   sessions,
		Changed:    func() { s.Changes.Add(1) },
		MQTTURL:    "tls://127.0.0.1:8883",
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if configure != nil {
		configure(&opts)
	}
	s.API = api.New(opts)
	s.Server = httptest.NewTLSServer(s.API.Handler())
	t.Cleanup(s.Server.Close)
	s.CAFile = filepath.Join(t.TempDir(), "ca.pem")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Server.Certificate().Raw})
	if err := os.WriteFile(s.CAFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// AddUser adds a user with a password and state.
func (s *Server) AddUser(t testing.TB, name, password, state string) {
	t.Helper()
	hash, err := auth.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.CreateUser(context.Background(), store.User{Name: name, PasswordHash: hash, State: state, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
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
