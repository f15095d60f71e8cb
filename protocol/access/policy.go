// Package access is Edgewarden's access model, shared by the controller API
// and the agent's local API: the catalogue of actions per resource type, the
// built-in roles, and the evaluator that decides (and explains) whether a
// user may perform an action on a resource.
//
// The model: a Role is a named set of actions; a Grant gives a role to a
// user or a team on a Scope (global, one device group, one device, one app).
// Permissions add up across grants and teams; nothing is allowed without a
// grant; unknown and disabled users are allowed nothing. Device actions
// granted on a group apply to every device in it (direct, by selector,
// nested) and device-group actions to the groups it includes; app actions
// come from grants on the app or global ones; controller actions only from
// global grants.
//
// The controller compiles an Evaluator from its whole database (Compile) and
// uses it for every API call; for each device it compiles a minimal Policy
// (Evaluator.DevicePolicy), which travels in the signed desired state. The
// agent turns that Policy into an Evaluator of its own (Policy.Evaluator):
// one evaluator, both sides. Evaluators are immutable; swap them with an
// atomic.Pointer when the policy changes. A nil *Evaluator allows nothing.
//
// CanShare and CheckNoEscalation hold the rules for handing out rights:
// sharing a template role on a group, and creating roles and grants.
package access

import (
	"slices"
	"strings"
)

// Policy is the part of a device's desired state that decides local access
// on that device, offline: the grants that concern it, compiled by the
// controller (Evaluator.DevicePolicy). It is minimal (only grants whose scope
// covers the device and whose role has a device action, and only device
// actions) and every list is sorted, so equal content encodes to equal bytes.
//
// The zero value allows nothing. A user who is not in Users (removed,
// disabled, invited) is allowed nothing.
type Policy struct {
	// CatalogueVersion is the action catalogue the controller compiled
	// against. Actions this agent does not know are ignored.
	CatalogueVersion int `json:"catalogue_version,omitempty"`
	// Roles are the roles the grants name, with their device actions only.
	// Sorted by name.
	Roles []Role `json:"roles,omitempty"`
	// Grants are the grants that concern this device: global, on the device,
	// or on a group that contains it. Sorted by id.
	Grants []Grant `json:"grants,omitempty"`
	// Users are the active users the grants reach (directly or through a
	// team), with the teams among the grants' subjects. Sorted by name.
	Users []User `json:"users,omitempty"`
	// Groups are the device's containing groups that grants name, with the
	// groups on the path between them and the device (see GroupRef), for
	// matching and explaining group grants. In the order of the device's
	// groups as the controller knows them (nearest first).
	Groups []GroupRef `json:"groups,omitempty"`
}

// Evaluator compiles the policy for the agent. It refuses a malformed policy
// (bad names, duplicate ids, a grant naming a missing role): the agent should
// call it before applying a document and reject the document if it fails.
// Unknown actions (from a newer catalogue) are ignored.
func (p *Policy) Evaluator() (*Evaluator, error) {
	return compile(Input{Roles: p.Roles, Grants: p.Grants, Users: p.Users}, false)
}

// Device returns the device as a Resource, with the group paths the policy
// carries; pass it to the policy's Evaluator.
func (p *Policy) Device(id string) Resource {
	return DeviceResource(id, p.Groups)
}

// CompileForDevice compiles the policy of one device from the whole input.
// device is the device with all its containing groups (Hierarchy.Device).
// To compile many devices, Compile once and call DevicePolicy for each.
func CompileForDevice(in Input, device Resource) (Policy, error) {
	e, err := Compile(in)
	if err != nil {
		return Policy{}, err
	}
	return e.DevicePolicy(device), nil
}

// DevicePolicy returns the minimal, deterministic Policy of one device:
// grants whose scope covers the device (global, the device, a group in
// device.Groups), whose role has at least one device action, and whose
// subject reaches at least one active user. The cost is proportional to
// those grants, not to all grants.
func (e *Evaluator) DevicePolicy(device Resource) Policy {
	p := Policy{CatalogueVersion: CatalogueVersion}
	if e == nil {
		return p
	}
	refs := make(map[string]GroupRef, len(device.Groups))
	for _, g := range device.Groups {
		if _, ok := refs[g.Name]; !ok {
			refs[g.Name] = g
		}
	}
	var grants []*compiledGrant
	grants = append(grants, e.byScope[Global()]...)
	if device.ID != "" {
		grants = append(grants, e.byScope[DeviceScope(device.ID)]...)
	}
	for name := range refs {
		grants = append(grants, e.byScope[GroupScope(name)]...)
	}

	roles := make(map[string]bool)
	users := make(map[string]map[string]bool) // user → teams among subjects
	groups := make(map[string]bool)
	for _, g := range grants {
		switch g.Subject.Kind {
		case SubjectUser:
			if !e.UserActive(g.Subject.Name) {
				continue
			}
			if users[g.Subject.Name] == nil {
				users[g.Subject.Name] = make(map[string]bool)
			}
		case SubjectTeam:
			members := e.members[g.Subject.Name]
			if len(members) == 0 {
				continue
			}
			for _, m := range members {
				if users[m] == nil {
					users[m] = make(map[string]bool)
				}
				users[m][g.Subject.Name] = true
			}
		}
		p.Grants = append(p.Grants, g.Grant)
		roles[g.Role] = true
		if g.Scope.Kind == ScopeDeviceGroup {
			for _, name := range device.path(g.Scope.Name) {
				groups[name] = true
			}
		}
	}
	slices.SortFunc(p.Grants, func(a, b Grant) int { return strings.Compare(a.ID, b.ID) })
	for name := range roles {
		p.Roles = append(p.Roles, Role{Name: name, Actions: (e.roles[name].actions & deviceActions).actions()})
	}
	slices.SortFunc(p.Roles, func(a, b Role) int { return strings.Compare(a.Name, b.Name) })
	for name, teams := range users {
		u := User{Name: name}
		for t := range teams {
			u.Teams = append(u.Teams, t)
		}
		slices.Sort(u.Teams)
		p.Users = append(p.Users, u)
	}
	slices.SortFunc(p.Users, func(a, b User) int { return strings.Compare(a.Name, b.Name) })
	for _, g := range device.Groups {
		if groups[g.Name] {
			p.Groups = append(p.Groups, refs[g.Name])
			delete(groups, g.Name) // first occurrence only
		}
	}
	return p
}
