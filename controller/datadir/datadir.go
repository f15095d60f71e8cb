// Package datadir creates a controller's data directory all or nothing:
// built next to its final place and renamed into it. (The lock that keeps
// one controller per directory is controller/server's lockDataDir.)
package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Create makes the data directory dir all or nothing: build fills a new
// temporary directory next to dir, which is then renamed to dir. If build
// fails, the temporary directory is removed and dir is left as it was (not
// there, or empty), so Create can run again. dir must not exist or be an
// empty directory.
func Create(dir string, build func(tmp string) error) error {
	if dir == "" {
		return errors.New("no data directory given; pass --data DIR")
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s already holds a controller (or other files); refusing to overwrite it — choose a new directory", dir)
	}
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".init-")
	if err != nil {
		return fmt.Errorf("create a temporary directory next to %s: %w", dir, err)
	}
	if err := os.Chmod(tmp, 0o700); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if err := build(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	// rename(2) replaces an empty directory (one made by a package, with
	// its owner) and fails on one that is not empty: if another init won
	// the race, ours is discarded. (os.Rename refuses any existing
	// directory, so the system call it is.)
	if err := syscall.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("move the new data directory into place at %s: %w", dir, err)
	}
	if d, err := os.Open(parent); err == nil {
		_ = d.Sync() // make the rename durable
		d.Close()
	}
	return nil
}
