package pki

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/edgewarden/edgewarden/protocol"
)

// DefaultDeviceCertValidity is how long a device certificate is valid when
// SignDeviceCSR is given a zero validity.
const DefaultDeviceCertValidity = 365 * 24 * time.Hour

// MaxCSRBytes bounds the PEM-encoded CSR SignDeviceCSR accepts.
const MaxCSRBytes = 16 << 10

// ErrBadCSR is wrapped by every error SignDeviceCSR returns for a CSR it
// refuses (as opposed to an internal failure). The API maps it to 400.
var ErrBadCSR = errors.New("certificate request refused")

// SignDeviceCSR issues a client certificate for deviceID from a
// PEM-encoded PKCS#10 request. The request must be signed by its own key
// (proof of possession), name deviceID as its common name, and carry an
// ECDSA P-256 or Ed25519 key. The certificate holds only that common name
// and the client-auth usage; nothing else from the request is copied. It is
// valid for validity (zero means DefaultDeviceCertValidity), never beyond the
// CA. serial is the certificate's random 128-bit serial number in lower-case
// hex.
func (a *Authority) SignDeviceCSR(csrPEM []byte, deviceID string, validity time.Duration) (certPEM []byte, serial string, err error) {
	if err := protocol.ValidateDeviceID(deviceID); err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrBadCSR, err)
	}
	if validity < 0 {
		return nil, "", fmt.Errorf("%w: negative validity %s", ErrBadCSR, validity)
	}
	if validity == 0 {
		validity = DefaultDeviceCertValidity
	}
	if len(csrPEM) > MaxCSRBytes {
		return nil, "", fmt.Errorf("%w: CSR is %d bytes, limit %d", ErrBadCSR, len(csrPEM), MaxCSRBytes)
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil || (block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST") {
		return nil, "", fmt.Errorf("%w: not a PEM-encoded CERTIFICATE REQUEST", ErrBadCSR)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, "", fmt.Errorf("%w: parse CSR: %w", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, "", fmt.Errorf("%w: CSR signature does not verify: %w", ErrBadCSR, err)
	}
	if cn := csr.Subject.CommonName; cn != deviceID {
		return nil, "", fmt.Errorf("%w: CSR names %q but you are enrolling as %q", ErrBadCSR, cn, deviceID)
	}
	switch pub := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, "", fmt.Errorf("%w: CSR key is ECDSA %s: use an ECDSA P-256 or Ed25519 key", ErrBadCSR, pub.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return nil, "", fmt.Errorf("%w: CSR key is %s: use an ECDSA P-256 or Ed25519 key", ErrBadCSR, csr.PublicKeyAlgorithm)
	}

	now := a.now()
	notAfter := now.Add(validity)
	if notAfter.After(a.caCert.NotAfter) {
		notAfter = a.caCert.NotAfter
	}
	sn, err := randomSerial()
	if err != nil {
		return nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: deviceID},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.caCert, csr.PublicKey, a.caKey)
	if err != nil {
		return nil, "", fmt.Errorf("issue certificate for device %s: %w", deviceID, err)
	}
	return pemCert(der), fmt.Sprintf("%032x", sn), nil
}
