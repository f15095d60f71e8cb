package datadir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCreateAllOrNothing(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "ctl")
	boom := errors.New("admin password refused")
	err := Create(dir, func(tmp string) error {
		if err := os.WriteFile(filepath.Join(tmp, "ca.pem"), []byte("x"), 0o600); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Create with a failing step: %v", err)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Fatalf("a failed Create left %v", entries)
	}
	if err := Create(dir, func(tmp string) error { return os.WriteFile(filepath.Join(tmp, "ca.pem"), []byte("y"), 0o600) }); err != nil {
		t.Fatalf("Create after a failed one: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "ca.pem")); err != nil || string(b) != "y" {
		t.Fatalf("created directory holds %q %v", b, err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory mode %v, want 0700", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 1 {
		t.Errorf("parent holds %v, want only the data directory", entries)
	}
	// A directory that holds something is refused, untouched.
	err = Create(dir, func(string) error { t.Fatal("build ran on an existing controller"); return nil })
	if err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("Create over an existing controller: %v", err)
	}
	// An empty directory (made by a package, say) is filled.
	empty := filepath.Join(parent, "empty")
	os.Mkdir(empty, 0o755)
	if err := Create(empty, func(tmp string) error { return os.WriteFile(filepath.Join(tmp, "f"), nil, 0o600) }); err != nil {
		t.Fatalf("Create into an empty directory: %v", err)
	}
}
