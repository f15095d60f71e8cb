package store

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The database file is readable by the controller's user only, whatever the
// umask of whoever ran the controller.
func TestDatabaseFileMode(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "controller.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("controller.db has mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestDeviceExists(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if ok, err := db.DeviceExists(context.Background(), "nobody"); ok || err != nil {
		t.Fatalf("unknown device: %v %v", ok, err)
	}
}
