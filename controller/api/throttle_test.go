package api

import (
	"fmt"
	"testing"
	"time"
)

func TestLoginThrottleSlowsGuessingWithoutLockout(t *testing.T) {
	var th loginThrottle
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	const attacker, victimDesk, other = "203.0.113.9", "10.1.2.3", "198.51.100.7"

	// The first failures from a source cost nothing.
	for i := range sourceFreeFailures {
		if u := th.wait(attacker, "admin", now); !u.IsZero() {
			t.Fatalf("attempt %d throttled already (until %v)", i+1, u)
		}
		th.failed(attacker, "admin", now)
	}
	// Then the source waits, longer after each failure.
	first := th.wait(attacker, "admin", now)
	if !first.After(now) {
		t.Fatal("source not throttled after its free failures")
	}
	now = first
	th.failed(attacker, "admin", now)
	second := th.wait(attacker, "admin", now)
	if d := second.Sub(now); d != 2*throttleBase {
		t.Errorf("delay after one more failure = %v, want %v (doubling from %v)", d, 2*throttleBase, throttleBase)
	}
	// The source is slowed for every account it tries.
	if th.wait(attacker, "someone-else", now).IsZero() {
		t.Error("throttled source may try another account at once")
	}
	// The genuine admin, at a source with no failures, is not locked out.
	if u := th.wait(victimDesk, "admin", now); !u.IsZero() {
		t.Fatalf("a clean source is refused for the attacked account (until %v): a stranger could lock out admin", u)
	}

	// Spread over many sources, failures for one account slow that account
	// for every source that has failed, but still not for clean ones.
	for i := range accountFreeFailures {
		src := fmt.Sprintf("192.0.2.%d", i)
		th.failed(src, "operator", now)
	}
	if th.wait("192.0.2.1", "operator", now).IsZero() {
		t.Error("account under distributed guessing not slowed for a failing source")
	}
	if !th.wait(other, "operator", now).IsZero() {
		t.Error("clean source refused for an account others guessed at")
	}
	// A failing source that has not reached its own limit is slowed by the
	// account's: guessing from many sources gets no free pass.
	th.failed(other, "x", now)
	if th.wait(other, "operator", now).IsZero() {
		t.Error("source with a failure passes the account throttle")
	}

	// Success forgets the source's and the account's failures.
	th.succeeded(victimDesk, "operator")
	if !th.wait("192.0.2.1", "operator", now).IsZero() {
		t.Error("account failures kept after a successful login")
	}
	// Failures are forgotten after a quiet hour.
	later := now.Add(throttleForget + time.Minute)
	if !th.wait(attacker, "admin", later).IsZero() {
		t.Error("source failures never forgotten")
	}
}

// The delay is capped: a patient attacker is slowed, a user is never
// refused for longer than throttleMax.
func TestLoginThrottleCap(t *testing.T) {
	var th loginThrottle
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for range 200 {
		th.failed("203.0.113.9", "admin", now)
	}
	if d := th.wait("203.0.113.9", "admin", now).Sub(now); d != throttleMax {
		t.Errorf("delay after 200 failures = %v, want the cap %v", d, throttleMax)
	}
}

// The tables are bounded: a flood of names cannot grow memory without end.
func TestLoginThrottleBounded(t *testing.T) {
	var th loginThrottle
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for i := range maxThrottled + 50 {
		th.failed(fmt.Sprintf("src-%d", i), fmt.Sprintf("name-%d", i), now)
	}
	if len(th.sources) > maxThrottled || len(th.accounts) > maxThrottled {
		t.Errorf("tables grew to %d sources, %d accounts (limit %d)", len(th.sources), len(th.accounts), maxThrottled)
	}
}
