package api

import (
	"sync"
	"time"
)

// Login throttling: after maxLoginFailures failed logins in a row for one
// user name, further attempts for it are refused for loginLockout, so a
// password cannot be guessed at the speed of the network.
const (
	maxLoginFailures = 10
	loginLockout     = time.Minute
	// maxThrottled bounds the names tracked; when full, the oldest state
	// is forgotten (a reset, never a lockout).
	maxThrottled = 10000
)

type loginFailures struct {
	count       int
	lockedUntil time.Time
}

// loginThrottle counts failed logins per user name. Safe for concurrent use.
type loginThrottle struct {
	mu    sync.Mutex
	names map[string]*loginFailures
}

// locked reports until when logins for name are refused, if they are.
func (t *loginThrottle) locked(name string, now time.Time) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.names[name]
	if f == nil || !now.Before(f.lockedUntil) {
		return time.Time{}, false
	}
	return f.lockedUntil, true
}

// failed records a failed login for name.
func (t *loginThrottle) failed(name string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.names == nil || len(t.names) >= maxThrottled {
		t.names = map[string]*loginFailures{}
	}
	f := t.names[name]
	if f == nil {
		f = &loginFailures{}
		t.names[name] = f
	}
	f.count++
	if f.count >= maxLoginFailures {
		f.count = 0
		f.lockedUntil = now.Add(loginLockout)
	}
}

// succeeded forgets the failures of name.
func (t *loginThrottle) succeeded(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.names, name)
}
