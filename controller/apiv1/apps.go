package apiv1

import "time"

// Trusted publishers and signed apps.
//
//	POST   /api/v1/publishers                          AddPublisherKeyRequest → Publisher (201; adds a key to a new or existing publisher)
//	GET    /api/v1/publishers                          → []Publisher
//	DELETE /api/v1/publishers/{name}                   stop trusting the publisher and all its keys (204)
//	DELETE /api/v1/publishers/{name}/keys/{key_id}     stop trusting one key → Publisher
//	POST   /api/v1/apps                                multipart/form-data push (see PartManifest) → AppVersion (201)
//	GET    /api/v1/apps                                → []AppSummary
//	GET    /api/v1/apps/{name}                         → App
//	DELETE /api/v1/apps/{name}/versions/{version}      delete a version assigned nowhere (204)
//	GET    /api/v1/apps/{name}/versions/{version}/check?group=G[&allow_downgrade=true] → CheckResult
//	POST   /api/v1/apps/{name}/assignments             AssignRequest → AssignResponse
//	DELETE /api/v1/apps/{name}/assignments/{group}     unassign (204)
//	GET    /api/v1/artifacts/{sha256}                  artifact bytes, for devices (mutual TLS, Range supported)
//
// Pushing an app version: a multipart/form-data body whose parts come in
// this order: PartManifest (the exact bytes that were signed),
// PartSignature (base64 text or a cosign/sigstore bundle), then one
// PartArtifact per artifact, whose Content-Disposition filename is the
// artifact's path exactly as the manifest writes it. The controller
// verifies the signature before it reads any artifact, and each artifact's
// size and SHA-256 while it streams; on any failure nothing is stored.
const (
	PartManifest  = "manifest"
	PartSignature = "signature"
	PartArtifact  = "artifact"
)

// Publisher and key states.
const (
	Trusted = "trusted"
	Removed = "removed"
)

// AddPublisherKeyRequest trusts a public key for a publisher, creating the
// publisher if needed.
type AddPublisherKeyRequest struct {
	Name string `json:"name"`
	// KeyPEM is the PKIX public key in PEM, as cosign.pub holds it.
	KeyPEM string `json:"key_pem"`
}

// Publisher is a trusted app publisher.
type Publisher struct {
	Name      string         `json:"name"`
	State     string         `json:"state" openapi:"enum=trusted|removed"` // Trusted or Removed
	CreatedAt time.Time      `json:"created_at"`
	CreatedBy string         `json:"created_by"`
	RemovedAt *time.Time     `json:"removed_at,omitempty"`
	Keys      []PublisherKey `json:"keys"` // every key ever added, oldest first
}

// PublisherKey is one key of a publisher.
type PublisherKey struct {
	ID        string     `json:"id"` // "sha256:" + hex SHA-256 of the PKIX DER
	PEM       string     `json:"pem"`
	State     string     `json:"state" openapi:"enum=trusted|removed"` // Trusted or Removed
	AddedAt   time.Time  `json:"added_at"`
	AddedBy   string     `json:"added_by"`
	RemovedAt *time.Time `json:"removed_at,omitempty"`
}

// Artifact is one file of an app version.
type Artifact struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// AppVersion is a pushed, verified app version.
type AppVersion struct {
	Name      string     `json:"name"`
	Version   string     `json:"version"`
	Publisher string     `json:"publisher"`
	Runtime   string     `json:"runtime"`
	Artifacts []Artifact `json:"artifacts"`
	// KeyID is the publisher key that verified the signature at push time.
	KeyID    string    `json:"key_id"`
	PushedBy string    `json:"pushed_by"`
	PushedAt time.Time `json:"pushed_at"`
	// Installable is false when the signature no longer verifies against a
	// trusted key of the publisher (key or publisher removed).
	Installable bool `json:"installable"`
	// AssignedTo are the groups this version is assigned to.
	AssignedTo []string `json:"assigned_to"`
}

// AppAssignment is one version of an app assigned to a device group.
type AppAssignment struct {
	App        string    `json:"app"`
	Version    string    `json:"version"`
	Group      string    `json:"group"`
	Forced     bool      `json:"forced"`
	AssignedBy string    `json:"assigned_by"`
	AssignedAt time.Time `json:"assigned_at"`
}

// AppDevice is an app on one device: the version its document carries and
// what the device reports.
type AppDevice struct {
	Device string `json:"device"`
	Online bool   `json:"online"`
	// DesiredVersion is the version assigned to the device ("" if none;
	// when several groups assign versions, the newest wins).
	DesiredVersion string `json:"desired_version"`
	// Version, State and Reason are what the device reports ("" if it
	// reports nothing for this app).
	Version string `json:"version"`
	State   string `json:"state"`
	Reason  string `json:"reason,omitempty"`
}

// App is an app with its versions, assignments and per-device state.
type App struct {
	Name        string          `json:"name"`
	Publisher   string          `json:"publisher"`
	Versions    []AppVersion    `json:"versions"` // oldest push first
	Assignments []AppAssignment `json:"assignments"`
	Devices     []AppDevice     `json:"devices"`
}

// AppSummary is one line of the app list.
type AppSummary struct {
	Name        string          `json:"name"`
	Publisher   string          `json:"publisher"`
	Versions    []string        `json:"versions"` // oldest push first
	Assignments []AppAssignment `json:"assignments"`
	// Devices counts devices whose document carries the app; Running
	// those that report it running the desired version; Failed those that
	// report it failed.
	Devices int `json:"devices"`
	Running int `json:"running"` // Of those
	Failed  int `json:"failed"`  // Of those
}

// Installation guidance verdicts (protocol/manifest.Verdict).
const (
	VerdictAllow = "Allow"
	VerdictWarn  = "Warn"
	VerdictBlock = "Block"
)

// DeviceVerdict is the guidance for one device.
type DeviceVerdict struct {
	Device  string   `json:"device"`
	Verdict string   `json:"verdict" openapi:"enum=Allow|Warn|Block"`
	Reasons []string `json:"reasons"`
}

// CheckResult is the installation guidance for a version on a group's
// devices. Verdict is the worst of the devices' (Allow for no devices).
type CheckResult struct {
	App     string          `json:"app"`
	Version string          `json:"version"`
	Group   string          `json:"group"`
	Verdict string          `json:"verdict" openapi:"enum=Allow|Warn|Block"` // The worst of the devices' (Allow for no devices).
	Reasons []string        `json:"reasons,omitempty"`                       // about the version itself
	Devices []DeviceVerdict `json:"devices"`
}

// AssignRequest assigns a version to a group. Block is always refused; Warn
// is refused unless Force is set (the assignment is then audited as forced).
type AssignRequest struct {
	Version        string `json:"version"`
	Group          string `json:"group"`
	Force          bool   `json:"force,omitempty"` // Assign despite a Warn verdict (audited).
	AllowDowngrade bool   `json:"allow_downgrade,omitempty"`
}

// AssignResponse is the assignment made and the guidance it was made on.
type AssignResponse struct {
	Assignment AppAssignment `json:"assignment"`
	Check      CheckResult   `json:"check"`
}
