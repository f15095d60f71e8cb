package desired

import (
	"slices"
	"sort"

	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// AssignedVersions returns the version of each app assigned to a device
// that belongs to groups (sorted, as fleet.Membership.GroupsOf returns
// them): app name → version. When several of its groups assign different
// versions of one app, the newest (by semantic version) wins, so that
// assigning a new version to a broader group upgrades a device without
// unassigning the old one from a narrower group first. A version that is not
// semver (which checkpoint 1 never stores) loses to any that is.
func AssignedVersions(assignments []store.Assignment, groups []string) map[string]string {
	var out map[string]string
	for _, a := range assignments {
		if _, ok := slices.BinarySearch(groups, a.Group); !ok {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		cur, ok := out[a.App]
		if !ok || newer(a.Version, cur) {
			out[a.App] = a.Version
		}
	}
	return out
}

// newer reports whether version a is newer than b.
func newer(a, b string) bool {
	va, errA := manifest.ParseVersion(a)
	vb, errB := manifest.ParseVersion(b)
	switch {
	case errA != nil:
		return false
	case errB != nil:
		return true
	}
	return va.Compare(vb) > 0
}

// apps fills doc.Apps (the versions assigned to the device's groups, each
// with its manifest and signature exactly as uploaded, sorted by name) and
// doc.Publishers (the trusted keys of the publishers of those apps, sorted
// by name). A publisher that is no longer trusted is left out of
// Publishers while its apps stay in Apps: agents keep such apps running,
// flag them and install nothing new from that publisher.
func apps(snap *store.Snapshot, groups []string, doc *protocol.DesiredState) {
	assigned := AssignedVersions(snap.Assignments, groups)
	if len(assigned) == 0 {
		return
	}
	publishers := map[string]bool{}
	for i := range snap.AppVersions {
		v := &snap.AppVersions[i]
		if assigned[v.Name] != v.Version {
			continue
		}
		doc.Apps = append(doc.Apps, protocol.AppAssignment{
			Name:      v.Name,
			Version:   v.Version,
			Publisher: v.Publisher,
			Manifest:  v.Manifest,
			Signature: v.Signature,
		})
		publishers[v.Publisher] = true
	}
	sort.Slice(doc.Apps, func(i, j int) bool { return doc.Apps[i].Name < doc.Apps[j].Name })
	for _, p := range snap.Publishers {
		if !publishers[p.Name] {
			continue
		}
		keys := p.TrustedKeys()
		if len(keys) == 0 {
			continue
		}
		doc.Publishers = append(doc.Publishers, protocol.Publisher{Name: p.Name, Keys: keys})
	}
	sort.Slice(doc.Publishers, func(i, j int) bool { return doc.Publishers[i].Name < doc.Publishers[j].Name })
}
