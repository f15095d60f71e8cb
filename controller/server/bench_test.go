package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgewarden/edgewarden/controller/broker"
	"github.com/edgewarden/edgewarden/controller/desired"
	"github.com/edgewarden/edgewarden/controller/pki"
	"github.com/edgewarden/edgewarden/controller/store"
)

// BenchmarkReconcile measures the controller's whole path for one change:
// the change's transaction (with its audit entry and dirty marks), then the
// reconcile turn: snapshot from SQLite, compile and sign the dirty devices,
// store the records (one transaction), publish each retained on the
// embedded broker and record the acknowledgements. "all" changes the banner
// (every document changes); "20" labels 20 devices (only theirs change).
// Devices are not connected; BenchmarkRetainedFanout in controller/broker
// measures delivery to 10k TLS connections.
//
//	go test ./controller/server -run '^$' -bench Reconcile -benchtime 5x
func BenchmarkReconcile(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, touched := range []int{n, 20} {
			name := fmt.Sprintf("devices=%d/touched=%d", n, touched)
			b.Run(name, func(b *testing.B) {
				ctx := context.Background()
				s := benchServer(b, n)
				if err := s.reconcile(ctx); err != nil {
					b.Fatal(err)
				}
				i := 0
				cpu0 := cpuTime(b)
				for b.Loop() {
					i++
					_, err := s.db.Change(ctx, store.AuditEntry{Actor: "bench", Action: "bench", Kind: store.AuditChange}, func(ctx context.Context, c *store.Change) error {
						if touched == n {
							c.DirtyAll()
							return s.db.SetSetting(ctx, "banner", fmt.Sprintf("Authorized use only (%d)", i))
						}
						for d := range touched {
							id := fmt.Sprintf("dev-%05d", (d*n/touched+i)%n)
							c.DirtyDevices(id)
							if _, err := s.db.SetDeviceLabels(ctx, id, map[string]string{"bench": fmt.Sprint(i)}); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
					before := testutil.ToFloat64(s.metrics.documentsPublish)
					if _, err := s.compile(ctx, false); err != nil {
						b.Fatal(err)
					}
					if err := s.publishPending(ctx); err != nil {
						b.Fatal(err)
					}
					if got := testutil.ToFloat64(s.metrics.documentsPublish) - before; got != float64(touched) {
						b.Fatalf("published %v documents, want %d", got, touched)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/change")
				// The process's CPU time per change (all goroutines): on a
				// shared, loaded machine the wall time says more about the
				// neighbours than about this code.
				b.ReportMetric(float64((cpuTime(b)-cpu0).Milliseconds())/float64(b.N), "cpu-ms/change")
			})
		}
	}
}

// cpuTime is the CPU time (user and system) the process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchServer(b *testing.B, n int) *Server {
	b.Helper()
	s := fleetServer(b, n)
	brk, err := broker.New(broker.Options{Addr: "127.0.0.1:0", TLS: s.authority.MQTTServerConfig(), Logger: s.log,
		Ingest: func(context.Context, string, string, []byte) error { return nil }})
	if err != nil {
		b.Fatal(err)
	}
	if err := brk.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { brk.Close() })
	s.transport = brk
	return s
}

// fleetServer is a Server on a new CA and store in a temporary directory,
// with n devices (dev-00000, ...) enrolled in group line-1 and no
// transport yet; its loop is not running.
func fleetServer(tb testing.TB, n int) *Server {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	authority, err := pki.Init(dir, pki.InitOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	db, err := store.Open(ctx, filepath.Join(dir, DBFile))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	now := time.Now().UTC()
	sum := sha256.Sum256([]byte("bench-token"))
	hash := hex.EncodeToString(sum[:])
	if _, err := db.CreateGroup(ctx, "line-1", ""); err != nil {
		tb.Fatal(err)
	}
	if _, err := db.CreateEnrollToken(ctx, store.EnrollToken{Hash: hash, Groups: []string{"line-1"}, MaxUses: n, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		if _, _, err := db.Enroll(ctx, hash, store.NewDevice{ID: fmt.Sprintf("dev-%05d", i), Labels: map[string]string{"line": fmt.Sprint(i % 50)}, At: now}); err != nil {
			tb.Fatal(err)
		}
	}
	return &Server{
		opts: Options{DriftGrace: DefaultDriftGrace},
		log:  slog.New(slog.NewTextHandler(io.Discard, nil)), db: db, authority: authority,
		compiler:  desired.New(desired.Options{Key: authority.SigningKey()}),
		changed:   make(chan struct{}, 1),
		published: map[string]uint64{},
		metrics:   newMetrics(func() float64 { return 0 }),
	}
}
