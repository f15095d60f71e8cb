package statelock_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/edgewarden/edgewarden/agent/statelock"
)

// flock locks belong to the open file, so a second Acquire in the same
// process conflicts exactly as a second process would.
func TestSecondAcquireRefused(t *testing.T) {
	dir := t.TempDir()
	l, err := statelock.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = statelock.Acquire(dir)
	if !errors.Is(err, statelock.ErrLocked) {
		t.Fatalf("second Acquire: %v, want ErrLocked", err)
	}
	if want := "pid " + strconv.Itoa(os.Getpid()); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "stop it first") {
		t.Fatalf("error %q should name the holder (%s) and say what to do", err, want)
	}
	// The refused attempt must not have wiped the holder's pid.
	b, err := os.ReadFile(filepath.Join(dir, statelock.File))
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("lock file %q, %v: the holder's pid was lost", b, err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	l2, err := statelock.Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	l2.Release()
}

func TestMissingDirectory(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := statelock.Acquire(missing)
	if err == nil || errors.Is(err, statelock.ErrLocked) || !strings.Contains(err.Error(), "--state") {
		t.Fatalf("Acquire(missing): %v, want a clear error", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("Acquire created %s", missing)
	}
}
