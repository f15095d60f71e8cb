// Package pki holds the controller's identity: its certificate authority
// (which issues device client certificates at enrollment), the TLS server
// certificate used for both HTTPS and MQTT, the client certificate the
// controller presents to an external MQTT broker, and the Ed25519 key that
// signs desired-state documents.
//
// Init creates all of it once, in the controller's data directory; Load reads
// it back. Private keys are PKCS#8 PEM files with mode 0600 and Load refuses
// keys that other users can read.
//
// Files in the data directory:
//
//	ca.pem, ca.key                  ECDSA P-256 self-signed CA (10 years)
//	server.pem, server.key          TLS server certificate (server-auth only)
//	controller.pem, controller.key  client certificate, CN = ControllerIdentity
//	signing.key                     Ed25519 key that signs desired-state documents
//	signing.next.key                during a key rotation: the announced next key
//	signing.prev.key                after a rotation: the retired key, still co-signing
//
// Key rotation (see CreateNextSigningKey and PromoteSigningKey): the next key
// is announced in every document, signed by the current key, so agents learn
// to trust it; promotion makes it the current key and keeps the old one as
// the previous key, which co-signs documents so that agents that missed the
// announcement still accept them (and learn the new key from them). Deleting
// the previous key file retires it.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/edgewarden/edgewarden/protocol"
)

// ControllerIdentity is the common name of the controller's client
// certificate and therefore its MQTT identity. A colon never appears in a
// device id (see protocol.ValidateDeviceID), so no device can be issued a
// certificate with this name.
const ControllerIdentity = "edgewarden:controller"

// File names inside the data directory.
const (
	CAFile             = "ca.pem"
	CAKeyFile          = "ca.key"
	ServerCertFile     = "server.pem"
	ServerKeyFile      = "server.key"
	ControllerCertFile = "controller.pem"
	ControllerKeyFile  = "controller.key"
	SigningKeyFile     = "signing.key"
	NextSigningKeyFile = "signing.next.key"
	PrevSigningKeyFile = "signing.prev.key"
)

// allFiles lists every file Init writes, in the order it writes them.
var allFiles = []string{CAFile, CAKeyFile, ServerCertFile, ServerKeyFile, ControllerCertFile, ControllerKeyFile, SigningKeyFile}

// Validity of what Init creates.
const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 10 * 365 * 24 * time.Hour
	clockSkew      = 5 * time.Minute // NotBefore is backdated by this much
)

// DefaultHosts are the server certificate's names when InitOptions.Hosts is empty.
var DefaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// InitOptions configure Init.
type InitOptions struct {
	// Hosts are the DNS names and IP addresses the server certificate is
	// valid for (agents and the CLI connect to one of them). Empty means
	// DefaultHosts.
	Hosts []string
	// Now returns the current time; nil means time.Now. For tests.
	Now func() time.Time
}

// Authority is the controller's loaded identity. It is immutable and safe for
// concurrent use.
type Authority struct {
	caCert     *x509.Certificate
	caPEM      []byte
	caKey      crypto.Signer
	caPool     *x509.CertPool
	server     tls.Certificate
	controller tls.Certificate
	signing    ed25519.PrivateKey
	next       ed25519.PrivateKey // nil unless a rotation is announced
	prev       ed25519.PrivateKey // nil unless a rotation was promoted
	now        func() time.Time
}

// Init creates a new identity in dir (created with mode 0700 if missing) and
// returns it. It refuses to run if any of the files it would write exists, so
// an existing identity is never overwritten. On failure it removes the files
// it wrote.
func Init(dir string, opts InitOptions) (*Authority, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	hosts := opts.Hosts
	if len(hosts) == 0 {
		hosts = DefaultHosts
	}
	for _, name := range allFiles {
		p := filepath.Join(dir, name)
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("init controller identity: %s already exists: refusing to overwrite an existing identity (use a new data directory)", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("init controller identity: %w", err)
		}
	}

	files, err := generate(now(), hosts)
	if err != nil {
		return nil, fmt.Errorf("init controller identity: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("init controller identity: create %s: %w", dir, err)
	}
	var written []string
	for _, name := range allFiles {
		p := filepath.Join(dir, name)
		if err := writeNew(p, files[name], modeFor(name)); err != nil {
			for _, w := range written {
				os.Remove(w)
			}
			return nil, fmt.Errorf("init controller identity: %w", err)
		}
		written = append(written, p)
	}
	a, err := parse(files, now)
	if err != nil {
		return nil, fmt.Errorf("init controller identity: %w", err)
	}
	return a, nil
}

// Load reads the identity Init created in dir.
func Load(dir string) (*Authority, error) {
	files := make(map[string][]byte, len(allFiles))
	for _, name := range allFiles {
		p := filepath.Join(dir, name)
		info, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("load controller identity: %s is missing: run edgewarden-controller init first", p)
		}
		if err != nil {
			return nil, fmt.Errorf("load controller identity: %w", err)
		}
		if modeFor(name) == 0o600 && info.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("load controller identity: private key %s has mode %04o, readable by other users: run chmod 600 %s", p, info.Mode().Perm(), p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("load controller identity: %w", err)
		}
		files[name] = b
	}
	a, err := parse(files, time.Now)
	if err != nil {
		return nil, fmt.Errorf("load controller identity from %s: %w", dir, err)
	}
	if a.next, err = loadOptionalSigningKey(dir, NextSigningKeyFile); err != nil {
		return nil, fmt.Errorf("load controller identity: %w", err)
	}
	if a.prev, err = loadOptionalSigningKey(dir, PrevSigningKeyFile); err != nil {
		return nil, fmt.Errorf("load controller identity: %w", err)
	}
	return a, nil
}

// loadOptionalSigningKey reads an Ed25519 key file that may be absent (nil,
// nil), with the same mode check as the other private keys.
func loadOptionalSigningKey(dir, name string) (ed25519.PrivateKey, error) {
	p := filepath.Join(dir, name)
	info, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("private key %s has mode %04o, readable by other users: run chmod 600 %s", p, info.Mode().Perm(), p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	k, err := parseKey(name, b)
	if err != nil {
		return nil, err
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s holds a %T, want an Ed25519 key", name, k)
	}
	return key, nil
}

// CreateNextSigningKey starts a signing-key rotation: it writes a new Ed25519
// key to NextSigningKeyFile in dir (mode 0600) and returns its key id. The
// controller announces it in every document once restarted. It refuses when
// a next key already exists, and checks that dir holds a loadable identity.
func CreateNextSigningKey(dir string) (keyID string, err error) {
	if _, err := Load(dir); err != nil {
		return "", fmt.Errorf("create next signing key: %w", err)
	}
	p := filepath.Join(dir, NextSigningKeyFile)
	if _, err := os.Lstat(p); err == nil {
		return "", fmt.Errorf("create next signing key: %s already exists: a rotation is already under way (promote it with rotate-signing-key --promote)", p)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("create next signing key: %w", err)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("create next signing key: %w", err)
	}
	b, err := pemKey(key)
	if err != nil {
		return "", fmt.Errorf("create next signing key: %w", err)
	}
	if err := writeNew(p, b, 0o600); err != nil {
		return "", fmt.Errorf("create next signing key: %w", err)
	}
	return protocol.KeyID(pub), nil
}

// PromoteSigningKey ends a signing-key rotation: the next key becomes the
// current one and the current one becomes the previous key (replacing an
// older previous key). Run it with the controller stopped. It refuses when
// there is no next key, and returns the ids of the new current key and of
// the previous key.
func PromoteSigningKey(dir string) (current, previous string, err error) {
	a, err := Load(dir)
	if err != nil {
		return "", "", fmt.Errorf("promote signing key: %w", err)
	}
	if a.next == nil {
		return "", "", fmt.Errorf("promote signing key: no %s in %s: start a rotation with rotate-signing-key first", NextSigningKeyFile, dir)
	}
	cur, next := filepath.Join(dir, SigningKeyFile), filepath.Join(dir, NextSigningKeyFile)
	prev := filepath.Join(dir, PrevSigningKeyFile)
	// Each rename is atomic; after a crash between them the files are
	// either as before, or the current key is already kept as previous and
	// signing.key is missing, which the next run finishes.
	if err := os.Rename(cur, prev); err != nil {
		return "", "", fmt.Errorf("promote signing key: %w", err)
	}
	if err := os.Rename(next, cur); err != nil {
		return "", "", fmt.Errorf("promote signing key: %w (the old key is in %s: rename %s to %s to finish)", err, prev, next, cur)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return protocol.KeyID(a.next.Public().(ed25519.PublicKey)), protocol.KeyID(a.signing.Public().(ed25519.PublicKey)), nil
}

func modeFor(name string) fs.FileMode {
	switch name {
	case CAKeyFile, ServerKeyFile, ControllerKeyFile, SigningKeyFile:
		return 0o600
	}
	return 0o644
}

func writeNew(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// generate creates every key and certificate and returns them PEM-encoded,
// keyed by file name.
func generate(now time.Time, hosts []string) (map[string][]byte, error) {
	files := make(map[string][]byte, len(allFiles))

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	caSerial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          caSerial,
		Subject:               pkix.Name{CommonName: "Edgewarden controller CA", Organization: []string{"Edgewarden"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	files[CAFile] = pemCert(caDER)
	if files[CAKeyFile], err = pemKey(caKey); err != nil {
		return nil, err
	}

	// Server certificate: server-auth only, so its key can never act as an
	// MQTT client identity.
	serverTmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "Edgewarden controller", Organization: []string{"Edgewarden"}},
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    now.Add(serverValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			serverTmpl.IPAddresses = append(serverTmpl.IPAddresses, ip)
		} else if h != "" {
			serverTmpl.DNSNames = append(serverTmpl.DNSNames, h)
		}
	}
	if files[ServerCertFile], files[ServerKeyFile], err = issueLeaf(serverTmpl, caCert, caKey); err != nil {
		return nil, fmt.Errorf("create server certificate: %w", err)
	}

	controllerTmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: ControllerIdentity},
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    now.Add(serverValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if files[ControllerCertFile], files[ControllerKeyFile], err = issueLeaf(controllerTmpl, caCert, caKey); err != nil {
		return nil, fmt.Errorf("create controller client certificate: %w", err)
	}

	_, signing, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	if files[SigningKeyFile], err = pemKey(signing); err != nil {
		return nil, err
	}
	return files, nil
}

// issueLeaf generates a P-256 key and a certificate for it signed by the CA.
func issueLeaf(tmpl, ca *x509.Certificate, caKey crypto.Signer) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if tmpl.SerialNumber, err = randomSerial(); err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = pemKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pemCert(der), keyPEM, nil
}

// randomSerial returns a random positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pemKey(key crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parse builds an Authority from the PEM files, checking that they fit
// together.
func parse(files map[string][]byte, now func() time.Time) (*Authority, error) {
	caCert, err := parseCert(CAFile, files[CAFile])
	if err != nil {
		return nil, err
	}
	if !caCert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", CAFile)
	}
	caKey, err := parseKey(CAKeyFile, files[CAKeyFile])
	if err != nil {
		return nil, err
	}
	signer, ok := caKey.(crypto.Signer)
	if !ok || !publicKeysEqual(signer.Public(), caCert.PublicKey) {
		return nil, fmt.Errorf("%s does not belong to %s", CAKeyFile, CAFile)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)

	server, err := tls.X509KeyPair(files[ServerCertFile], files[ServerKeyFile])
	if err != nil {
		return nil, fmt.Errorf("%s / %s: %w", ServerCertFile, ServerKeyFile, err)
	}
	controller, err := tls.X509KeyPair(files[ControllerCertFile], files[ControllerKeyFile])
	if err != nil {
		return nil, fmt.Errorf("%s / %s: %w", ControllerCertFile, ControllerKeyFile, err)
	}
	if controller.Leaf.Subject.CommonName != ControllerIdentity {
		return nil, fmt.Errorf("%s names %q, want %q", ControllerCertFile, controller.Leaf.Subject.CommonName, ControllerIdentity)
	}
	for name, c := range map[string]tls.Certificate{ServerCertFile: server, ControllerCertFile: controller} {
		if err := c.Leaf.CheckSignatureFrom(caCert); err != nil {
			return nil, fmt.Errorf("%s is not signed by %s: %w", name, CAFile, err)
		}
	}

	signingKey, err := parseKey(SigningKeyFile, files[SigningKeyFile])
	if err != nil {
		return nil, err
	}
	signing, ok := signingKey.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s holds a %T, want an Ed25519 key", SigningKeyFile, signingKey)
	}

	return &Authority{
		caCert:     caCert,
		caPEM:      pemCert(caCert.Raw),
		caKey:      signer,
		caPool:     pool,
		server:     server,
		controller: controller,
		signing:    signing,
		now:        now,
	}, nil
}

func parseCert(name string, b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM CERTIFICATE block", name)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

func parseKey(name string, b []byte) (crypto.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: no PEM PRIVATE KEY block", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return k, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// CAPEM returns the CA certificate, PEM-encoded (what clients trust).
func (a *Authority) CAPEM() []byte { return append([]byte(nil), a.caPEM...) }

// CACert returns the CA certificate.
func (a *Authority) CACert() *x509.Certificate { return a.caCert }

// CACertPool returns a new pool holding only the CA certificate.
func (a *Authority) CACertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(a.caCert)
	return pool
}

// Fingerprint returns "sha256:" and the hex SHA-256 of the CA certificate's
// DER encoding: what agents pin at enrollment (the same digest as
// `openssl x509 -noout -fingerprint -sha256`, lower case, without colons).
func (a *Authority) Fingerprint() string { return Fingerprint(a.caCert) }

// Fingerprint returns "sha256:" and the hex SHA-256 of cert's DER encoding.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// HTTPSConfig returns a TLS configuration for the controller's HTTPS API:
// the server certificate, TLS 1.2 or later.
func (a *Authority) HTTPSConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{a.server},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: aeadSuites,
	}
}

// aeadSuites are the TLS 1.2 suites a server of ours accepts: forward
// secret (ECDHE) and authenticated encryption only, no CBC. TLS 1.3, whose
// suites are all AEAD and not configurable, is preferred whenever the
// client offers it.
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// MQTTServerConfig returns a TLS configuration for the embedded MQTT broker:
// mutual TLS, every client must present a certificate issued by the CA with
// client-auth usage.
func (a *Authority) MQTTServerConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{a.server},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: aeadSuites,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    a.CACertPool(),
	}
}

// ClientConfig returns a TLS configuration for the controller as a client of
// an MQTT broker: it presents the controller certificate and trusts only the
// CA. Set ServerName if the broker's address is not one of the certificate's
// names.
func (a *Authority) ClientConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{a.controller},
		RootCAs:      a.CACertPool(),
		MinVersion:   tls.VersionTLS12,
	}
}

// SigningKey returns the Ed25519 key that signs desired-state documents.
func (a *Authority) SigningKey() ed25519.PrivateKey { return a.signing }

// NextSigningKey returns the announced next signing key, or nil when no
// rotation is under way.
func (a *Authority) NextSigningKey() ed25519.PrivateKey { return a.next }

// PrevSigningKey returns the key retired by the last rotation, which still
// co-signs documents, or nil.
func (a *Authority) PrevSigningKey() ed25519.PrivateKey { return a.prev }

// ControllerKeys returns the public keys enrolling devices trust for
// desired-state documents: the current signing key and, during a rotation,
// the announced next key (so a device enrolled then and offline until after
// promotion still verifies). The previous key is left out: every document
// is signed by the current key, so new devices never need it.
func (a *Authority) ControllerKeys() []protocol.PublicKey {
	keys := []protocol.PublicKey{protocol.ControllerPublicKey(a.signing.Public().(ed25519.PublicKey))}
	if a.next != nil {
		keys = append(keys, protocol.ControllerPublicKey(a.next.Public().(ed25519.PublicKey)))
	}
	return keys
}
