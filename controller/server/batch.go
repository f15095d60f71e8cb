package server

import (
	"context"
	"errors"
)

// groupCommit stores items from many concurrent callers in shared
// transactions. Each caller blocks until the transaction holding its item
// has committed, so the broker still acknowledges a device's message only
// after it is stored; but instead of one fsync per message, everything
// that queued up while the previous commit ran goes into the next one.
// With 10k devices reporting at once this turns 10k serialized commits
// into a few dozen (docs/BENCHMARKS.md, loadgen).
type groupCommit[T any] struct {
	commit func(ctx context.Context, items []T) error
	max    int // most items in one transaction
	reqs   chan groupReq[T]
	done   chan struct{} // closed when run returns
}

type groupReq[T any] struct {
	item T
	res  chan error // capacity 1
}

var errShuttingDown = errors.New("controller is shutting down; the device will send it again")

func newGroupCommit[T any](max int, commit func(context.Context, []T) error) *groupCommit[T] {
	return &groupCommit[T]{commit: commit, max: max, reqs: make(chan groupReq[T], max), done: make(chan struct{})}
}

// run commits batches until ctx is done.
func (g *groupCommit[T]) run(ctx context.Context) {
	defer close(g.done)
	batch := make([]groupReq[T], 0, g.max)
	items := make([]T, 0, g.max)
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-g.reqs:
			batch = append(batch[:0], r)
		}
	gather: // everything already waiting, without waiting for more
		for len(batch) < g.max {
			select {
			case r := <-g.reqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		items = items[:0]
		for _, r := range batch {
			items = append(items, r.item)
		}
		err := g.commit(ctx, items)
		for _, r := range batch {
			r.res <- err
		}
	}
}

// submit queues item and waits until it is committed (nil) or not.
func (g *groupCommit[T]) submit(ctx context.Context, item T) error {
	r := groupReq[T]{item: item, res: make(chan error, 1)}
	select {
	case g.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-g.done:
		return errShuttingDown
	}
	select {
	case err := <-r.res:
		return err
	case <-ctx.Done():
		return ctx.Err() // it may still commit; the device resends and the store deduplicates
	case <-g.done:
		return errShuttingDown
	}
}
