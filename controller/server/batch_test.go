package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Every caller returns only after the transaction holding its item has
// committed, and concurrent callers share transactions.
func TestGroupCommit(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var batches [][]int
	g := newGroupCommit(100, func(_ context.Context, items []int) error {
		<-release // the commit is slow
		mu.Lock()
		batches = append(batches, append([]int(nil), items...))
		mu.Unlock()
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	const n = 300
	var returned atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := g.submit(context.Background(), i); err != nil {
				t.Errorf("submit %d: %v", i, err)
			}
			returned.Add(1)
		})
	}
	// Nothing may return while the first commit is held.
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		if returned.Load() != 0 {
			t.Fatal("a caller returned before its item was committed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	seen := map[int]bool{}
	for _, b := range batches {
		if len(b) > 100 {
			t.Fatalf("a batch of %d, limit 100", len(b))
		}
		for _, x := range b {
			seen[x] = true
		}
	}
	if len(seen) != n {
		t.Fatalf("%d items committed, want %d", len(seen), n)
	}
	if len(batches) >= n/2 {
		t.Fatalf("%d transactions for %d concurrent items: no group commit", len(batches), n)
	}
}

// A failed commit fails every caller in it (none is acknowledged), and a
// stopped committer refuses instead of hanging.
func TestGroupCommitErrorsAndShutdown(t *testing.T) {
	boom := errors.New("disk full")
	g := newGroupCommit(10, func(context.Context, []int) error { return boom })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.run(ctx); close(done) }()
	if err := g.submit(context.Background(), 1); !errors.Is(err, boom) {
		t.Fatalf("submit = %v, want the commit error", err)
	}
	cancel()
	<-done
	if err := g.submit(context.Background(), 2); !errors.Is(err, errShuttingDown) {
		t.Fatalf("submit after shutdown = %v", err)
	}
}
