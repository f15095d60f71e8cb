package sideload

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"sync"
)

// hashCache remembers the SHA-256 of files by path, valid while the file's
// fileKey (size, mtime, ctime, inode, device) is unchanged. It is used only
// from the guard's goroutine.
type hashCache struct {
	gen     uint64
	entries map[string]cached
}

type cached struct {
	key fileKey
	sum string
	gen uint64 // the scan generation that last saw it
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

// sum returns the SHA-256 (hex) of the regular file at p, whose Lstat is fi.
// A cached sum is used only if the file's key is unchanged.
func (c *hashCache) sum(p string, fi fs.FileInfo) (string, error) {
	key, keyed := keyOf(fi)
	if keyed {
		if e, ok := c.entries[p]; ok && e.key == key {
			e.gen = c.gen
			c.entries[p] = e
			return e.sum, nil
		}
	}
	f, err := openNoFollow(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !before.Mode().IsRegular() {
		return "", fmt.Errorf("%s is no longer a regular file", p)
	}
	h := sha256.New()
	bp := bufPool.Get().(*[]byte)
	_, err = io.CopyBuffer(h, f, *bp)
	bufPool.Put(bp)
	if err != nil {
		return "", err
	}
	s := hex.EncodeToString(h.Sum(nil))
	after, err := f.Stat()
	if err != nil {
		return "", err
	}
	// Cache only what was hashed from a file that did not change meanwhile
	// and is the one the caller looked at.
	if k1, ok := keyOf(before); ok && keyed {
		if k2, _ := keyOf(after); k1 == k2 && k1 == key {
			c.entries[p] = cached{key: key, sum: s, gen: c.gen}
		} else {
			delete(c.entries, p)
		}
	}
	return s, nil
}

// forget drops the cached sum of p (an fsnotify write: hash it again).
func (c *hashCache) forget(p string) { delete(c.entries, p) }

// sweep drops entries not seen since generation gen.
func (c *hashCache) sweep(gen uint64) {
	for p, e := range c.entries {
		if e.gen < gen {
			delete(c.entries, p)
		}
	}
}
