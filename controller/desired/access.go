package desired

import (
	"fmt"
	"slices"
	"time"

	"github.com/edgewarden/edgewarden/controller/authz"
	"github.com/edgewarden/edgewarden/controller/fleet"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
)

// accessPart is what every document of one Compile call shares for local
// access: the compiled access view, the token keys and the revoked token
// ids.
type accessPart struct {
	view    *authz.View
	keys    []protocol.PublicKey
	revoked []string
}

// prepareAccess compiles the snapshot's access rules once per Compile.
// Revoked tokens that have expired by now are left out: agents refuse them
// anyway.
func (c *Compiler) prepareAccess(snap *store.Snapshot, m *fleet.Membership, now time.Time) (*accessPart, error) {
	v, err := authz.NewView(snap, m)
	if err != nil {
		return nil, fmt.Errorf("compile access rules: %w", err)
	}
	p := &accessPart{view: v, keys: c.tokenKeys}
	for _, t := range snap.RevokedTokens {
		if t.ExpiresAt.After(now) {
			p.revoked = append(p.revoked, t.ID)
		}
	}
	slices.Sort(p.revoked)
	p.revoked = slices.Compact(p.revoked)
	return p, nil
}

// apply sets the device's access policy (minimal and deterministic, see
// access.Evaluator.DevicePolicy), the token keys and the revoked token ids.
// A device's document changes (and its revision grows) only when one of
// these changes for it.
func (p *accessPart) apply(doc *protocol.DesiredState, dev *store.Device) {
	doc.Access = p.view.DevicePolicy(dev.ID)
	if len(p.keys) > 0 {
		doc.TokenKeys = p.keys
	}
	if len(p.revoked) > 0 {
		doc.RevokedTokens = p.revoked
	}
}
