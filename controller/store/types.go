// Package store is the controller's SQLite database (modernc.org/sqlite, WAL,
// foreign keys on, versioned migrations that are only ever appended). It holds
// devices, device groups, enrollment tokens, users, the desired-state
// bookkeeping per device (revision, digest, last signed envelope), the latest
// status, presence and events reported by each device, settings, and the
// audit log. Everything it acknowledges is committed: it survives kill -9.
package store

import (
	"errors"
	"time"

	"github.com/edgewarden/edgewarden/protocol"
)

// Errors the store returns, wrapped with a message that names the object.
// Callers map them to HTTP status codes: ErrNotFound 404, ErrConflict 409,
// ErrInvalid 400, ErrForbidden 403.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
	// ErrForbidden: an enrollment token that is unknown, revoked, expired
	// or used up.
	ErrForbidden = errors.New("forbidden")
)

// Device is a device as stored.
type Device struct {
	ID         string
	State      string // "pending" or "active" (apiv1.DevicePending / DeviceActive)
	Labels     map[string]string
	EnrolledAt time.Time
	// CertSerial is the serial number of the device's client certificate.
	CertSerial string

	// RequestedLabels are labels the device asked for at enrollment that
	// its token did not allow (see EnrollToken.LabelKeys): kept for an
	// admin to see and accept, never used by selectors.
	RequestedLabels map[string]string

	// Online is whether the device is connected as far as the controller
	// can tell: it was heard from (LastSeen) after its last offline
	// presence or last will (OfflineAt), and within the presence timeout
	// (DB.SetPresenceTimeout). Both times are the controller's clock:
	// nothing the device claims about time decides it.
	Online    bool
	OfflineAt time.Time
	// LastSeen is when the controller last received a status, event
	// batch or online presence from the device (zero: never).
	LastSeen time.Time

	// Reported by the device (zero until it reports).
	AppliedRevision uint64
	PolicyExpiresAt time.Time
	LastRejected    *protocol.Rejection
	Apps            []protocol.AppStatus
	StatusSeq       uint64
	AgentVersion    string

	// DesiredRevision is the revision of the last document compiled for the
	// device (0: none yet).
	DesiredRevision uint64
}

// Group is a device group as stored.
type Group struct {
	Name      string
	Selector  string   // "k=v,k2=v2"; empty: none
	Devices   []string // direct members, sorted
	Includes  []string // included child groups, sorted
	CreatedAt time.Time
}

// EnrollToken is an enrollment token as stored: only the SHA-256 of the
// secret is kept.
type EnrollToken struct {
	ID     string
	Hash   string // hex SHA-256 of the secret
	Groups []string
	Labels map[string]string
	// LabelKeys are the label keys a device may ask for when it enrolls
	// with this token; other requested labels are not applied (kept as
	// the device's RequestedLabels). Empty: none. The token's own Labels
	// are always applied.
	LabelKeys []string
	MaxUses   int
	Used      int
	ExpiresAt time.Time
	Approval  bool
	Revoked   bool
	CreatedAt time.Time
	CreatedBy string
}

// NewDevice is what Enroll needs to create a device.
type NewDevice struct {
	ID         string
	Labels     map[string]string // from the agent; the token's labels win on conflict
	CertSerial string
	At         time.Time
}

// User is a controller user.
type User struct {
	Name         string
	PasswordHash string // PHC string, e.g. argon2id or bcrypt
	State        string // "active", "invited", "disabled"
	CreatedAt    time.Time
	// ID never changes and is never given to another user: sessions and
	// audit entries name users by it, so a reused name is another user.
	ID string
	// SessionGen is the user's session generation: sessions of an older
	// one are refused (ended by disabling, a password change, deletion).
	SessionGen int64
}

// DesiredRecord is the controller's bookkeeping for one device's document.
type DesiredRecord struct {
	DeviceID  string
	Revision  uint64
	Digest    string // protocol.DesiredState.ContentDigest
	IssuedAt  time.Time
	ExpiresAt time.Time
	// Signers are the key ids that signed Envelope; a record stored
	// without them has them read from its envelope.
	Signers []string
	// Envelope is the signed envelope last published; a Snapshot leaves
	// it out (Signers says what the compiler needs of it).
	Envelope []byte
}

// StatusUpdate is one status report to store.
type StatusUpdate struct {
	DeviceID string
	Report   protocol.StatusReport
	At       time.Time // when the controller received it
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	ID    int64
	At    time.Time
	Actor string // user name, "device:<id>", or "system"
	// ActorID is the acting user's immutable id (User.ID), when a user
	// acted: names can be reused, ids cannot.
	ActorID string
	Action  string // e.g. "group.create", "device.approve"
	Target  string
	Detail  string
	Source  string // remote address, when known
	Kind    string // "change", "security", "access"
	// Seq is the change sequence number of the change this entry records;
	// 0 for entries that record no change (refusals, logins).
	Seq uint64
	// Before and After are the JSON state of the changed object before and
	// after a security-relevant change; empty when not recorded.
	Before, After string
}

// Snapshot is a consistent read of everything the desired-state compiler
// needs, taken in one transaction.
type Snapshot struct {
	// Seq is the change sequence the snapshot reflects: the last change
	// committed before it was read.
	Seq uint64
	// Dirty are the dirty marks (Snapshot only): the devices whose
	// documents changes may have altered since the last compile.
	Dirty DirtySet

	// Devices are every device, active and pending, with only what
	// compiling reads: ID, State, Labels and AppliedRevision.
	Devices  []Device
	Groups   []Group
	Settings map[string]string
	// Desired holds the record of every device id that ever had a
	// document, by device id, including deleted devices (so a re-enrolled
	// device continues from a higher revision).
	Desired map[string]DesiredRecord

	// Access (see AccessInput): every user (no password hashes), team,
	// custom role and grant, and the revoked operator tokens that have not
	// expired yet.
	Users         []User
	Teams         []Team
	Roles         []Role // custom roles only; built-ins are access.BuiltinRoles
	Grants        []Grant
	RevokedTokens []OperatorToken

	// Apps (see apps.go): trusted publishers with their trusted keys only
	// (removed publishers and keys left out), every app assignment, and
	// every app version assigned somewhere.
	Publishers  []Publisher
	Assignments []Assignment
	AppVersions []AppVersion

	// SideloadOverrides are the per-group overrides of the global sideload
	// policy (sideload.go), by group name.
	SideloadOverrides []SideloadOverride
}
