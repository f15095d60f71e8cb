//go:build linux

package sideload

import (
	"io/fs"
	"os"
	"syscall"
)

// fileKey identifies one version of a file's content for the hash cache:
// size, mtime, inode, device and ctime. mtime alone is not enough: it can be
// set to anything with touch or utimes, so a binary replaced with one of the
// same size and the old mtime looks unchanged. ctime cannot be set from
// userspace; the kernel moves it to the current time on every write,
// truncate, chmod, chown, link or rename, so a replaced or rewritten file
// always gets a new ctime and misses the cache.
type fileKey struct {
	size, mtime, ctime int64
	ino, dev           uint64
}

func keyOf(fi fs.FileInfo) (fileKey, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileKey{}, false
	}
	return fileKey{
		size:  fi.Size(),
		mtime: fi.ModTime().UnixNano(),
		ctime: int64(st.Ctim.Sec)*1e9 + int64(st.Ctim.Nsec),
		ino:   uint64(st.Ino),
		dev:   uint64(st.Dev),
	}, true
}

// ctimeOf returns the inode change time of fi, or false.
func ctimeOf(fi fs.FileInfo) (int64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int64(st.Ctim.Sec)*1e9 + int64(st.Ctim.Nsec), true
}

// openNoFollow opens a regular file for reading without following a
// symlink and without blocking on a FIFO swapped in after the Lstat.
func openNoFollow(p string) (*os.File, error) {
	return os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}
