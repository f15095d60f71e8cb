package store

import (
	"github.com/edgewarden/edgewarden/controller/fleet"
	"github.com/edgewarden/edgewarden/protocol/access"
)

// Placement is where every group and device of a snapshot sits in the
// group hierarchy, as access decisions see it.
type Placement struct {
	Hierarchy *access.Hierarchy
	// Devices maps each device to its containing groups, nearest first.
	Devices map[string][]access.GroupRef
}

// Placement computes the placement of the snapshot's groups and devices
// from its resolved membership (s.Membership()): a device is held by a
// group that lists it or whose selector matches it, and contained by every
// group that includes such a group.
func (s *Snapshot) Placement(m *fleet.Membership) Placement {
	includes := make(map[string][]string, len(s.Groups))
	direct := make(map[string]map[string]bool, len(s.Groups)) // group → direct members
	selectors := make(map[string]fleet.Selector)
	for _, g := range s.Groups {
		if len(g.Includes) > 0 {
			includes[g.Name] = g.Includes
		}
		set := make(map[string]bool, len(g.Devices))
		for _, d := range g.Devices {
			set[d] = true
		}
		direct[g.Name] = set
		if g.Selector != "" {
			if sel, err := fleet.ParseSelector(g.Selector); err == nil && !sel.Empty() {
				selectors[g.Name] = sel
			}
		}
	}
	p := Placement{Hierarchy: access.NewHierarchy(includes), Devices: make(map[string][]access.GroupRef, len(s.Devices))}
	var holding []string
	for _, d := range s.Devices {
		holding = holding[:0]
		for _, g := range m.GroupsOf(d.ID) {
			sel, hasSel := selectors[g]
			if direct[g][d.ID] || (hasSel && sel.Matches(d.Labels)) {
				holding = append(holding, g)
			}
		}
		p.Devices[d.ID] = p.Hierarchy.Containing(holding)
	}
	return p
}

// Resource returns the resource a grant's scope names, with the groups
// that contain it: what access decisions about that scope ask about.
func (p Placement) Resource(s access.Scope) access.Resource {
	switch s.Kind {
	case access.ScopeDeviceGroup:
		return p.Hierarchy.Group(s.Name)
	case access.ScopeDevice:
		return access.DeviceResource(s.Name, p.Devices[s.Name])
	case access.ScopeApp:
		return access.AppResource(s.Name)
	}
	return access.ControllerResource()
}
