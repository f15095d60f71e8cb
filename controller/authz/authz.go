// Package authz is the controller's side of access control: it compiles the
// access evaluator (protocol/access) from the store — built-in and custom
// roles, grants, users with their teams — together with the fleet's group
// ancestry, into an immutable View, and keeps the current View behind an
// atomic pointer. The API asks the View about every request; the
// desired-state compiler asks it for each device's policy. There is one
// evaluator, in protocol/access; this package only feeds it.
package authz

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/edgewarden/edgewarden/controller/fleet"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol/access"
)

// View is one compiled, immutable picture of who may do what: the
// evaluator, the roles, and where every device and group sits in the
// group hierarchy. It is safe for concurrent use.
type View struct {
	eval    *access.Evaluator
	hier    *access.Hierarchy
	roles   map[string]access.Role
	devices map[string][]access.GroupRef // device → containing groups, nearest first
	groups  map[string]bool
	users   map[string]store.User
	teams   map[string][]string // user → teams, sorted
}

// NewView compiles a View from a snapshot (store.DB.Snapshot or
// AccessSnapshot) and its resolved membership (snap.Membership()).
func NewView(snap *store.Snapshot, m *fleet.Membership) (*View, error) {
	in := snap.AccessInput()
	e, err := access.Compile(in)
	if err != nil {
		return nil, fmt.Errorf("compile access rules: %w", err)
	}
	v := &View{
		eval:    e,
		roles:   make(map[string]access.Role, len(in.Roles)),
		devices: make(map[string][]access.GroupRef, len(snap.Devices)),
		groups:  make(map[string]bool, len(snap.Groups)),
		users:   make(map[string]store.User, len(snap.Users)),
		teams:   make(map[string][]string),
	}
	for _, t := range snap.Teams {
		for _, m := range t.Members {
			v.teams[m] = append(v.teams[m], t.Name)
		}
	}
	for _, r := range in.Roles {
		v.roles[r.Name] = r
	}
	for _, u := range snap.Users {
		v.users[u.Name] = u
	}
	for _, g := range snap.Groups {
		v.groups[g.Name] = true
	}
	p := snap.Placement(m)
	v.hier, v.devices = p.Hierarchy, p.Devices
	return v, nil
}

// Evaluator returns the compiled evaluator.
func (v *View) Evaluator() *access.Evaluator { return v.eval }

// Device returns a device as a Resource with every group containing it
// (directly, by selector, or through included groups), nearest first. An
// unknown device has no groups: only grants on it or global ones apply.
func (v *View) Device(id string) access.Resource {
	return access.DeviceResource(id, v.devices[id])
}

// Group returns a group as a Resource with the groups that include it.
func (v *View) Group(name string) access.Resource { return v.hier.Group(name) }

// Resource returns the resource of a type and id (see Device and Group;
// apps and the controller have no ancestry).
func (v *View) Resource(t access.ResourceType, id string) access.Resource {
	switch t {
	case access.ResourceDevice:
		return v.Device(id)
	case access.ResourceDeviceGroup:
		return v.Group(id)
	case access.ResourceApp:
		return access.AppResource(id)
	}
	return access.ControllerResource()
}

// HasDevice and HasGroup report whether the snapshot held the device or
// group.
func (v *View) HasDevice(id string) bool { _, ok := v.devices[id]; return ok }

// HasGroup reports whether the snapshot held the group.
func (v *View) HasGroup(name string) bool { return v.groups[name] }

// Role returns a built-in or custom role.
func (v *View) Role(name string) (access.Role, bool) {
	r, ok := v.roles[name]
	return r, ok
}

// User returns a user as stored (without its password hash).
func (v *View) User(name string) (store.User, bool) {
	u, ok := v.users[name]
	return u, ok
}

// TeamsOf returns the teams user is a member of, sorted.
func (v *View) TeamsOf(user string) []string { return v.teams[user] }

// Allowed reports whether user may perform action on res.
func (v *View) Allowed(user string, action access.Action, res access.Resource) bool {
	return v.eval.Allowed(user, action, res)
}

// Decide answers and explains (see access.Evaluator.Decide).
func (v *View) Decide(user string, action access.Action, res access.Resource) access.Decision {
	return v.eval.Decide(user, action, res)
}

// DevicePolicy returns the minimal policy of one device for its document.
func (v *View) DevicePolicy(id string) access.Policy {
	return v.eval.DevicePolicy(v.Device(id))
}

// Source reads what a View is compiled from; *store.DB implements it.
type Source interface {
	// AccessSnapshot reads committed state, with the change sequence it
	// reflects in Snapshot.Seq.
	AccessSnapshot(ctx context.Context) (*store.Snapshot, error)
	// ChangeSeq returns the sequence number of the last committed change.
	ChangeSeq(ctx context.Context) (uint64, error)
}

var _ Source = (*store.DB)(nil)

// Authorizer holds the current View, keyed on the store's change sequence:
// a request that finds the sequence moved rebuilds the View first, so any
// process reading the store after a commit decides on the same truth, and
// nobody has to remember to invalidate anything. It holds no goroutines. A
// failed rebuild is returned to the caller (the request fails closed) and
// retried on the next call.
type Authorizer struct {
	src Source
	log *slog.Logger

	cur atomic.Pointer[built]
	mu  sync.Mutex // one rebuild at a time
}

type built struct {
	seq  uint64
	view *View
}

// New returns an Authorizer reading from src. A nil logger means
// slog.Default().
func New(src Source, log *slog.Logger) *Authorizer {
	if log == nil {
		log = slog.Default()
	}
	return &Authorizer{src: src, log: log}
}

// View returns the View of the last committed change, rebuilding it first
// when the change sequence moved since it was built.
func (a *Authorizer) View(ctx context.Context) (*View, error) {
	seq, err := a.src.ChangeSeq(ctx)
	if err != nil {
		return nil, fmt.Errorf("read access rules: %w", err)
	}
	if b := a.cur.Load(); b != nil && b.seq == seq {
		return b.view, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if b := a.cur.Load(); b != nil && b.seq >= seq {
		return b.view, nil // another request rebuilt it meanwhile
	}
	snap, err := a.src.AccessSnapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("read access rules: %w", err)
	}
	m, err := snap.Membership()
	if err != nil {
		return nil, err
	}
	v, err := NewView(snap, m)
	if err != nil {
		return nil, err
	}
	a.cur.Store(&built{seq: snap.Seq, view: v})
	return v, nil
}
