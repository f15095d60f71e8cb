// Package sdnotify listens where systemd would (NOTIFY_SOCKET) and counts
// what a service sends there, so tests check the Type=notify and
// WatchdogSec= contract of the units without systemd as PID 1. The agent's
// tests and the end-to-end tests share it.
package sdnotify

import (
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Socket is a notify socket that counts each message it receives
// ("READY=1", "WATCHDOG=1", ...).
type Socket struct {
	Path string // for NOTIFY_SOCKET

	mu     sync.Mutex
	counts map[string]int
}

// Listen opens a notify socket for the test; it closes when the test ends.
func Listen(t testing.TB) *Socket {
	t.Helper()
	s := &Socket{Path: filepath.Join(t.TempDir(), "notify.sock"), counts: map[string]int{}}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: s.Path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				if line != "" {
					s.counts[line]++
				}
			}
			s.mu.Unlock()
		}
	}()
	return s
}

// Count says how many times msg arrived.
func (s *Socket) Count(msg string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[msg]
}
