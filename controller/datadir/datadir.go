// Package datadir creates a controller's data directory all or nothing.
// (The lock that keeps one controller per directory is controller/server's
// lockDataDir.)
package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
)

// tmpPrefix names the directories Create builds in; one left by a killed
// init is ours to remove.
const tmpPrefix = ".init-"

// Create makes the data directory dir all or nothing. build fills a new
// temporary directory; marker is the file whose presence says the directory
// is complete (the controller's database: the unit starts only when it is
// there).
//
// Where the parent of dir is writable, the temporary directory is made next
// to dir and renamed onto it in one step. Where it is not (a package made
// dir, owned by the service user, in a root-owned /var/lib), the temporary
// directory is made inside dir and its files are moved up one by one,
// marker last: a killed init leaves no marker, and Create says so.
//
// If build fails, everything it made is removed and dir is left as it was
// (not there, or empty), so Create can run again.
func Create(dir, marker string, build func(tmp string) error) error {
	if dir == "" {
		return errors.New("no data directory given; pass --data DIR")
	}
	dir = filepath.Clean(dir)
	if err := checkEmpty(dir, marker); err != nil {
		return err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", parent, err)
	}
	inside := false
	if err := syscall.Access(parent, 2 /* W_OK */); errors.Is(err, fs.ErrPermission) {
		if fi, serr := os.Stat(dir); serr == nil && fi.IsDir() {
			inside = true
		}
	}
	return create(dir, marker, build, inside)
}

// create is Create past its checks; inside picks where the temporary
// directory is made.
func create(dir, marker string, build func(tmp string) error, inside bool) error {
	parent := filepath.Dir(dir)
	var tmp string
	var err error
	if inside {
		tmp, err = os.MkdirTemp(dir, tmpPrefix)
	} else {
		tmp, err = os.MkdirTemp(parent, "."+filepath.Base(dir)+tmpPrefix)
	}
	if err != nil {
		return fmt.Errorf("create a temporary directory next to %s: %w (the parent must be writable, or %s must exist and be writable)", dir, err, dir)
	}
	if err := os.Chmod(tmp, 0o700); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if err := build(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if inside {
		err = moveUp(tmp, dir, marker)
	} else {
		// rename(2) replaces an empty directory (one made by a package,
		// with its owner) and fails on one that is not empty: if another
		// init won the race, ours is discarded. (os.Rename refuses any
		// existing directory, so the system call it is.)
		err = syscall.Rename(tmp, dir)
		syncDir(parent) // make the rename durable
	}
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("move the new data directory into place at %s: %w", dir, err)
	}
	return nil
}

// checkEmpty refuses a dir that holds anything but leftovers of a killed
// Create (which it removes).
func checkEmpty(dir, marker string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // not there (or unreadable: MkdirTemp will say why)
	}
	var others []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), tmpPrefix) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("remove %s, left by an interrupted init: %w", e.Name(), err)
			}
			continue
		}
		others = append(others, e.Name())
	}
	switch {
	case len(others) == 0:
		return nil
	case !slices.Contains(others, marker):
		return fmt.Errorf("%s holds files (%s) but no %s: an earlier init was interrupted or the directory is used by something else; remove its contents and run init again", dir, strings.Join(others, ", "), marker)
	default:
		return fmt.Errorf("%s already holds a controller; refusing to overwrite it — choose a new directory", dir)
	}
}

// moveUp renames every entry of tmp into dir, marker last, and removes tmp.
func moveUp(tmp, dir, marker string) error {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.SliceStable(names, func(i, j int) bool { return names[j] == marker && names[i] != marker })
	for _, n := range names {
		if n == marker {
			syncDir(dir) // everything else is in place before the marker
		}
		if err := os.Rename(filepath.Join(tmp, n), filepath.Join(dir, n)); err != nil {
			return err
		}
	}
	if err := os.Remove(tmp); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
