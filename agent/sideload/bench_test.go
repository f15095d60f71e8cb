package sideload

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// BenchmarkDetectionLatency measures the time from writing a file into the
// apps directory to its security event being recorded (Report called),
// with the default debounce, and reports p50 and p99.
func BenchmarkDetectionLatency(b *testing.B) {
	f := newFixture(b)
	f.installDemo("alpha")
	got := make(chan string, 16)
	g, err := New(Options{
		AppsDir: f.apps, QuarantineDir: f.quarantine,
		Policy: func() Policy { return *f.policy.Load() },
		Report: func(_ context.Context, ev protocol.Event) error {
			if ev.Kind != protocol.EventQuarantined {
				got <- ev.Details["app"]
			}
			return nil
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	eventually(b, "start-up scan", func() bool { n, _ := g.Scans(); return n >= 1 })
	bin := filepath.Join(f.apps, "alpha", "versions", "1.0.0", "bin", "alpha")

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("lat-%d", i)
		start := time.Now()
		if i%2 == 0 {
			// a sideload dropped into the apps directory
			os.WriteFile(filepath.Join(f.apps, name), []byte("x"), 0o644)
		} else {
			// a write to a managed app's binary
			name = "alpha"
			appendTo(bin, "x")
		}
		for app := range got {
			if app == name {
				break
			}
		}
		lat = append(lat, time.Since(start))
		if name == "alpha" {
			b.StopTimer()
			os.RemoveAll(f.quarantine)
			os.MkdirAll(f.quarantine, 0o700)
			f.installDemo("alpha")
			bin = filepath.Join(f.apps, "alpha", "versions", "1.0.0", "bin", "alpha")
			b.StartTimer()
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// scanFixture installs 100 apps of 100 files each (one binary and an
// unpacked archive of 99 files of 4 KiB): 10k files, ~40 MB.
func scanFixture(b *testing.B) *fixture {
	f := newFixture(b)
	content := make([]byte, 4096)
	for a := range 100 {
		entries := map[string]string{}
		for i := range 99 {
			content[0], content[1], content[2], content[3] = 'd', byte(a), byte(i), byte(i>>8)
			entries[fmt.Sprintf("data/d%d/f%03d", i%10, i)] = string(content)
		}
		name := fmt.Sprintf("app%03d", a)
		f.install(name, "1.0.0",
			file{path: "bin/" + name, content: []byte("#!/bin/sh\n" + name), mode: 0o755},
			file{path: "data.tar", unpack: manifest.UnpackTar, content: tarball(b, entries)})
	}
	return f
}

func benchScan(b *testing.B, f *fixture, warm bool) {
	ctx := context.Background()
	newG := func() *Guard {
		g := f.newGuard()
		w, err := fsnotify.NewWatcher()
		if err != nil {
			b.Fatal(err)
		}
		g.w = w
		return g
	}
	g := newG()
	defer func() { g.w.Close() }()
	g.fullScan(ctx, "bench")
	if n := len(f.allEvents()); n != 0 {
		b.Fatalf("%d events on intact apps: %v", n, f.allEvents()[0])
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if !warm {
			b.StopTimer()
			g.w.Close()
			g = newG()
			dropPageCache(b)
			b.StartTimer()
		}
		g.fullScan(ctx, "bench")
	}
	b.StopTimer()
	if n := len(f.allEvents()); n != 0 {
		b.Fatalf("%d events on intact apps", n)
	}
	b.ReportMetric(float64(len(g.cache.entries)), "files-hashed")
}

// dropPageCache is a no-op: dropping the kernel's page cache needs root
// and disturbs everyone on the machine. "Cold" means a cold guard (empty
// hash cache, unverified manifests, no archive listings): every file is
// read and hashed, from the page cache.
func dropPageCache(testing.TB) {}

// BenchmarkFullScan100Apps10kFiles: a full scan of 100 apps / 10k files.
// warm: the hash cache is filled (the periodic scan's steady state);
// cold: a new guard (start-up), which verifies every manifest and hashes
// every file and archive.
func BenchmarkFullScan100Apps10kFiles(b *testing.B) {
	f := scanFixture(b)
	b.Run("warm", func(b *testing.B) { benchScan(b, f, true) })
	b.Run("cold", func(b *testing.B) { benchScan(b, f, false) })
}
