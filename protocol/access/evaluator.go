package access

import (
	"fmt"
	"slices"
	"strings"
)

// Input is everything an Evaluator is compiled from.
type Input struct {
	// Roles are every role grants may name (built-in and custom).
	Roles []Role
	// Grants are every grant.
	Grants []Grant
	// Users are the users with their teams. Users not listed, and Disabled
	// ones, are allowed nothing.
	Users []User
}

// Evaluator decides whether a user may perform an action on a resource, and
// explains why. It is compiled once from an Input (or a device's Policy) into
// an immutable index: per subject, per scope, the set of actions granted,
// with the grants that gave them. It is safe for concurrent use. When the
// policy changes, compile a new one and swap it in (atomic.Pointer).
//
// A nil *Evaluator allows nothing: before a policy is loaded, no access.
type Evaluator struct {
	users    map[string]*userEntry // every listed user, disabled ones too
	subjects map[Subject]*subjectIndex
	roles    map[string]*compiledRole
	// byScope indexes grants whose role has device actions, for DevicePolicy.
	byScope map[Scope][]*compiledGrant
	members map[string][]string // team → active members, sorted
	// fromPolicy: compiled from a device's minimal Policy, which lists only
	// the users its grants reach; an unlisted user there has no grant, not
	// necessarily no account.
	fromPolicy bool
}

type userEntry struct {
	name     string
	teams    []string // sorted
	disabled bool
}

type compiledRole struct {
	name    string
	actions actionSet
}

type compiledGrant struct {
	Grant
	actions actionSet // role actions the scope makes effective
}

// subjectIndex holds one user's or team's grants, by scope kind and name.
type subjectIndex struct {
	global  scopeEntry
	groups  map[string]*scopeEntry
	devices map[string]*scopeEntry
	apps    map[string]*scopeEntry
}

// scope returns the entry of a scope, nil if the subject has no grant there.
func (idx *subjectIndex) scope(kind ScopeKind, name string) *scopeEntry {
	switch kind {
	case ScopeGlobal:
		return &idx.global
	case ScopeDeviceGroup:
		return idx.groups[name]
	case ScopeDevice:
		return idx.devices[name]
	case ScopeApp:
		return idx.apps[name]
	}
	return nil
}

// scopeMap returns the map holding a non-global kind's entries.
func (idx *subjectIndex) scopeMap(kind ScopeKind) *map[string]*scopeEntry {
	switch kind {
	case ScopeDeviceGroup:
		return &idx.groups
	case ScopeDevice:
		return &idx.devices
	}
	return &idx.apps
}

// scopeEntry is what one subject holds on one scope.
type scopeEntry struct {
	actions actionSet
	grants  []*compiledGrant // sorted by ID
}

// Compile builds an Evaluator. It refuses input the controller should never
// hold: a malformed role, grant or user, an action not in the catalogue, a
// duplicate name or id, a grant naming a role that does not exist. The error
// names the offending item.
func Compile(in Input) (*Evaluator, error) {
	return compile(in, true)
}

func compile(in Input, strict bool) (*Evaluator, error) {
	e := &Evaluator{
		users:    make(map[string]*userEntry, len(in.Users)),
		subjects: make(map[Subject]*subjectIndex),
		roles:    make(map[string]*compiledRole, len(in.Roles)),
		byScope:  make(map[Scope][]*compiledGrant),
		members:  make(map[string][]string),

		fromPolicy: !strict,
	}
	for _, r := range in.Roles {
		if !namePattern.MatchString(r.Name) {
			return nil, fmt.Errorf("%w: role name %q is not valid", ErrInvalid, r.Name)
		}
		if _, dup := e.roles[r.Name]; dup {
			return nil, fmt.Errorf("%w: role %s is defined twice", ErrInvalid, r.Name)
		}
		set, unknown := setOf(r.Actions)
		if strict && len(unknown) > 0 {
			return nil, fmt.Errorf("role %s: %w", r.Name, unknownAction(unknown[0]))
		}
		e.roles[r.Name] = &compiledRole{name: r.Name, actions: set}
	}
	for _, u := range in.Users {
		if err := u.Validate(); err != nil {
			return nil, err
		}
		if _, dup := e.users[u.Name]; dup {
			return nil, fmt.Errorf("%w: user %s is listed twice", ErrInvalid, u.Name)
		}
		teams := slices.Clone(u.Teams)
		slices.Sort(teams)
		teams = slices.Compact(teams)
		e.users[u.Name] = &userEntry{name: u.Name, teams: teams, disabled: u.Disabled}
		if !u.Disabled {
			for _, t := range teams {
				e.members[t] = append(e.members[t], u.Name)
			}
		}
	}
	for t := range e.members {
		slices.Sort(e.members[t])
	}
	seen := make(map[string]bool, len(in.Grants))
	for _, g := range in.Grants {
		if err := g.Validate(); err != nil {
			return nil, err
		}
		if seen[g.ID] {
			return nil, fmt.Errorf("%w: grant id %s is used twice", ErrInvalid, g.ID)
		}
		seen[g.ID] = true
		role, ok := e.roles[g.Role]
		if !ok {
			return nil, fmt.Errorf("%w: grant %s names role %q, which does not exist; run `edgewarden roles ls`", ErrInvalid, g.ID, g.Role)
		}
		cg := &compiledGrant{Grant: g, actions: role.actions & g.Scope.Kind.covers()}
		if cg.actions == 0 {
			continue // nothing in the role applies on this scope
		}
		idx := e.subjects[g.Subject]
		if idx == nil {
			idx = &subjectIndex{}
			e.subjects[g.Subject] = idx
		}
		entry := idx.scope(g.Scope.Kind, g.Scope.Name)
		if entry == nil {
			m := idx.scopeMap(g.Scope.Kind)
			if *m == nil {
				*m = make(map[string]*scopeEntry)
			}
			entry = &scopeEntry{}
			(*m)[g.Scope.Name] = entry
		}
		entry.actions |= cg.actions
		entry.grants = append(entry.grants, cg)
		if cg.actions&deviceActions != 0 {
			e.byScope[g.Scope] = append(e.byScope[g.Scope], cg)
		}
	}
	byID := func(a, b *compiledGrant) int { return strings.Compare(a.ID, b.ID) }
	for _, idx := range e.subjects {
		slices.SortFunc(idx.global.grants, byID)
		for _, m := range []map[string]*scopeEntry{idx.groups, idx.devices, idx.apps} {
			for _, s := range m {
				slices.SortFunc(s.grants, byID)
			}
		}
	}
	for _, gs := range e.byScope {
		slices.SortFunc(gs, byID)
	}
	return e, nil
}

// Step is one link of the chain that explains a decision. Kinds, in chain
// order: "grant" (its id), "user" or "team" (the grant's subject), "role",
// "scope" (the scope as "device-group line-1"), then, when the scope is a
// group that contains the resource through nesting or membership, the path
// from that group down to the resource: "group" steps and a final "device"
// or "device-group" step.
type Step struct {
	Kind string `json:"kind"` // In chain order: "grant", "user" or "team", "role", "scope", then "group" steps and a final "device" or "device-group" step.
	Name string `json:"name"`
}

// Decision is the answer to "may this user do this action on this resource".
type Decision struct {
	Allowed bool `json:"allowed"`
	// Chain explains an allowed decision (see Step); empty when denied.
	Chain []Step `json:"chain,omitempty"`
	// Reason explains a denied decision; empty when allowed.
	Reason string `json:"reason,omitempty"`
}

// String renders the decision in one line, e.g.
//
//	allowed: grant g-12 to team ops → role operator → scope device-group line-1 → via group line-1 ⊃ group cell-3 ⊃ device d-7
//	denied: no grant gives device:app-install on device d-7 (user alice, teams: ops)
func (d Decision) String() string {
	if !d.Allowed {
		return "denied: " + d.Reason
	}
	var b strings.Builder
	b.WriteString("allowed: ")
	inPath := false
	for i, s := range d.Chain {
		switch {
		case s.Kind == "user" || s.Kind == "team":
			b.WriteString(" to ")
		case s.Kind == "group" && !inPath:
			b.WriteString(" → via ")
			inPath = true
		case inPath:
			b.WriteString(" ⊃ ")
		case i > 0:
			b.WriteString(" → ")
		}
		b.WriteString(s.Kind)
		b.WriteByte(' ')
		b.WriteString(s.Name)
	}
	return b.String()
}

// Allowed reports whether user may perform action on res. It is Decide
// without the explanation, and does not allocate.
func (e *Evaluator) Allowed(user string, action Action, res Resource) bool {
	bit, ok := actionBit[action]
	if !ok || e == nil {
		return false
	}
	u := e.users[user]
	if u == nil || u.disabled || !applies(action, res.Type) {
		return false
	}
	if e.subjectAllows(e.subjects[Subject{SubjectUser, user}], bit, res) {
		return true
	}
	for _, t := range u.teams {
		if e.subjectAllows(e.subjects[Subject{SubjectTeam, t}], bit, res) {
			return true
		}
	}
	return false
}

// applies reports whether an action can be asked about a resource type:
// actions of the resource's own type; device actions also on a group (do it
// on the devices in it); any action on the controller ("everywhere").
func applies(a Action, t ResourceType) bool {
	at := a.ResourceType()
	return at == t || t == ResourceController || (at == ResourceDevice && t == ResourceDeviceGroup)
}

func (e *Evaluator) subjectAllows(idx *subjectIndex, bit uint8, res Resource) bool {
	if idx == nil {
		return false
	}
	if idx.global.actions.has(bit) {
		return true
	}
	var own map[string]*scopeEntry
	switch res.Type {
	case ResourceDevice:
		own = idx.devices
	case ResourceDeviceGroup:
		own = idx.groups
	case ResourceApp:
		own = idx.apps
	default:
		return false // the controller ("everywhere") is covered by global grants only
	}
	if s := own[res.ID]; s != nil && s.actions.has(bit) {
		return true
	}
	if len(idx.groups) == 0 {
		return false
	}
	for _, g := range res.Groups {
		if s := idx.groups[g.Name]; s != nil && s.actions.has(bit) {
			return true
		}
	}
	return false
}

// Decide answers whether user may perform action on res and explains it.
// Nothing is allowed without a grant; a user that is unknown or disabled is
// allowed nothing. When several grants allow it, the chain names the most
// specific: a grant on the resource itself, then on the nearest containing
// group, then global; the user's own grants before its teams'; lowest id
// first.
func (e *Evaluator) Decide(user string, action Action, res Resource) Decision {
	bit, ok := actionBit[action]
	switch {
	case !ok:
		return denied(unknownAction(action).Error())
	case e == nil:
		return denied("no access policy is loaded yet, so nothing is allowed")
	case !applies(action, res.Type):
		return denied(fmt.Sprintf("%s is a %s action; it does not apply to %s", action, action.ResourceType(), res))
	}
	u := e.users[user]
	switch {
	case u == nil && e.fromPolicy:
		return denied(fmt.Sprintf("no grant gives %s on %s (user %s: no grant on this device, its groups or global reaches this user)", action, res, user))
	case u == nil:
		return denied(fmt.Sprintf("user %q is not an active user here, so nothing is allowed", user))
	case u.disabled:
		return denied(fmt.Sprintf("user %s is disabled or not yet activated, so nothing is allowed", user))
	}
	subjects := make([]Subject, 0, 1+len(u.teams))
	subjects = append(subjects, Subject{SubjectUser, user})
	for _, t := range u.teams {
		subjects = append(subjects, Subject{SubjectTeam, t})
	}
	// Most specific scope first.
	var scopes []Scope
	switch res.Type {
	case ResourceDevice, ResourceDeviceGroup, ResourceApp:
		scopes = append(scopes, Scope{ScopeKind(res.Type), res.ID})
		for _, g := range res.Groups {
			scopes = append(scopes, Scope{ScopeDeviceGroup, g.Name})
		}
	}
	scopes = append(scopes, Global())
	for _, sc := range scopes {
		for _, sub := range subjects {
			idx := e.subjects[sub]
			if idx == nil {
				continue
			}
			entry := idx.scope(sc.Kind, sc.Name)
			if entry == nil || !entry.actions.has(bit) {
				continue
			}
			for _, g := range entry.grants {
				if g.actions.has(bit) {
					return Decision{Allowed: true, Chain: chain(g, res)}
				}
			}
		}
	}
	teams := "none"
	if len(u.teams) > 0 {
		teams = strings.Join(u.teams, ", ")
	}
	return denied(fmt.Sprintf("no grant gives %s on %s (user %s, teams: %s)", action, res, user, teams))
}

// Explain is Decide rendered as one line (see Decision.String).
func (e *Evaluator) Explain(user string, action Action, res Resource) string {
	return e.Decide(user, action, res).String()
}

func denied(reason string) Decision { return Decision{Reason: reason} }

func chain(g *compiledGrant, res Resource) []Step {
	steps := []Step{
		{"grant", g.ID},
		{string(g.Subject.Kind), g.Subject.Name},
		{"role", g.Role},
		{"scope", g.Scope.String()},
	}
	if g.Scope.Kind == ScopeDeviceGroup && !(res.Type == ResourceDeviceGroup && res.ID == g.Scope.Name) {
		for _, name := range res.path(g.Scope.Name) {
			steps = append(steps, Step{"group", name})
		}
		steps = append(steps, Step{string(res.Type), res.ID})
	}
	return steps
}

// Permissions returns every action user may perform on res, in catalogue
// order: what a UI shows as enabled.
func (e *Evaluator) Permissions(user string, res Resource) []Action {
	if e == nil {
		return nil
	}
	var out []Action
	for _, a := range catalogue {
		if e.Allowed(user, a.Name, res) {
			out = append(out, a.Name)
		}
	}
	return out
}

// UserActive reports whether user is listed and not disabled.
func (e *Evaluator) UserActive(user string) bool {
	if e == nil {
		return false
	}
	u := e.users[user]
	return u != nil && !u.disabled
}

// RoleActions returns the catalogue actions of a role, and whether it exists.
func (e *Evaluator) RoleActions(role string) ([]Action, bool) {
	if e == nil {
		return nil, false
	}
	r := e.roles[role]
	if r == nil {
		return nil, false
	}
	return r.actions.actions(), true
}
