// Package apiv1 holds the wire types of the controller's REST API, version 1,
// shared by the server (controller/api) and its Go client (controller/client,
// used by the edgewarden CLI and the end-to-end tests).
//
// The whole API is described by the OpenAPI document the controller serves
// at GET /api/v1/openapi.yaml (controller/api/openapi.yaml, generated from
// the route table and these types: their doc comments are its descriptions,
// and an `openapi:"..."` struct tag adds enums and bounds).
//
// Conventions: JSON bodies with snake_case fields; every path is under
// /api/v1; every endpoint except login, banner, enroll, users/activate and
// the OpenAPI document needs "Authorization: Bearer <session token>";
// artifact downloads authenticate with the device certificate. Errors come
// back with a 4xx/5xx status and an Error body whose message says what failed, why, and what to
// do. Durations are whole seconds. Creating calls (POST /enroll-tokens,
// POST /groups) answer 201 Created; DELETE calls that return no body answer
// 204 No Content; everything else answers 200 OK.
//
//	POST   /api/v1/login                        LoginRequest → LoginResponse
//	GET    /api/v1/banner                       → Banner (no auth; shown before login)
//	POST   /api/v1/enroll                       EnrollRequest → EnrollResponse (no auth; the enrollment token authenticates)
//	POST   /api/v1/enroll-tokens                CreateEnrollTokenRequest → EnrollToken (Token set only here)
//	GET    /api/v1/enroll-tokens                → []EnrollToken
//	DELETE /api/v1/enroll-tokens/{id}           revoke
//	GET    /api/v1/devices                      → []Device
//	GET    /api/v1/devices/{id}                 → Device
//	POST   /api/v1/devices/{id}/approve         → Device
//	PUT    /api/v1/devices/{id}/labels          SetLabelsRequest → Device
//	DELETE /api/v1/devices/{id}
//	POST   /api/v1/groups                       CreateGroupRequest → Group
//	GET    /api/v1/groups                       → []Group
//	GET    /api/v1/groups/{name}                → Group
//	DELETE /api/v1/groups/{name}[?force=true]
//	POST   /api/v1/groups/{name}/rename         RenameGroupRequest → Group
//	PUT    /api/v1/groups/{name}/selector[?dry_run=true] SetSelectorRequest → SelectorChange
//	POST   /api/v1/groups/{name}/devices        DevicesRequest (add) → Group
//	POST   /api/v1/groups/{name}/devices/remove DevicesRequest (remove) → Group
//	POST   /api/v1/groups/{name}/includes       IncludeRequest → Group
//	DELETE /api/v1/groups/{name}/includes/{child} → Group
//	GET    /api/v1/status                       → FleetStatus
package apiv1

import (
	"time"

	"github.com/edgewarden/edgewarden/protocol"
)

// Error is the body of every error response (protocol.APIError, which the
// agent reads too).
type Error = protocol.APIError

// LoginRequest authenticates a user with a password.
type LoginRequest struct {
	User     string `json:"user"`
	Password string `json:"password" openapi:"format=password"`
}

// LoginResponse carries the session token (a JWT) and the system-use banner.
type LoginResponse struct {
	Token     string    `json:"token"` // The session token (a JWT).
	ExpiresAt time.Time `json:"expires_at"`
	Banner    string    `json:"banner,omitempty"` // The system-use banner; absent when none is set.
}

// Banner is the system-use notification, readable before authentication.
type Banner struct {
	Banner string `json:"banner"`
}

// EnrollRequest and EnrollResponse are the device's enrollment contract,
// defined in protocol (the agent imports nothing under controller/).
type (
	EnrollRequest  = protocol.EnrollRequest
	EnrollResponse = protocol.EnrollResponse
)

// CreateEnrollTokenRequest makes an enrollment token.
type CreateEnrollTokenRequest struct {
	Groups []string          `json:"groups,omitempty"` // Groups every device enrolled with it joins.
	Labels map[string]string `json:"labels,omitempty"` // Labels every device enrolled with it gets.
	// LabelKeys are the label keys a device may set for itself when it
	// enrolls with this token; the labels it asks for with other keys are
	// not applied (the device shows them as requested_labels). Empty: none.
	LabelKeys []string `json:"label_keys,omitempty"`
	// Uses is how many devices may enroll with it; 0 means 1.
	Uses int `json:"uses,omitempty" openapi:"minimum=0,maximum=100000"`
	// TTLSeconds is how long it is valid; 0 means 24 hours.
	TTLSeconds int64 `json:"ttl_seconds,omitempty" openapi:"minimum=0"`
	// Approval: devices enrolled with it wait for `devices approve`.
	Approval bool `json:"approval,omitempty"`
}

// EnrollToken describes an enrollment token. Token (the secret) is returned
// only when the token is created; the controller stores only its hash.
type EnrollToken struct {
	ID        string            `json:"id"`
	Token     string            `json:"token,omitempty"` // The secret; only in the answer to its creation.
	Groups    []string          `json:"groups"`
	Labels    map[string]string `json:"labels"`
	LabelKeys []string          `json:"label_keys"` // Label keys a device may set for itself at enrollment.
	MaxUses   int               `json:"max_uses"`
	Used      int               `json:"used"`
	ExpiresAt time.Time         `json:"expires_at"`
	Approval  bool              `json:"approval"`
	Revoked   bool              `json:"revoked"`
	CreatedAt time.Time         `json:"created_at"`
	CreatedBy string            `json:"created_by"`
}

// Device states.
const (
	DevicePending = "pending" // enrolled with an approval token, not approved yet
	DeviceActive  = "active"
)

// Device is the controller's view of one device.
type Device struct {
	ID     string            `json:"id"`
	State  string            `json:"state" openapi:"enum=pending|active"`
	Online bool              `json:"online"`
	Groups []string          `json:"groups"` // every group it belongs to (direct, selector, nested)
	Labels map[string]string `json:"labels"`
	// RequestedLabels are labels the device asked for at enrollment that
	// its token did not allow; they are not applied (an admin may set them
	// with `devices label`).
	RequestedLabels map[string]string `json:"requested_labels,omitempty"`
	DesiredRevision uint64            `json:"desired_revision" openapi:"minimum=0"`
	AppliedRevision uint64            `json:"applied_revision" openapi:"minimum=0"`
	// InSync is Sync == SyncInSync.
	InSync bool `json:"in_sync"`
	// Sync is how the device stands against its desired state: SyncInSync
	// (applied the desired revision and every assigned app is in its
	// desired state), SyncDrifting (not there yet), SyncFailing (rejected
	// the document, or an app failed) or SyncPending (not approved).
	Sync string `json:"sync" openapi:"enum=in_sync|drifting|failing|pending"`
	// SyncReason says, when not in sync, what is missing or failed.
	SyncReason   string               `json:"sync_reason,omitempty"`
	Apps         []protocol.AppStatus `json:"apps"`
	LastRejected *protocol.Rejection  `json:"last_rejected,omitempty"`
	// AgentVersion is the version the device's agent last reported; empty
	// until it reports.
	AgentVersion string `json:"agent_version,omitempty"`
	// LastSeen is when the controller last heard from the device; null if
	// it never has.
	LastSeen *time.Time `json:"last_seen"`
	// SilentSeconds is how long the controller has not heard from the
	// device, in whole seconds; null if it never has. A device silent
	// longer than the presence timeout (default 90 s) is offline.
	SilentSeconds   *int64    `json:"silent_seconds"`
	EnrolledAt      time.Time `json:"enrolled_at"`
	PolicyExpiresAt time.Time `json:"policy_expires_at,omitzero"` // When its current document expires; absent if it has none.
}

// Sync states of a device (Device.Sync).
const (
	SyncInSync   = "in_sync"
	SyncDrifting = "drifting"
	SyncFailing  = "failing"
	SyncPending  = "pending"
)

// SetLabelsRequest replaces labels: keys with an empty value are removed.
type SetLabelsRequest struct {
	Labels map[string]string `json:"labels"` // Labels to set; a key with an empty value is removed.
}

// CreateGroupRequest makes a device group. Selector is a label selector
// ("k=v,k2=v2": every pair must match); empty means no selector.
type CreateGroupRequest struct {
	Name     string `json:"name"`
	Selector string `json:"selector,omitempty"` // A label selector, "k=v,k2=v2" (every pair must match); empty means none.
}

// Group is a device group.
type Group struct {
	Name     string   `json:"name"`
	Selector string   `json:"selector,omitempty"`
	Devices  []string `json:"devices"`  // direct members
	Includes []string `json:"includes"` // child groups whose members are members here
	// Members are all devices in the group: direct, by selector, and
	// through included groups. Sorted.
	Members   []string  `json:"members"`
	CreatedAt time.Time `json:"created_at"`
}

// RenameGroupRequest gives a group a new name. Everything that names the
// group (grants, overrides, assignments, includes, enrollment tokens)
// follows it.
type RenameGroupRequest struct {
	Name string `json:"name" openapi:"maxLength=63"` // The new name: 1-63 characters a-z, 0-9, '.', '_' or '-'.
}

// SetSelectorRequest replaces a group's label selector ("k=v,k2=v2"; empty
// removes it).
type SetSelectorRequest struct {
	Selector string `json:"selector"` // The label selector, k=v,k2=v2 (every pair must match); empty removes it.
}

// SelectorChange is what a selector change did, or (DryRun) would do.
type SelectorChange struct {
	// Group is the group after the change (as it would be, on a dry run).
	Group Group `json:"group"`
	// Added and Removed are the devices that join and leave the group
	// (directly or through it, its parent groups too). Sorted, never null.
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	DryRun  bool     `json:"dry_run"` // True: a preview; nothing changed.
}

// DevicesRequest names devices to add to or remove from a group.
type DevicesRequest struct {
	Devices []string `json:"devices" openapi:"minItems=1"`
}

// IncludeRequest makes a group include another.
type IncludeRequest struct {
	Group string `json:"group"` // The group to include.
}

// FleetStatus summarizes the fleet.
type FleetStatus struct {
	Devices  int `json:"devices"`
	Online   int `json:"online"`
	InSync   int `json:"in_sync"`
	Drifting int `json:"drifting"` // desired revision or apps not reached yet
	Failing  int `json:"failing"`  // desired document rejected, or an app failed
	Pending  int `json:"pending"`  // waiting for approval
	// SecurityEvents24h counts the security events (severity "security")
	// the devices reported in the last 24 hours; RecentSecurityEvents are
	// the latest few, newest first. Both cover the devices counted here.
	SecurityEvents24h    int     `json:"security_events_24h"`
	RecentSecurityEvents []Event `json:"recent_security_events"` // The latest few of them, newest first.
	// Offline lists active devices that are offline, most recently silent
	// first (never seen last), at most 50.
	Offline []DeviceSilence `json:"offline"`
}

// Version says which controller answers: its build, the REST API version
// and the desired-state document schema it writes.
type Version struct {
	Controller     string `json:"controller"`      // The controller's build version.
	API            string `json:"api"`             // The REST API version (v1).
	DocumentSchema int    `json:"document_schema"` // The desired-state document schema it writes.
}

// DeviceSilence is an offline device and how long it has been silent
// (null: never heard from).
type DeviceSilence struct {
	Device        string `json:"device"`
	SilentSeconds *int64 `json:"silent_seconds"` // Seconds since the controller last heard from it; null if never.
}
