package access

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Errors returned by validation and by the sharing and escalation checks,
// wrapped with a message that names the object and the rule.
var (
	// ErrUnknownAction: an action is not in the catalogue.
	ErrUnknownAction = errors.New("unknown action")
	// ErrInvalid: a role, grant, subject, scope or user is malformed.
	ErrInvalid = errors.New("invalid access rule")
	// ErrForbidden: the acting user lacks a right the operation needs.
	ErrForbidden = errors.New("forbidden")
	// ErrEscalation: the operation would hand out rights the acting user
	// does not hold.
	ErrEscalation = errors.New("privilege escalation")
)

// namePattern is what role, user and team names look like.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// maxScopeName bounds the name in a Scope (a group, device or app name).
const maxScopeName = 128

// SubjectKind says whether a grant goes to a user or a team.
type SubjectKind string

// Subject kinds.
const (
	SubjectUser SubjectKind = "user"
	SubjectTeam SubjectKind = "team"
)

// Subject is who a grant is given to: a user, or a team (every active member).
type Subject struct {
	Kind SubjectKind `json:"kind" openapi:"enum=user|team"`
	Name string      `json:"name"`
}

// UserSubject and TeamSubject build subjects.
func UserSubject(name string) Subject { return Subject{Kind: SubjectUser, Name: name} }

// TeamSubject returns the subject for a team.
func TeamSubject(name string) Subject { return Subject{Kind: SubjectTeam, Name: name} }

func (s Subject) String() string { return string(s.Kind) + " " + s.Name }

// Validate checks the kind and the name.
func (s Subject) Validate() error {
	if s.Kind != SubjectUser && s.Kind != SubjectTeam {
		return fmt.Errorf("%w: subject kind %q: want %q or %q", ErrInvalid, s.Kind, SubjectUser, SubjectTeam)
	}
	if !namePattern.MatchString(s.Name) {
		return fmt.Errorf("%w: %s name %q: use 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", ErrInvalid, s.Kind, s.Name)
	}
	return nil
}

// ScopeKind is what a grant covers.
type ScopeKind string

// Scope kinds.
const (
	// ScopeGlobal covers everything: every action on every resource.
	ScopeGlobal ScopeKind = "global"
	// ScopeDeviceGroup covers the group, the groups it includes (directly or
	// through nesting) and every device in any of them (direct, by selector
	// or nested): device-group and device actions.
	ScopeDeviceGroup ScopeKind = "device-group"
	// ScopeDevice covers one device: device actions.
	ScopeDevice ScopeKind = "device"
	// ScopeApp covers one app and its versions: app actions.
	ScopeApp ScopeKind = "app"
)

// Scope is what a grant covers. Name is empty for ScopeGlobal and names the
// group, device or app otherwise.
type Scope struct {
	Kind ScopeKind `json:"kind" openapi:"enum=global|device-group|device|app"`
	Name string    `json:"name,omitempty"` // Absent for global; names the group
}

// Global, GroupScope, DeviceScope and AppScope build scopes.
func Global() Scope { return Scope{Kind: ScopeGlobal} }

// GroupScope returns the scope of a device group.
func GroupScope(name string) Scope { return Scope{Kind: ScopeDeviceGroup, Name: name} }

// DeviceScope returns the scope of one device.
func DeviceScope(id string) Scope { return Scope{Kind: ScopeDevice, Name: id} }

// AppScope returns the scope of one app.
func AppScope(name string) Scope { return Scope{Kind: ScopeApp, Name: name} }

// String returns "global" or "<kind> <name>", e.g. "device-group line-1".
func (s Scope) String() string {
	if s.Kind == ScopeGlobal {
		return string(ScopeGlobal)
	}
	return string(s.Kind) + " " + s.Name
}

// Validate checks the kind and that the name is present exactly when needed.
func (s Scope) Validate() error {
	switch s.Kind {
	case ScopeGlobal:
		if s.Name != "" {
			return fmt.Errorf("%w: a global scope has no name (got %q)", ErrInvalid, s.Name)
		}
		return nil
	case ScopeDeviceGroup, ScopeDevice, ScopeApp:
		if s.Name == "" || len(s.Name) > maxScopeName || strings.ContainsFunc(s.Name, isControl) {
			return fmt.Errorf("%w: %s scope needs a name of 1-%d printable characters (got %q)", ErrInvalid, s.Kind, maxScopeName, s.Name)
		}
		return nil
	}
	return fmt.Errorf("%w: scope kind %q: want global, device-group, device or app", ErrInvalid, s.Kind)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// covers is the set of actions a grant on this kind of scope can give: a
// role's other actions are inert there.
func (k ScopeKind) covers() actionSet {
	switch k {
	case ScopeGlobal:
		return allActions
	case ScopeDeviceGroup:
		return groupActions | deviceActions
	case ScopeDevice:
		return deviceActions
	case ScopeApp:
		return appActions
	}
	return 0
}

// Grant gives a role to a subject on a scope.
type Grant struct {
	// ID identifies the grant (e.g. "g-12"); explanations name it.
	ID      string  `json:"id"`
	Subject Subject `json:"subject"`
	Role    string  `json:"role"`
	Scope   Scope   `json:"scope"`
}

// Validate checks the grant's own fields; that the role exists is checked
// when an Evaluator is compiled, that the scope's object exists is the
// store's job.
func (g Grant) Validate() error {
	if g.ID == "" || len(g.ID) > 64 || strings.ContainsFunc(g.ID, isControl) {
		return fmt.Errorf("%w: grant id %q: want 1-64 printable characters", ErrInvalid, g.ID)
	}
	if err := g.Subject.Validate(); err != nil {
		return fmt.Errorf("grant %s: %w", g.ID, err)
	}
	if !namePattern.MatchString(g.Role) {
		return fmt.Errorf("%w: grant %s: role name %q is not a valid role name", ErrInvalid, g.ID, g.Role)
	}
	if err := g.Scope.Validate(); err != nil {
		return fmt.Errorf("grant %s: %w", g.ID, err)
	}
	return nil
}

// User is a user as the evaluator sees it: a name and the teams it belongs
// to. A user that is not listed, or is Disabled, is allowed nothing, whatever
// grants name it or its teams. Invited (not yet activated) users count as
// disabled.
type User struct {
	Name     string   `json:"name"`
	Teams    []string `json:"teams,omitempty"`
	Disabled bool     `json:"disabled,omitempty"`
}

// Validate checks the user and team names.
func (u User) Validate() error {
	if !namePattern.MatchString(u.Name) {
		return fmt.Errorf("%w: user name %q: use 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", ErrInvalid, u.Name)
	}
	for _, t := range u.Teams {
		if !namePattern.MatchString(t) {
			return fmt.Errorf("%w: user %s: team name %q is not valid", ErrInvalid, u.Name, t)
		}
	}
	return nil
}

// Role is a named set of actions. A shareable role is a template: a user
// holding device-group:share on a group may grant it on that group (see
// CanShare). Built-in roles cannot be changed or deleted.
type Role struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Actions     []Action `json:"actions"`
	Shareable   bool     `json:"shareable,omitempty"`
	Builtin     bool     `json:"builtin,omitempty"`
}

// ValidateRole checks a role's name and that every action is in the
// catalogue. An unknown action is an error wrapping ErrUnknownAction that
// names it and points at `edgewarden actions ls`.
func ValidateRole(r Role) error {
	if !namePattern.MatchString(r.Name) {
		return fmt.Errorf("%w: role name %q: use 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", ErrInvalid, r.Name)
	}
	if len(r.Actions) == 0 {
		return fmt.Errorf("%w: role %s has no actions; give it at least one (see `edgewarden actions ls`)", ErrInvalid, r.Name)
	}
	for _, a := range r.Actions {
		if _, ok := actionBit[a]; !ok {
			return fmt.Errorf("role %s: %w", r.Name, unknownAction(a))
		}
	}
	return nil
}

// Built-in role names.
const (
	RoleAdmin           = "admin"
	RolePlantAdmin      = "plant-admin"
	RoleSecurityOfficer = "security-officer"
	RoleOperator        = "operator"
	RoleViewer          = "viewer"
	// RoleGroupOwner is the template given to the creator of a device group,
	// on that group: view it, manage its members and selector, share it,
	// rename and delete it.
	RoleGroupOwner = "group-owner"
)

// builtinRoles are the built-in roles; BuiltinRoles returns copies.
var builtinRoles = []Role{
	{
		Name:        RoleAdmin,
		Description: "everything: every action in the catalogue",
		Actions:     allActions.actions(),
	},
	{
		Name:        RolePlantAdmin,
		Description: "runs the plant's devices: groups, enrollment, devices and app deployment; no users, roles, trust or sideloading",
		Actions: []Action{
			ControllerCreateDeviceGroup, ControllerEnroll,
			DeviceGroupView, DeviceGroupManageMembers, DeviceGroupShare, DeviceGroupDelete,
			DeviceView, DeviceAppInstall, DeviceAppOperate, DeviceAppAccess, DeviceLogs, DeviceManage,
			AppView, AppDeploy,
		},
	},
	{
		Name:        RoleSecurityOfficer,
		Description: "owns integrity: publisher keys, the sideload ban and banner, the audit log, operator token revocation",
		Actions: []Action{
			ControllerSettings, ControllerAudit, ControllerTrust, ControllerManageTokens,
			DeviceGroupView,
			DeviceView, DeviceLogs, DeviceSideload,
			AppView, AppDeleteVersion,
		},
	},
	{
		Name:        RoleOperator,
		Description: "works on devices: see them, start and stop apps, use them, read logs (template)",
		Actions: []Action{
			DeviceGroupView,
			DeviceView, DeviceAppOperate, DeviceAppAccess, DeviceLogs,
			AppView,
		},
		Shareable: true,
	},
	{
		Name:        RoleViewer,
		Description: "read-only: see groups, devices and apps (template)",
		Actions:     []Action{DeviceGroupView, DeviceView, AppView},
		Shareable:   true,
	},
	{
		Name:        RoleGroupOwner,
		Description: "given to a group's creator on that group: view it, manage its members and selector, share it, rename and delete it; nothing on its devices beyond (template)",
		Actions:     []Action{DeviceGroupView, DeviceGroupManageMembers, DeviceGroupShare, DeviceGroupDelete},
		Shareable:   true,
	},
}

func init() {
	for i := range builtinRoles {
		builtinRoles[i].Builtin = true
		if err := ValidateRole(builtinRoles[i]); err != nil {
			panic("access: built-in " + err.Error())
		}
	}
}

// BuiltinRoles returns the built-in roles (copies, Builtin set), in the order
// admin, plant-admin, security-officer, operator, viewer, group-owner.
func BuiltinRoles() []Role {
	out := make([]Role, len(builtinRoles))
	for i, r := range builtinRoles {
		r.Actions = slices.Clone(r.Actions)
		out[i] = r
	}
	return out
}

// IsBuiltinRole reports whether name is a built-in role.
func IsBuiltinRole(name string) bool {
	return slices.ContainsFunc(builtinRoles, func(r Role) bool { return r.Name == name })
}
