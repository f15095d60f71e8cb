// Package enroll enrolls an agent with its controller: it creates the device
// key, sends a certificate request with an enrollment token over HTTPS, and
// stores the issued certificate and the trust it receives (controller CA and
// document-signing keys) in the agent's state directory.
//
// The controller's TLS certificate is checked against a CA fingerprint given
// by the operator (sha256 of the CA certificate), since the agent trusts
// nothing else yet: the controller presents its CA in the TLS chain, the
// agent finds the certificate whose fingerprint matches and verifies the
// server certificate against it alone.
package enroll

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/edgewarden/edgewarden/agent/identity"
	"github.com/edgewarden/edgewarden/protocol"
)

// Options are the inputs of Enroll.
type Options struct {
	// ControllerURL is the controller's REST base, e.g. "https://ctl:8443".
	ControllerURL string
	// Token is the enrollment token.
	Token string
	// CAFingerprint pins the controller CA: "sha256:<hex>".
	CAFingerprint string
	// StateDir receives the key, certificates and identity. It is created
	// (0700) if missing and must not hold an enrollment already.
	StateDir string
	// DeviceID is the id to ask for. Empty: the host name plus a suffix
	// unique to this machine (see DeviceIDFor), and the host name is sent
	// as the "hostname" label (unless Labels sets it) so that it stays the
	// name people see.
	DeviceID string
	// MachineIDFile is read for the default id's suffix. Empty:
	// /etc/machine-id. A missing or empty file: the suffix comes from the
	// device key.
	MachineIDFile string
	// Labels are sent with the request.
	Labels map[string]string
	// Timeout bounds the HTTPS exchange. Zero means 30 seconds.
	Timeout time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Result describes a completed enrollment.
type Result struct {
	DeviceID string
	// PendingApproval: the device waits for an admin's `devices approve`.
	PendingApproval bool
}

// Enroll performs the enrollment described by opts. On success the state
// directory holds device.key, device.pem, ca.pem and identity.json; on
// failure no identity.json is written, so enrollment can simply be retried.
func Enroll(ctx context.Context, opts Options) (*Result, error) {
	pin, err := identity.ParseFingerprint(opts.CAFingerprint)
	if err != nil {
		return nil, err
	}
	base, err := url.Parse(opts.ControllerURL)
	if err != nil || base.Scheme != "https" || base.Host == "" {
		return nil, fmt.Errorf("controller URL %q: want https://HOST[:PORT]", opts.ControllerURL)
	}
	if opts.Token == "" {
		return nil, errors.New("no enrollment token given; create one with `edgewarden enroll-tokens create`")
	}
	if opts.StateDir == "" {
		return nil, errors.New("no state directory given")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate device key: %w", err)
	}
	deviceID, labels := opts.DeviceID, opts.Labels
	if deviceID == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("derive device id from host name: %w; give one with --device-id", err)
		}
		machineID, _ := os.ReadFile(cmp.Or(opts.MachineIDFile, "/etc/machine-id")) // absent: the key decides
		if deviceID, err = DeviceIDFor(host, machineID, &key.PublicKey); err != nil {
			return nil, err
		}
		if _, set := labels["hostname"]; !set && labelValue.MatchString(host) {
			labels = maps.Clone(labels)
			if labels == nil {
				labels = map[string]string{}
			}
			labels["hostname"] = host
		}
	}
	if err := protocol.ValidateDeviceID(deviceID); err != nil {
		return nil, fmt.Errorf("%w; choose one with --device-id", err)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}

	if err := prepareStateDir(opts.StateDir); err != nil {
		return nil, err
	}

	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: deviceID},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}
	req := protocol.EnrollRequest{
		Token:  opts.Token,
		CSRPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})),
		Labels: labels,
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := post(ctx, base.JoinPath(protocol.EnrollPath).String(), pin, &req)
	if err != nil {
		return nil, err
	}

	cert, caPEM, err := checkResponse(resp, pin, deviceID, &key.PublicKey)
	if err != nil {
		return nil, err
	}
	if _, err := identity.TrustedKeys(resp.ControllerKeys); err != nil {
		return nil, fmt.Errorf("enrollment response: %w", err)
	}
	if len(resp.ControllerKeys) == 0 {
		return nil, errors.New("enrollment response has no controller keys; the controller is misconfigured")
	}
	if resp.MQTTURL == "" {
		return nil, errors.New("enrollment response has no MQTT URL; the controller is misconfigured")
	}

	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode device key: %w", err)
	}
	files := []struct {
		name string
		data []byte
	}{
		{identity.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})},
		{identity.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})},
		{identity.CAFile, caPEM},
	}
	for _, f := range files {
		if err := identity.WriteFileAtomic(identity.Path(opts.StateDir, f.name), f.data, 0o600); err != nil {
			return nil, fmt.Errorf("store enrollment: %w", err)
		}
	}
	// identity.json last: its presence means the enrollment is complete.
	id := &identity.Identity{
		DeviceID:       resp.DeviceID,
		MQTTURL:        resp.MQTTURL,
		HTTPURL:        resp.HTTPURL,
		ControllerKeys: resp.ControllerKeys,
		CAFingerprint:  pin,
		EnrolledAt:     now().UTC(),
	}
	if err := identity.Save(opts.StateDir, id); err != nil {
		return nil, fmt.Errorf("store enrollment: %w", err)
	}
	return &Result{DeviceID: resp.DeviceID, PendingApproval: resp.PendingApproval}, nil
}

// prepareStateDir creates dir (0700) and refuses one that already holds an
// enrollment.
func prepareStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("restrict state directory: %w", err)
	}
	existing, err := identity.Load(dir)
	switch {
	case err == nil:
		return fmt.Errorf("already enrolled as %s in %s; remove the directory to enroll again", existing.DeviceID, dir)
	case errors.Is(err, identity.ErrNotEnrolled):
		return nil
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("check state directory: %w", err)
	default:
		// A damaged identity.json is still an enrollment we must not overwrite.
		return fmt.Errorf("%s already holds an enrollment (%v); remove the directory to enroll again", dir, err)
	}
}

// post sends the enrollment request over TLS pinned to the CA fingerprint.
func post(ctx context.Context, endpoint, pin string, body *protocol.EnrollRequest) (*protocol.EnrollResponse, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode enrollment request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   PinnedTLS(pin),
		ForceAttemptHTTP2: true,
	}}
	defer client.CloseIdleConnections()
	res, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("enroll at %s: %w", endpoint, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("enroll at %s: read response: %w", endpoint, err)
	}
	if res.StatusCode/100 != 2 {
		var apiErr protocol.APIError
		if json.Unmarshal(data, &apiErr) == nil && apiErr.Error != "" {
			return nil, fmt.Errorf("controller refused enrollment (HTTP %s): %s", res.Status, apiErr.Error)
		}
		return nil, fmt.Errorf("controller refused enrollment (HTTP %s): %s", res.Status, strings.TrimSpace(string(truncate(data, 200))))
	}
	var out protocol.EnrollResponse
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("enroll at %s: decode response: %w", endpoint, err)
	}
	return &out, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// PinnedTLS returns a client TLS configuration that accepts a server only if
// its presented chain contains a CA certificate whose SHA-256 fingerprint is
// pin, and the server certificate verifies against that CA for the host
// name dialled. The system roots play no part.
func PinnedTLS(pin string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is done in VerifyConnection, against the pinned CA
		// only; the standard verification against system roots is off.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPinned(cs, pin)
		},
	}
}

func verifyPinned(cs tls.ConnectionState, pin string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("controller presented no certificate")
	}
	var anchor *x509.Certificate
	for _, c := range cs.PeerCertificates {
		if identity.Fingerprint(c.Raw) == pin {
			anchor = c
			break
		}
	}
	if anchor == nil {
		return fmt.Errorf("controller certificate chain does not contain the CA with fingerprint %s; check --ca-fingerprint against `edgewarden-controller ca-fingerprint` (the controller may be an impostor)", pin)
	}
	leaf := cs.PeerCertificates[0]
	if anchor == leaf {
		// The pinned certificate is the server's own: nothing more to chain.
		return leaf.VerifyHostname(cs.ServerName)
	}
	roots := x509.NewCertPool()
	roots.AddCert(anchor)
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		if c != anchor {
			inter.AddCert(c)
		}
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		DNSName:       cs.ServerName,
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("controller certificate does not verify against the pinned CA: %w", err)
	}
	return nil
}

// checkResponse verifies that the returned CA is the pinned one and that the
// issued certificate is for our key and device id, signed by that CA, and
// usable as a TLS client certificate.
func checkResponse(resp *protocol.EnrollResponse, pin, deviceID string, pub *ecdsa.PublicKey) (*x509.Certificate, []byte, error) {
	caBlock, _ := pem.Decode([]byte(resp.CAPEM))
	if caBlock == nil {
		return nil, nil, errors.New("enrollment response has no CA certificate")
	}
	if fp := identity.Fingerprint(caBlock.Bytes); fp != pin {
		return nil, nil, fmt.Errorf("enrollment response carries CA %s, not the pinned %s; refusing it", fp, pin)
	}
	ca, err := x509.ParseCertificate(caBlock.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("enrollment response: CA certificate: %w", err)
	}
	certBlock, _ := pem.Decode([]byte(resp.CertificatePEM))
	if certBlock == nil {
		return nil, nil, errors.New("enrollment response has no device certificate")
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("enrollment response: device certificate: %w", err)
	}
	if resp.DeviceID != deviceID || cert.Subject.CommonName != deviceID {
		return nil, nil, fmt.Errorf("controller issued a certificate for %q (device id %q), but %q was requested", cert.Subject.CommonName, resp.DeviceID, deviceID)
	}
	if !pub.Equal(cert.PublicKey) {
		return nil, nil, errors.New("controller issued a certificate for a different key than the one requested")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, nil, fmt.Errorf("issued device certificate does not verify against the controller CA: %w", err)
	}
	return cert, pem.EncodeToMemory(caBlock), nil
}

var invalidIDChars = regexp.MustCompile(`[^a-z0-9._-]+`)

// labelValue is the controller's label value alphabet (controller/fleet);
// a host name outside it is not sent as a label.
var labelValue = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,126}$`)

// DeviceIDFor derives the default device id: the host name (sanitized,
// see SanitizeDeviceID) plus "-" and 8 hex digits that differ between
// machines. Devices cloned from one image share a host name but not
// /etc/machine-id, which systemd generates at first boot when the image
// ships it empty (as images should). The suffix is a hash of machineID (the
// id must not disclose it), or of the device's new public key when there is
// no machine id.
func DeviceIDFor(host string, machineID []byte, key *ecdsa.PublicKey) (string, error) {
	base := SanitizeDeviceID(host)
	if len(base) > 63-9 {
		base = strings.TrimRight(base[:63-9], "._-")
	}
	if base == "" {
		return "", fmt.Errorf("derive device id from host name %q: nothing usable in it; give one with --device-id", host)
	}
	seed := bytes.TrimSpace(machineID)
	if len(seed) == 0 {
		der, err := x509.MarshalPKIXPublicKey(key)
		if err != nil {
			return "", fmt.Errorf("derive device id: %w", err)
		}
		seed = der
	}
	sum := sha256.Sum256(append([]byte("edgewarden device id\x00"), seed...))
	id := base + "-" + hex.EncodeToString(sum[:4])
	if err := protocol.ValidateDeviceID(id); err != nil {
		return "", fmt.Errorf("derive device id from host name %q: %w; give one with --device-id", host, err)
	}
	return id, nil
}

// SanitizeDeviceID maps s to the device id alphabet (see
// protocol.ValidateDeviceID). The result may still be empty.
func SanitizeDeviceID(s string) string {
	id := invalidIDChars.ReplaceAllString(strings.ToLower(s), "-")
	id = strings.TrimLeft(id, "._-")
	if len(id) > 63 {
		id = id[:63]
	}
	return id
}
