package desired

import (
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
)

// sideloadPolicy is the sideload policy in force on a device in groups (all
// of them: direct, by selector, through included groups); store.SideloadFor
// holds the rule.
func sideloadPolicy(snap *store.Snapshot, groups []string) protocol.SideloadPolicy {
	allowed, by := store.SideloadFor(snap.Settings[SettingSideload], snap.SideloadOverrides, groups)
	return protocol.SideloadPolicy{Allowed: allowed, Groups: by}
}
