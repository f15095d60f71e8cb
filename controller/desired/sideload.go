package desired

import (
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
)

// sideloadPolicy is the sideload policy in force on a device in groups (all
// of them: direct, by selector, through included groups): the global
// setting, unless a group of the device has an override; when its groups'
// overrides disagree, deny wins.
func sideloadPolicy(snap *store.Snapshot, groups []string) protocol.SideloadPolicy {
	global := protocol.SideloadPolicy{Allowed: snap.Settings[SettingSideload] == store.SideloadAllow}
	if len(snap.SideloadOverrides) == 0 {
		return global
	}
	in := make(map[string]bool, len(groups))
	for _, g := range groups {
		in[g] = true
	}
	var allow, deny []string
	for _, o := range snap.SideloadOverrides { // sorted by group
		if !in[o.Group] {
			continue
		}
		if o.Policy == store.SideloadAllow {
			allow = append(allow, o.Group)
		} else {
			deny = append(deny, o.Group)
		}
	}
	switch {
	case len(deny) > 0:
		return protocol.SideloadPolicy{Allowed: false, Groups: deny}
	case len(allow) > 0:
		return protocol.SideloadPolicy{Allowed: true, Groups: allow}
	}
	return global
}
