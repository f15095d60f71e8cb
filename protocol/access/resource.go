package access

import "slices"

// Resource is what an action is asked about. The evaluator has no database:
// the caller supplies the group ancestry of devices and groups.
type Resource struct {
	Type ResourceType
	// ID names the device, group or app; empty for the controller.
	ID string
	// Groups are the device groups that contain the resource: for a device,
	// every group it is in (directly, by label selector, or through an
	// included group); for a group, every group that includes it, directly
	// or through nesting. Empty for apps and the controller. Each names the
	// group through which it contains the resource (see GroupRef);
	// Hierarchy computes them, nearest first. When several grants allow an
	// action, the explanation names the one on the earliest group here.
	Groups []GroupRef
}

// GroupRef is one group containing a resource, and the path to it.
type GroupRef struct {
	// Name is the containing group.
	Name string `json:"name"`
	// Via is the group (itself in the same Groups list) through which Name
	// contains the resource, because Name includes Via. Empty: Name holds
	// the resource directly (a device as a direct or selector member, a
	// group as a directly included child).
	Via string `json:"via,omitempty"`
}

// ControllerResource is the controller, or "everywhere": only global grants
// cover it. Asking about a device action on it asks whether the user may do
// that on every device.
func ControllerResource() Resource { return Resource{Type: ResourceController} }

// DeviceResource is a device in the given groups (see Resource.Groups).
func DeviceResource(id string, groups []GroupRef) Resource {
	return Resource{Type: ResourceDevice, ID: id, Groups: groups}
}

// GroupResource is a device group included by the given ancestor groups.
func GroupResource(name string, ancestors []GroupRef) Resource {
	return Resource{Type: ResourceDeviceGroup, ID: name, Groups: ancestors}
}

// AppResource is an app.
func AppResource(name string) Resource { return Resource{Type: ResourceApp, ID: name} }

// String returns "<type> <id>", or "controller".
func (r Resource) String() string {
	if r.Type == ResourceController {
		return string(ResourceController)
	}
	return string(r.Type) + " " + r.ID
}

// path returns the groups from g down to the one that holds the resource
// directly: [g, child, grandchild, ...]. It stops on a broken or cyclic chain.
func (r Resource) path(g string) []string {
	out := []string{g}
	cur := g
	for range len(r.Groups) {
		i := slices.IndexFunc(r.Groups, func(ref GroupRef) bool { return ref.Name == cur })
		if i < 0 || r.Groups[i].Via == "" {
			break
		}
		cur = r.Groups[i].Via
		out = append(out, cur)
	}
	return out
}

// Hierarchy is the nesting of device groups (which group includes which),
// used to compute the Groups of a Resource. It is immutable once built and
// safe for concurrent use.
type Hierarchy struct {
	parents map[string][]string // child → groups that include it, sorted
}

// NewHierarchy builds the hierarchy from each group's included child groups
// (store.Group.Includes). Cycles (which the store refuses) are tolerated:
// every group is visited once.
func NewHierarchy(includes map[string][]string) *Hierarchy {
	h := &Hierarchy{parents: make(map[string][]string)}
	for parent, children := range includes {
		for _, c := range children {
			h.parents[c] = append(h.parents[c], parent)
		}
	}
	for c := range h.parents {
		slices.Sort(h.parents[c])
		h.parents[c] = slices.Compact(h.parents[c])
	}
	return h
}

// Containing returns the groups that contain a resource held directly by the
// given groups: those groups (Via empty) and, breadth first, every group that
// includes one of them (Via set to the included group on a shortest path).
// Give it the groups that hold a device directly or by label selector; for
// a group use Ancestors. A nil Hierarchy knows no nesting.
func (h *Hierarchy) Containing(direct []string) []GroupRef {
	seen := make(map[string]bool, len(direct))
	var out []GroupRef
	d := slices.Clone(direct)
	slices.Sort(d)
	for _, g := range d {
		if !seen[g] {
			seen[g] = true
			out = append(out, GroupRef{Name: g})
		}
	}
	if h == nil {
		return out
	}
	for i := 0; i < len(out); i++ {
		child := out[i].Name
		for _, p := range h.parents[child] {
			if !seen[p] {
				seen[p] = true
				out = append(out, GroupRef{Name: p, Via: child})
			}
		}
	}
	return out
}

// Ancestors returns the groups that include group, directly (Via empty) or
// through nesting, nearest first. The group itself is not in the list.
func (h *Hierarchy) Ancestors(group string) []GroupRef {
	if h == nil {
		return nil
	}
	refs := h.Containing(h.parents[group])
	// A cycle through group would list group as its own ancestor.
	return slices.DeleteFunc(refs, func(r GroupRef) bool { return r.Name == group })
}

// Device returns the Resource of a device held directly (or by selector) by
// the given groups.
func (h *Hierarchy) Device(id string, direct []string) Resource {
	return DeviceResource(id, h.Containing(direct))
}

// Group returns the Resource of a group with its ancestors.
func (h *Hierarchy) Group(name string) Resource {
	return GroupResource(name, h.Ancestors(name))
}
