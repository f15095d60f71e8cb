// Package identity holds what an enrolled agent knows about itself and whom
// it trusts: the files in its state directory (device key and certificate,
// controller CA, identity.json) and the TLS configuration built from them.
//
// Enrollment (agent/enroll) writes these files once; every other part of the
// agent only reads them.
package identity

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgewarden/edgewarden/protocol"
)

// Files in the state directory.
const (
	KeyFile      = "device.key"    // ECDSA P-256 private key, PKCS#8 PEM, 0600
	CertFile     = "device.pem"    // client certificate issued by the controller CA
	CAFile       = "ca.pem"        // the controller CA, pinned at enrollment
	IdentityFile = "identity.json" // Identity; its presence means "enrolled"
	DBFile       = "agent.db"      // local state (agent/state)
	MQTTStoreDir = "mqtt"          // paho's file store of agents before the end-to-end acknowledgement; no longer used
)

// Identity is the content of identity.json.
type Identity struct {
	DeviceID string `json:"device_id"`
	// MQTTURL is the broker, e.g. "tls://127.0.0.1:8883".
	MQTTURL string `json:"mqtt_url"`
	// HTTPURL is the controller's REST base URL.
	HTTPURL string `json:"http_url"`
	// ControllerKeys are the document-signing keys pinned at enrollment.
	// Keys announced later (NextControllerKey) live in agent.db.
	ControllerKeys []protocol.PublicKey `json:"controller_keys"`
	// CAFingerprint is "sha256:<hex>" of the controller CA certificate.
	CAFingerprint string    `json:"ca_fingerprint"`
	EnrolledAt    time.Time `json:"enrolled_at"`
}

// ErrNotEnrolled is returned by Load when the state directory holds no
// identity.
var ErrNotEnrolled = errors.New("not enrolled")

// Path returns the path of a file in the state directory.
func Path(stateDir, name string) string { return filepath.Join(stateDir, name) }

// Load reads identity.json from stateDir.
func Load(stateDir string) (*Identity, error) {
	b, err := os.ReadFile(Path(stateDir, IdentityFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no %s in %s; run `edgewarden-agent enroll --state %s` first", ErrNotEnrolled, IdentityFile, stateDir, stateDir)
	}
	if err != nil {
		return nil, fmt.Errorf("read identity: %w", err)
	}
	var id Identity
	if err := json.Unmarshal(b, &id); err != nil {
		return nil, fmt.Errorf("read identity %s: %w; the file is damaged, enroll again into an empty directory", Path(stateDir, IdentityFile), err)
	}
	if err := protocol.ValidateDeviceID(id.DeviceID); err != nil {
		return nil, fmt.Errorf("read identity %s: %w", Path(stateDir, IdentityFile), err)
	}
	if len(id.ControllerKeys) == 0 {
		return nil, fmt.Errorf("read identity %s: no controller keys; enroll again into an empty directory", Path(stateDir, IdentityFile))
	}
	return &id, nil
}

// Save writes identity.json atomically (temporary file, fsync, rename).
func Save(stateDir string, id *Identity) error {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return fmt.Errorf("encode identity: %w", err)
	}
	return WriteFileAtomic(Path(stateDir, IdentityFile), append(b, '\n'), 0o600)
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory, synced before it is renamed into place, so a crash leaves
// either the old file or the new one.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Fingerprint returns "sha256:<hex>" of a certificate's DER bytes, the form
// in which agents pin the controller CA.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParseFingerprint checks a "sha256:<64 hex digits>" fingerprint and returns
// it normalised to lower case.
func ParseFingerprint(s string) (string, error) {
	hexPart, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(s)), "sha256:")
	if !ok {
		return "", fmt.Errorf("CA fingerprint %q must start with \"sha256:\"; get it with `edgewarden-controller ca-fingerprint`", s)
	}
	b, err := hex.DecodeString(hexPart)
	if err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("CA fingerprint %q must be sha256: followed by 64 hex digits; get it with `edgewarden-controller ca-fingerprint`", s)
	}
	return "sha256:" + hexPart, nil
}

// ParseControllerKey decodes a controller document-signing key. Only
// Ed25519 keys are accepted; when k.KeyID is set it must match the key.
func ParseControllerKey(k protocol.PublicKey) (ed25519.PublicKey, error) {
	if k.Algorithm != "" && k.Algorithm != "Ed25519" {
		return nil, fmt.Errorf("controller key %s: algorithm %q is not supported, want Ed25519", k.KeyID, k.Algorithm)
	}
	block, _ := pem.Decode([]byte(k.PEM))
	if block == nil {
		return nil, fmt.Errorf("controller key %s: no PEM block", k.KeyID)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("controller key %s: %w", k.KeyID, err)
	}
	ed, ok := pub.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("controller key %s: %T is not an Ed25519 key", k.KeyID, pub)
	}
	if k.KeyID != "" && k.KeyID != protocol.KeyID(ed) {
		return nil, fmt.Errorf("controller key %s: key id does not match the key (computed %s)", k.KeyID, protocol.KeyID(ed))
	}
	return ed, nil
}

// TrustedKeys parses keys into the map protocol.CheckDesired takes.
func TrustedKeys(keys []protocol.PublicKey) (map[string]ed25519.PublicKey, error) {
	m := make(map[string]ed25519.PublicKey, len(keys))
	for _, k := range keys {
		pub, err := ParseControllerKey(k)
		if err != nil {
			return nil, err
		}
		m[protocol.KeyID(pub)] = pub
	}
	return m, nil
}

// ClientTLS returns the mutual-TLS configuration for the broker: the device
// certificate and key as client identity, and the pinned controller CA as
// the only root.
func ClientTLS(stateDir string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(Path(stateDir, CertFile), Path(stateDir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("load device certificate from %s: %w", stateDir, err)
	}
	if _, ok := cert.PrivateKey.(*ecdsa.PrivateKey); !ok {
		return nil, fmt.Errorf("load device certificate from %s: key is %T, want ECDSA", stateDir, cert.PrivateKey)
	}
	caPEM, err := os.ReadFile(Path(stateDir, CAFile))
	if err != nil {
		return nil, fmt.Errorf("load controller CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("load controller CA %s: no certificate in the file", Path(stateDir, CAFile))
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS12,
	}, nil
}
