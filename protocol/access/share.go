package access

import (
	"fmt"
	"slices"
	"strings"
)

// CanShare checks whether sharer may grant the template role on group to
// target (`edgewarden share`), without being an admin. All rules must hold:
//
//  1. group is a device group and target is a valid subject (a user target
//     must be an active user);
//  2. sharer holds device-group:share on that group (by a grant on it, on a
//     group that includes it, or global);
//  3. the role is shareable (a template);
//  4. every action the role would give on a group (its device-group and
//     device actions; its other actions are inert on a group scope) is held
//     by sharer on that group: sharing never hands out more than one holds.
//
// The error wraps ErrInvalid, ErrForbidden or ErrEscalation and says which
// rule failed. A nil error means the share may be stored as a grant of role
// to target on GroupScope(group.ID).
func CanShare(e *Evaluator, sharer string, role Role, group Resource, target Subject) error {
	if group.Type != ResourceDeviceGroup || group.ID == "" {
		return fmt.Errorf("%w: roles are shared on a device group, not on %s", ErrInvalid, group)
	}
	if err := target.Validate(); err != nil {
		return fmt.Errorf("share with %s: %w", target, err)
	}
	if target.Kind == SubjectUser && !e.UserActive(target.Name) {
		return fmt.Errorf("%w: cannot share with user %s: not an active user (invite and activate them first)", ErrInvalid, target.Name)
	}
	if d := e.Decide(sharer, DeviceGroupShare, group); !d.Allowed {
		return fmt.Errorf("%w: %s may not share %s: sharing needs %s on that group, and %s", ErrForbidden, sharer, group, DeviceGroupShare, d.Reason)
	}
	if !role.Shareable {
		return fmt.Errorf("%w: role %s is not a template (not shareable); only shareable roles can be shared, or ask an admin to grant it", ErrForbidden, role.Name)
	}
	set, unknown := setOf(role.Actions)
	if len(unknown) > 0 {
		return fmt.Errorf("role %s: %w", role.Name, unknownAction(unknown[0]))
	}
	if missing := e.missing(sharer, set&ScopeDeviceGroup.covers(), group); len(missing) > 0 {
		return fmt.Errorf("%w: %s may not share role %s on %s: it gives %s, which %s does not hold there; share a role within your own rights", ErrEscalation, sharer, role.Name, group, joinActions(missing), sharer)
	}
	return nil
}

// CheckNoEscalation checks that user may hand out actions on scope: create
// or update a role with these actions (scope: ControllerResource(), so the
// user must hold every action everywhere), or create a grant of a role with
// these actions on a scope (the scope as a Resource, with its groups).
// user needs controller:manage-roles, and must hold on scope every action
// that a grant there would make effective. Editing one's own grants is no
// exception. The error wraps ErrForbidden, ErrUnknownAction or
// ErrEscalation and names what is missing.
func CheckNoEscalation(e *Evaluator, user string, actions []Action, scope Resource) error {
	if d := e.Decide(user, ControllerManageRoles, ControllerResource()); !d.Allowed {
		return fmt.Errorf("%w: %s may not create or change roles or grants: that needs %s on the controller, and %s", ErrForbidden, user, ControllerManageRoles, d.Reason)
	}
	set, unknown := setOf(actions)
	if len(unknown) > 0 {
		return unknownAction(unknown[0])
	}
	kind := ScopeGlobal
	switch scope.Type {
	case ResourceDeviceGroup, ResourceDevice, ResourceApp:
		kind = ScopeKind(scope.Type)
	case ResourceController:
	default:
		return fmt.Errorf("%w: unknown resource type %q", ErrInvalid, scope.Type)
	}
	if missing := e.missing(user, set&kind.covers(), scope); len(missing) > 0 {
		where := "everywhere"
		if kind != ScopeGlobal {
			where = "on " + scope.String()
		}
		return fmt.Errorf("%w: %s cannot hand out %s %s: %s does not hold %s %s (no one can give rights they do not hold)", ErrEscalation, user, joinActions(missing), where, user, itOrThem(missing), where)
	}
	return nil
}

// missing returns the actions of set that user does not hold on res.
func (e *Evaluator) missing(user string, set actionSet, res Resource) []Action {
	var out []Action
	for _, a := range set.actions() {
		if !e.Allowed(user, a, res) {
			out = append(out, a)
		}
	}
	return out
}

func itOrThem(as []Action) string {
	if len(as) == 1 {
		return "it"
	}
	return "them"
}

func joinActions(as []Action) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

// OwnerGrant is the grant the creator of a device group receives on it: the
// built-in group-owner template (view, manage members, share, rename and
// delete), nothing more.
func OwnerGrant(id, creator, group string) Grant {
	return Grant{ID: id, Subject: UserSubject(creator), Role: RoleGroupOwner, Scope: GroupScope(group)}
}

// Administrators returns, sorted, the active users who hold every
// controller action on the controller (by global grants, their own or their
// teams'): the users who can administer. The controller keeps at least one
// at every commit, so there is always a way back without editing the
// database.
func (e *Evaluator) Administrators() []string {
	if e == nil {
		return nil
	}
	all := typeMask(ResourceController)
	var out []string
	for name, u := range e.users {
		if u.disabled {
			continue
		}
		if len(e.missing(name, all, ControllerResource())) == 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Holding is one grant that reaches a user (given to the user or to one of
// its teams), with the actions it makes effective on its scope.
type Holding struct {
	Grant   Grant
	Actions []Action
}

// Holdings returns the grants that reach user, disabled or not (a disabled
// user's rights come back when it is enabled), sorted by grant id.
func (e *Evaluator) Holdings(user string) []Holding {
	if e == nil {
		return nil
	}
	u := e.users[user]
	if u == nil {
		return nil
	}
	subjects := []Subject{UserSubject(user)}
	for _, t := range u.teams {
		subjects = append(subjects, TeamSubject(t))
	}
	var out []Holding
	for _, s := range subjects {
		idx := e.subjects[s]
		if idx == nil {
			continue
		}
		add := func(se *scopeEntry) {
			for _, g := range se.grants {
				out = append(out, Holding{Grant: g.Grant, Actions: g.actions.actions()})
			}
		}
		add(&idx.global)
		for _, m := range []map[string]*scopeEntry{idx.groups, idx.devices, idx.apps} {
			for _, se := range m {
				add(se)
			}
		}
	}
	slices.SortFunc(out, func(a, b Holding) int { return strings.Compare(a.Grant.ID, b.Grant.ID) })
	return out
}

// CheckNoEscalationByRemoval is CheckNoEscalation's twin for taking away:
// user may disable or delete target, or take grants from it, only if user
// holds every right in held (target's holdings, from Holdings) on its
// scope, i.e. target's rights do not exceed user's own. resource turns a
// grant's scope into the Resource to ask about (a group or device with the
// groups that contain it). Taking from oneself is no exception here: the
// last-administrator rule covers that. The error wraps ErrEscalation and
// names the first right user lacks.
func CheckNoEscalationByRemoval(e *Evaluator, user, target string, held []Holding, resource func(Scope) Resource) error {
	if user == target {
		return nil
	}
	for _, h := range held {
		set, _ := setOf(h.Actions)
		res := resource(h.Grant.Scope)
		if missing := e.missing(user, set, res); len(missing) > 0 {
			where := "everywhere"
			if h.Grant.Scope.Kind != ScopeGlobal {
				where = "on " + res.String()
			}
			return fmt.Errorf("%w: %s may not disable, delete or take rights from %s: %s holds %s %s (grant %s, role %s), which %s does not; ask a user who holds them",
				ErrEscalation, user, target, target, joinActions(missing), where, h.Grant.ID, h.Grant.Role, user)
		}
	}
	return nil
}
