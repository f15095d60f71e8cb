package api

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Login throttling slows password guessing without handing a stranger a way
// to lock out a named account:
//
//   - Per source address: after sourceFreeFailures failed logins, each
//     further attempt from that address must wait a delay that doubles with
//     every failure (throttleBase up to throttleMax). Refused attempts are
//     answered 429 without checking the password.
//   - Per account: after accountFreeFailures failures from anywhere, the same
//     growing delay applies to the account, but only for sources that have
//     failed before. A source with no failures (the genuine user at their
//     own desk) is never slowed by what others did, so the right password
//     from it still works.
//
// Failures are forgotten after throttleForget without one, and on a
// successful login (for that source and that account).
const (
	sourceFreeFailures  = 5
	accountFreeFailures = 10
	throttleBase        = time.Second
	throttleMax         = 15 * time.Minute
	throttleForget      = time.Hour
	// maxThrottled bounds each table; when full, entries past their
	// forget time go first, then the table starts anew (a reset, never a
	// lockout). A source flooding names is itself throttled long before.
	maxThrottled = 10000
)

type loginFailures struct {
	count int
	last  time.Time
}

// until returns when the next attempt is allowed, given free failures
// without delay.
func (f *loginFailures) until(free int) time.Time {
	if f == nil || f.count < free {
		return time.Time{}
	}
	d := throttleMax
	if n := f.count - free; n < 20 {
		d = min(throttleBase<<n, throttleMax)
	}
	return f.last.Add(d)
}

// loginThrottle counts failed logins per source address and per account
// name. Safe for concurrent use; the zero value is ready.
type loginThrottle struct {
	mu       sync.Mutex
	sources  map[string]*loginFailures
	accounts map[string]*loginFailures
}

// wait returns until when a login for account from source must wait, or
// the zero time when it may go ahead.
func (t *loginThrottle) wait(source, account string, now time.Time) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	src := t.live(t.sources, source, now)
	until := src.until(sourceFreeFailures)
	if src != nil && src.count > 0 {
		if u := t.live(t.accounts, account, now).until(accountFreeFailures); u.After(until) {
			until = u
		}
	}
	if !now.Before(until) {
		return time.Time{}
	}
	return until
}

// live returns the entry for key, or nil when there is none or it is
// forgotten.
func (t *loginThrottle) live(m map[string]*loginFailures, key string, now time.Time) *loginFailures {
	f := m[key]
	if f != nil && now.Sub(f.last) > throttleForget {
		delete(m, key)
		return nil
	}
	return f
}

// failed records a failed login for account from source.
func (t *loginThrottle) failed(source, account string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sources == nil {
		t.sources, t.accounts = map[string]*loginFailures{}, map[string]*loginFailures{}
	}
	t.sources = bump(t.sources, source, now)
	t.accounts = bump(t.accounts, account, now)
}

func bump(m map[string]*loginFailures, key string, now time.Time) map[string]*loginFailures {
	f := m[key]
	if f != nil && now.Sub(f.last) > throttleForget {
		f = nil
	}
	if f == nil {
		if len(m) >= maxThrottled {
			for k, e := range m {
				if now.Sub(e.last) > throttleForget {
					delete(m, k)
				}
			}
			if len(m) >= maxThrottled {
				m = map[string]*loginFailures{}
			}
		}
		f = &loginFailures{}
		m[key] = f
	}
	f.count++
	f.last = now
	return m
}

// succeeded forgets the failures of source and of account.
func (t *loginThrottle) succeeded(source, account string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.sources, source)
	delete(t.accounts, account)
}

// sourceAddr is the address a request came from: the TCP peer. A header
// such as X-Forwarded-For is not trusted, since anyone can set it.
func sourceAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
