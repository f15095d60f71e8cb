package backoff_test

import (
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/agent/backoff"
)

func TestDelayGrowsCapsAndJitters(t *testing.T) {
	min, max := 100*time.Millisecond, 5*time.Second
	for n := range 70 {
		ceil := max
		if n < 6 {
			ceil = min << n
		}
		seen := map[time.Duration]bool{}
		for range 50 {
			d := backoff.Delay(n, min, max)
			if d < ceil/2 || d > ceil {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", n, d, ceil/2, ceil)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Fatalf("attempt %d: only %d distinct delays in 50 draws; a fleet would retry in lockstep", n, len(seen))
		}
	}
	if d := backoff.Delay(3, time.Second, time.Millisecond); d < 500*time.Millisecond || d > time.Second {
		t.Fatalf("max below min: %v, want within [min/2, min]", d)
	}
	if d := backoff.Delay(0, 0, 0); d != 0 {
		t.Fatalf("zero bounds: %v", d)
	}
}
