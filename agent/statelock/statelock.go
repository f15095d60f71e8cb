// Package statelock holds the exclusive lock that makes an agent the only
// one working on its state directory. Two agents on one directory would
// kill each other's apps, race on the outbox and the quarantine, and fight
// over the broker session; the second one must refuse before it touches
// anything. The controller takes the same kind of lock on its data
// directory (AcquireAs), so `serve` and offline commands such as
// `recover-admin` never run on one directory at once.
//
// The lock is flock(2) on STATE/agent.lock: the kernel drops it when the
// process dies, kill -9 included, so a crash never leaves a stale lock. The
// file holds the pid of the holder, for the error message only.
package statelock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// File is the lock file's name in the state directory.
const File = "agent.lock"

// ErrLocked is returned (wrapped) when another process holds the lock.
var ErrLocked = errors.New("state directory is in use")

// Lock is a held state directory lock.
type Lock struct {
	f *os.File
}

// Owner says which program takes a directory lock: the lock file's name
// and the words of the error messages.
type Owner struct {
	File    string // lock file name in the directory
	Program string // e.g. edgewarden-agent
	DirFlag string // the flag naming the directory, e.g. --state
}

// Agent is the agent's lock on its state directory.
var Agent = Owner{File: File, Program: "edgewarden-agent", DirFlag: "--state"}

// Acquire takes the agent's lock of stateDir without waiting. The directory
// must exist. When another process holds it, the error wraps ErrLocked and
// names that process; nothing in the directory is changed.
func Acquire(stateDir string) (*Lock, error) { return AcquireAs(stateDir, Agent) }

// AcquireAs is Acquire for any program's directory lock.
func AcquireAs(dir string, o Owner) (*Lock, error) {
	path := filepath.Join(dir, o.File)
	// No O_TRUNC: the file of a running holder must keep its pid.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock directory %s: %w (is it the right %s directory, and may this user write it?)", dir, err, o.DirFlag)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := readHolder(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: another %s process%s is running on %s (it holds %s); stop it first (e.g. systemctl stop %s) or give this one another %s", ErrLocked, o.Program, holder, dir, path, o.Program, o.DirFlag)
		}
		return nil, fmt.Errorf("lock directory %s: %w", dir, err)
	}
	// Ours now: record who holds it.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// readHolder returns " (pid N)" from the lock file, or "" if unreadable.
func readHolder(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		return ""
	}
	return fmt.Sprintf(" (pid %d)", pid)
}

// Release drops the lock. It is safe to call more than once and on nil.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor releases the flock
	l.f = nil
	return err
}
