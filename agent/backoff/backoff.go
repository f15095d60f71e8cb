// Package backoff is the one retry delay of the agent: reconnecting to the
// broker (agent/link), retrying a failed install (agent/apps) and restarting
// a crashed app (agent/runtime) all wait Delay between attempts.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Delay returns the wait before attempt n (0-based): lo·2ⁿ capped at hi,
// then jittered to a random value in [d/2, d], so a fleet that failed
// together (a broker restart, a controller outage) does not retry in
// lockstep. An hi below lo is taken as lo.
func Delay(n int, lo, hi time.Duration) time.Duration {
	hi = max(lo, hi)
	d := hi
	if n >= 0 && n < 62 {
		if e := lo << n; e > 0 && e < hi && e>>n == lo {
			d = e
		}
	}
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
