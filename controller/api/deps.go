package api

import (
	"context"
	"time"

	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
)

// Store is what the API needs from the controller's database
// (controller/store implements it). Errors wrap store.ErrNotFound,
// store.ErrConflict or store.ErrInvalid where those apply, with a message
// that names the object; the API passes such messages to the client.
type Store interface {
	// Enroll checks the enrollment token with hash tokenHash (unknown,
	// expired, revoked or used up: an error) and creates the device, in one
	// transaction, counting one use of the token.
	Enroll(ctx context.Context, tokenHash string, d store.NewDevice) (store.Device, store.EnrollToken, error)
	CreateEnrollToken(ctx context.Context, t store.EnrollToken) error
	ListEnrollTokens(ctx context.Context) ([]store.EnrollToken, error)
	RevokeEnrollToken(ctx context.Context, id string) error

	GetDevice(ctx context.Context, id string) (store.Device, error)
	ListDevices(ctx context.Context) ([]store.Device, error)
	ApproveDevice(ctx context.Context, id string) error
	SetDeviceLabels(ctx context.Context, id string, labels map[string]string) error
	DeleteDevice(ctx context.Context, id string) error

	CreateGroup(ctx context.Context, name, selector string) (store.Group, error)
	GetGroup(ctx context.Context, name string) (store.Group, error)
	ListGroups(ctx context.Context) ([]store.Group, error)
	DeleteGroup(ctx context.Context, name string) error
	AddGroupDevices(ctx context.Context, group string, ids []string) error
	RemoveGroupDevices(ctx context.Context, group string, ids []string) error
	IncludeGroup(ctx context.Context, parent, child string) error
	ExcludeGroup(ctx context.Context, parent, child string) error

	CreateUser(ctx context.Context, u store.User) error
	GetUser(ctx context.Context, name string) (store.User, error)
	ListUsers(ctx context.Context) ([]store.User, error)
	CountUsers(ctx context.Context) (int, error)

	// GetSetting returns store.ErrNotFound for a key never set.
	GetSetting(ctx context.Context, key string) (string, error)
	SetSetting(ctx context.Context, key, value string) error

	AppendAudit(ctx context.Context, e store.AuditEntry) error

	ListDesired(ctx context.Context) ([]store.DesiredRecord, error)
}

// PKI signs device certificates and names what devices must trust
// (controller/pki implements it).
type PKI interface {
	// SignDeviceCSR checks csrPEM (its signature, and that its common name
	// is deviceID) and returns a client certificate valid for validity,
	// with its serial number.
	SignDeviceCSR(csrPEM []byte, deviceID string, validity time.Duration) (certPEM []byte, serial string, err error)
	// CAPEM is the controller CA certificate, PEM-encoded.
	CAPEM() []byte
	// ControllerKeys are the keys devices accept desired-state documents from.
	ControllerKeys() []protocol.PublicKey
}

// Membership resolves device-group membership (direct, by selector and
// through included groups) for the whole fleet.
type Membership interface {
	// Membership returns every group's full, sorted member list and every
	// device's full, sorted group list.
	Membership(ctx context.Context) (groupMembers map[string][]string, deviceGroups map[string][]string, err error)
}

// Settings keys the API reads.
const (
	// SettingBanner is the system-use notification shown at login.
	SettingBanner = "banner"
)
