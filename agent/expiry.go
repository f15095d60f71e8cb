package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/edgewarden/edgewarden/agent/apply"
	"github.com/edgewarden/edgewarden/protocol"
)

// EventPolicyExpired is the kind of the event queued when the document in
// force expires on the device (the controller did not refresh it in time,
// usually because it is unreachable): local access is denied from then on.
// It is queued once at expiry, and again after each reconnect while the
// document is still expired, so the controller learns it at once.
const EventPolicyExpired = "policy_expired"

// checkExpiry queues a policy_expired event when the document in force has
// expired and this expiry was not reported yet, or, with reconnected, on a
// reconnect while it is still expired. Called from Run's loop only.
func (a *Agent) checkExpiry(ctx context.Context, reconnected bool) {
	p := a.applier.Current()
	now := a.opts.Now()
	if p == nil || !p.Expired(now) {
		return
	}
	if !reconnected && a.expiryReported.Equal(p.ExpiresAt) {
		return
	}
	phase := "expired"
	msg := fmt.Sprintf("the desired-state document (revision %d) expired at %s without a refresh from the controller: local access is denied until a new one arrives; apps keep running",
		p.Revision, p.ExpiresAt.UTC().Format(time.RFC3339))
	if reconnected {
		phase = "reconnected"
		msg = fmt.Sprintf("reconnected with the desired-state document (revision %d) expired since %s: local access is denied until a new one arrives",
			p.Revision, p.ExpiresAt.UTC().Format(time.RFC3339))
	}
	ev := protocol.Event{ID: apply.RandomID(), At: now.UTC(), Kind: EventPolicyExpired, Severity: "security", Message: msg,
		Details: map[string]string{"revision": fmt.Sprint(p.Revision), "expires_at": p.ExpiresAt.UTC().Format(time.RFC3339), "phase": phase}}
	if err := a.store.Enqueue(ctx, ev); err != nil {
		a.log.Error("could not queue the policy_expired event; it is tried again", "err", err)
		return
	}
	a.expiryReported = p.ExpiresAt
	a.log.Warn(msg, "kind", EventPolicyExpired, "phase", phase)
}
