package install

import (
	"hash"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Pipelined copy: one goroutine reads and hashes, another writes, so the
// SHA-256 (CPU) and the file writes (kernel copy, then disk) overlap instead
// of taking turns. The writer also starts write-back of each flushed region
// (sync_file_range) so the final fsync has little left to do. Memory: at most
// copyBuffers × copyBufSize in flight.
const (
	copyBufSize = 1 << 20
	copyBuffers = 4
	// writeBackEvery is how many bytes the writer lets accumulate before
	// asking the kernel to start writing them back.
	writeBackEvery = 8 << 20
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// copyHashed copies r to f and into h until r ends, an error, or limit bytes
// (limit < 0: no limit). It returns the bytes read from r (all of which were
// hashed) and the first error; on a write error fewer bytes may be on disk
// than returned, and the error says so.
func copyHashed(f *os.File, h hash.Hash, r io.Reader, limit int64) (int64, error) {
	type chunk struct {
		b *[]byte
		n int
	}
	full := make(chan chunk, copyBuffers)
	free := make(chan *[]byte, copyBuffers)
	for range copyBuffers {
		free <- bufPool.Get().(*[]byte)
	}
	werr := make(chan error, 1)
	start, _ := f.Seek(0, io.SeekCurrent)
	go func() { // writer: owned by copyHashed, which waits on werr
		var err error
		pos, flushed := start, start
		for c := range full {
			if err == nil {
				_, err = f.Write((*c.b)[:c.n])
				pos += int64(c.n)
				if err == nil && pos-flushed >= writeBackEvery {
					// Best effort: start write-back, do not wait for it.
					unix.SyncFileRange(int(f.Fd()), flushed, pos-flushed, unix.SYNC_FILE_RANGE_WRITE)
					flushed = pos
				}
			}
			free <- c.b
		}
		werr <- err
	}()

	var total int64
	var rerr error
	for rerr == nil {
		b := <-free
		buf := *b
		if limit >= 0 && int64(len(buf)) > limit-total {
			buf = buf[:limit-total]
		}
		if len(buf) == 0 {
			free <- b
			break
		}
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			h.Write(buf[:n])
			total += int64(n)
			full <- chunk{b, n}
		} else {
			free <- b
		}
		switch err {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			rerr = io.EOF
		default:
			rerr = err
		}
	}
	close(full)
	err := <-werr
	for range copyBuffers {
		bufPool.Put(<-free)
	}
	if err != nil {
		return total, err
	}
	if rerr == io.EOF {
		rerr = nil
	}
	return total, rerr
}
