package agent

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgewarden/edgewarden/agent/apply"
	"github.com/edgewarden/edgewarden/protocol"
)

// MinFreeBytes is the free space under which the state directory counts as
// full: SQLite needs room for its write-ahead log to commit anything.
const MinFreeBytes = 1 << 20

// EventDiskFull is the kind of the event queued once the state directory
// has space again after being full (it could not be queued while full).
const EventDiskFull = "disk_full"

// DiskFull describes a full state directory, in status reports, the local
// `status`, /healthz and the disk_full event.
type DiskFull = protocol.DiskFull

// freeBytes is the space an unprivileged writer has left under dir.
func freeBytes(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// diskState tracks whether the state directory is full. The agent keeps
// enforcing its document and its apps keep running; writes that fail are
// retried (a document is not acknowledged, so the broker delivers it again;
// events wait in memory where they came from, or are logged).
type diskState struct {
	mu   sync.Mutex
	full *DiskFull // nil: not full
}

// current returns the full state, or nil.
func (d *diskState) current() *DiskFull {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.full == nil {
		return nil
	}
	c := *d.full
	return &c
}

// checkDisk updates the disk state from the free space and the last
// write; when space has returned (and a write succeeds) it queues a
// disk_full event saying when it was full. It reports whether the state
// changed.
func (a *Agent) checkDisk(ctx context.Context) bool {
	dir := a.opts.StateDir
	free, err := freeBytes(dir)
	lowSpace := err == nil && free < MinFreeBytes
	a.disk.mu.Lock()
	defer a.disk.mu.Unlock()
	switch {
	case a.disk.full == nil && (lowSpace || a.store.WriteFailedFull()):
		a.disk.full = &DiskFull{Path: dir, FreeBytes: free, Since: a.opts.Now().UTC()}
		a.log.Error("the state directory is full: documents, events and status cannot be stored until space is freed; apps keep running and the document in force stays enforced",
			"path", dir, "free_bytes", free)
		return true
	case a.disk.full == nil:
		return false
	case lowSpace:
		a.disk.full.FreeBytes = free
		return false
	}
	// Space again: only a write that works clears it. The probe is that
	// write: the last failed write's flag alone would never clear if
	// nothing else wrote.
	if err := a.store.Probe(ctx); err != nil {
		a.disk.full.FreeBytes = free
		return false
	}
	was := *a.disk.full
	a.disk.full = nil
	now := a.opts.Now().UTC()
	ev := protocol.Event{ID: apply.RandomID(), At: now, Kind: EventDiskFull, Severity: "warning",
		Message: fmt.Sprintf("the state directory %s was full from %s to %s: nothing could be stored meanwhile (apps kept running)", was.Path, was.Since.Format(time.RFC3339), now.Format(time.RFC3339)),
		Details: map[string]string{"path": was.Path, "since": was.Since.Format(time.RFC3339), "until": now.Format(time.RFC3339)}}
	if err := a.store.Enqueue(ctx, ev); err != nil {
		a.log.Error("could not queue the disk_full event", "err", err)
	}
	a.log.Info("the state directory has space again", "path", was.Path, "free_bytes", free, "full_since", was.Since)
	// Acknowledgements that could not be recorded meanwhile: send the
	// unacknowledged events again now rather than after a long backoff.
	a.outbox.Reset()
	return true
}

// diskFullAt reports a full state directory for `edgewarden-agent status`,
// which runs in its own process: by free space alone.
func diskFullAt(dir string) *DiskFull {
	free, err := freeBytes(dir)
	if err != nil || free >= MinFreeBytes {
		return nil
	}
	return &DiskFull{Path: dir, FreeBytes: free}
}

// pendingDoc holds the latest desired document whose outcome could not be
// committed (a full disk). The broker would deliver it again only after a
// reconnect; Run retries it as soon as a write works instead.
type pendingDoc struct {
	mu  sync.Mutex
	raw []byte
}

// set records the outcome of the latest delivered document: one not
// committed is kept for a retry; one committed supersedes any older one
// kept (the desired topic is latest-wins).
func (p *pendingDoc) set(raw []byte, committed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if committed {
		p.raw = nil
	} else {
		p.raw = raw
	}
}

func (p *pendingDoc) get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.raw
}

// retryUnstored applies again the document that could not be committed,
// once the disk is not known to be full. Called from Run's goroutine.
func (a *Agent) retryUnstored(ctx context.Context) {
	raw := a.unstored.get()
	if raw == nil || a.disk.current() != nil {
		return
	}
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	res := a.applier.Handle(hctx, raw)
	a.metrics.observe(res, time.Since(start))
	if !a.afterHandle(res) {
		return // still not stored: the next turn retries
	}
	a.unstored.mu.Lock()
	if bytes.Equal(a.unstored.raw, raw) { // unless a newer one arrived meanwhile
		a.unstored.raw = nil
	}
	a.unstored.mu.Unlock()
	a.log.Info("document stored after the disk had space again", "revision", res.Revision)
}
