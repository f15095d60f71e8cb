package protocol

// REST paths a device uses on the controller. The controller serves them; the
// agent calls them. Both sides take them from here.
const (
	// EnrollPath takes an EnrollRequest (POST, no authentication: the
	// enrollment token authenticates) and answers an EnrollResponse, or an
	// HTTP error with an APIError body.
	EnrollPath = "/api/v1/enroll"
	// ArtifactPathPrefix is followed by an artifact's SHA-256 (64 lowercase
	// hex digits). GET with the device's client certificate; Range is
	// supported so a download can resume.
	ArtifactPathPrefix = "/api/v1/artifacts/"
)

// ArtifactPath is the REST path of the artifact with the given SHA-256.
func ArtifactPath(sha256 string) string { return ArtifactPathPrefix + sha256 }

// EnrollRequest is sent by an agent to enroll. The CSR's common name is the
// device id the agent asks for; it must be free (or already this device's,
// for a re-enrollment of a deleted device).
type EnrollRequest struct {
	// Token is the enrollment token an admin created; required.
	Token string `json:"token"`
	// CSRPEM is a PEM "CERTIFICATE REQUEST" for a P-256 or Ed25519 key whose
	// common name is the requested device id; required.
	CSRPEM string `json:"csr_pem"`
	// Labels are added to the token's labels; absent means none.
	Labels map[string]string `json:"labels,omitempty"`
}

// EnrollResponse gives the device its client certificate and what it must
// trust: the controller CA (for TLS) and the controller's document-signing
// keys (for desired-state envelopes).
type EnrollResponse struct {
	DeviceID       string      `json:"device_id"`
	CertificatePEM string      `json:"certificate_pem"`
	CAPEM          string      `json:"ca_pem"`
	ControllerKeys []PublicKey `json:"controller_keys"` // The controller's document-signing keys, to pin.
	// MQTTURL is the broker the agent connects to, e.g. "tls://127.0.0.1:8883".
	MQTTURL string `json:"mqtt_url"`
	// HTTPURL is the controller's REST base URL (artifact downloads).
	HTTPURL string `json:"http_url"`
	// PendingApproval is true when the token requires an admin's approval;
	// the device gets no desired state until `devices approve`. Absent: false.
	PendingApproval bool `json:"pending_approval"`
}

// APIError is the body of every REST error response: a message that says
// what failed, why, and what to do.
type APIError struct {
	Error string `json:"error"` // What failed, why, and what to do.
}
