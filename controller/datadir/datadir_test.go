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
	err := Create(dir, "ca.pem", func(tmp string) error {
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
	if err := Create(dir, "ca.pem", func(tmp string) error { return os.WriteFile(filepath.Join(tmp, "ca.pem"), []byte("y"), 0o600) }); err != nil {
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
	err = Create(dir, "ca.pem", func(string) error { t.Fatal("build ran on an existing controller"); return nil })
	if err == nil || !strings.Contains(err.Error(), "already holds a controller") {
		t.Fatalf("Create over an existing controller: %v", err)
	}
	// An empty directory (made by a package, say) is filled.
	empty := filepath.Join(parent, "empty")
	os.Mkdir(empty, 0o755)
	if err := Create(empty, "f", func(tmp string) error { return os.WriteFile(filepath.Join(tmp, "f"), nil, 0o600) }); err != nil {
		t.Fatalf("Create into an empty directory: %v", err)
	}
}

// The path a packaged install takes: /var/lib is not writable by the
// service user, the package made the (empty) data directory. A kill during
// the move leaves no marker; the next Create says what is there.
func TestCreateInsideAPackagedDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ctl")
	os.Mkdir(dir, 0o700)
	files := func(tmp string) error {
		for _, n := range []string{"ca.pem", "controller.db", "session.key"} {
			if err := os.WriteFile(filepath.Join(tmp, n), []byte(n), 0o600); err != nil {
				return err
			}
		}
		return nil
	}
	boom := errors.New("disk full")
	if err := create(dir, "controller.db", func(tmp string) error { files(tmp); return boom }, true); !errors.Is(err, boom) {
		t.Fatalf("failing build: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a failed build left %v in the data directory", entries)
	}
	// A killed init's temporary directory is removed by the next one.
	os.MkdirAll(filepath.Join(dir, tmpPrefix+"123", "x"), 0o700)
	if err := checkEmpty(dir, "controller.db"); err != nil {
		t.Fatalf("leftover temporary directory: %v", err)
	}
	if err := create(dir, "controller.db", files, true); err != nil {
		t.Fatalf("create inside: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "ca.pem controller.db session.key" {
		t.Fatalf("data directory holds %v", names)
	}
	// Killed mid-move: files but no marker. Refused with what to do.
	os.Remove(filepath.Join(dir, "controller.db"))
	err := Create(dir, "controller.db", func(string) error { t.Fatal("build ran over a half-moved directory"); return nil })
	if err == nil || !strings.Contains(err.Error(), "no controller.db") || !strings.Contains(err.Error(), "remove its contents") {
		t.Fatalf("Create over an interrupted init: %v", err)
	}
}
