package api

import (
	"context"
	"time"

	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
)

// Store is what the API needs from the controller's database;
// *store.DB implements it. Errors wrap store.ErrNotFound, ErrConflict,
// ErrInvalid or ErrForbidden where those apply, with a message that names
// the object and says what to do; the API passes such messages to the
// client verbatim.
type Store interface {
	// Enroll checks the enrollment token with hash tokenHash (unknown,
	// expired, revoked or used up: ErrForbidden) and creates the device, in
	// one transaction, counting one use of the token. On error nothing
	// changes.
	Enroll(ctx context.Context, tokenHash string, d store.NewDevice) (store.Device, store.EnrollToken, error)
	CreateEnrollToken(ctx context.Context, t store.EnrollToken) (store.EnrollToken, error)
	ListEnrollTokens(ctx context.Context) ([]store.EnrollToken, error)
	RevokeEnrollToken(ctx context.Context, id string) error

	GetDevice(ctx context.Context, id string) (store.Device, error)
	ListDevices(ctx context.Context) ([]store.Device, error)
	ApproveDevice(ctx context.Context, id string) (store.Device, error)
	// SetDeviceLabels sets each key of labels to its value and removes
	// keys whose value is empty; other labels stay.
	SetDeviceLabels(ctx context.Context, id string, labels map[string]string) (store.Device, error)
	DeleteDevice(ctx context.Context, id string) error

	CreateGroup(ctx context.Context, name, selector string) (store.Group, error)
	GetGroup(ctx context.Context, name string) (store.Group, error)
	ListGroups(ctx context.Context) ([]store.Group, error)
	DeleteGroup(ctx context.Context, name string) error
	// GroupDependents is what deleting the group would remove with it.
	GroupDependents(ctx context.Context, name string) (store.GroupDependents, error)
	RenameGroup(ctx context.Context, name, newName string) (store.Group, error)
	SetGroupSelector(ctx context.Context, name, selector string) (store.Group, error)
	// PreviewSelector is what setting the selector would do; nothing
	// changes.
	PreviewSelector(ctx context.Context, group, selector string) (store.SelectorChange, error)
	// LiveTokensNaming returns the enrollment tokens that still assign
	// devices to a group of that name.
	LiveTokensNaming(ctx context.Context, group string) ([]string, error)
	AddGroupDevices(ctx context.Context, group string, ids []string) (store.Group, error)
	RemoveGroupDevices(ctx context.Context, group string, ids []string) (store.Group, error)
	IncludeGroup(ctx context.Context, parent, child string) (store.Group, error)
	ExcludeGroup(ctx context.Context, parent, child string) (store.Group, error)

	GetUser(ctx context.Context, name string) (store.User, error)
	GetUserByID(ctx context.Context, id string) (store.User, error)
	// SessionEnded reports whether the session with token id id was
	// ended by a logout.
	SessionEnded(ctx context.Context, id string) (bool, error)

	// GetSetting returns an error wrapping store.ErrNotFound for a key
	// never set.
	GetSetting(ctx context.Context, key string) (string, error)

	// AppendAudit records what changes nothing (a refusal, a login).
	AppendAudit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error)
	// Change runs fn as one change (see store.DB.Change): the writes fn
	// makes with the context it gets, audit's entry, a bump of the change
	// sequence and the dirty marks commit together or not at all.
	Change(ctx context.Context, audit store.AuditEntry, fn func(ctx context.Context, c *store.Change) error) (store.Committed, error)

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

// MemberLookup answers membership questions about a resolved fleet
// (*fleet.Membership implements it).
type MemberLookup interface {
	// Members returns every device in group (direct, by selector, through
	// included groups), sorted; nil for an unknown group.
	Members(group string) []string
	// GroupsOf returns every group device belongs to, sorted.
	GroupsOf(device string) []string
}

// Membership resolves device-group membership for the whole fleet, from
// one consistent read.
type Membership interface {
	Membership(ctx context.Context) (MemberLookup, error)
}

// MembershipFunc adapts a function to Membership. With the real store:
//
//	api.MembershipFunc(func(ctx context.Context) (api.MemberLookup, error) {
//		m, err := db.Membership(ctx)
//		if err != nil {
//			return nil, err
//		}
//		return m, nil
//	})
type MembershipFunc func(ctx context.Context) (MemberLookup, error)

// Membership calls f.
func (f MembershipFunc) Membership(ctx context.Context) (MemberLookup, error) { return f(ctx) }

// Settings keys the API reads.
const (
	// SettingBanner is the system-use notification shown at login.
	SettingBanner = "banner"
)
