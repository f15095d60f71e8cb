package link_test

import (
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/agent/link"
)

func TestBackoffGrowsCapsAndJitters(t *testing.T) {
	min, max := 100*time.Millisecond, 5*time.Second
	for n := range 40 {
		ceil := max
		if n < 6 {
			ceil = min << n
		}
		seen := map[time.Duration]bool{}
		for range 50 {
			d := link.Backoff(n, min, max)
			if d < ceil/2 || d > ceil {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", n, d, ceil/2, ceil)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Fatalf("attempt %d: only %d distinct delays in 50 draws; a fleet would reconnect in lockstep", n, len(seen))
		}
	}
}

func TestNewValidates(t *testing.T) {
	ok := func([]byte) bool { return true }
	for name, o := range map[string]link.Options{
		"bad device id": {DeviceID: "A/B", BrokerURL: "tls://127.0.0.1:1", OnDesired: ok},
		"no broker":     {DeviceID: "a", OnDesired: ok},
		"no handler":    {DeviceID: "a", BrokerURL: "tls://127.0.0.1:1"},
	} {
		if _, err := link.New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
