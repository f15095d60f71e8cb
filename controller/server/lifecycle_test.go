package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/agent/statelock"
)

const goodPassword = "correct horse battery staple 7"

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// listing returns the names in dir and below, sorted.
func listing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err == nil {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// TestInitAtomic: init refused part-way (a refused password, an admin name
// the store refuses after keys and database were made) leaves nothing, and
// runs again.
func TestInitAtomic(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	dir := filepath.Join(parent, "ctl")
	err := Init(ctx, InitOptions{DataDir: dir, Password: "short"})
	if err == nil || !strings.Contains(err.Error(), "password") || !strings.Contains(err.Error(), "nothing was created") {
		t.Fatalf("init with a refused password: %v", err)
	}
	if got := listing(t, parent); !slices.Equal(got, []string{"."}) {
		t.Fatalf("a refused init left %v", got)
	}
	err = Init(ctx, InitOptions{DataDir: dir, Password: goodPassword, Admin: "Not A Name!"})
	if err == nil || !strings.Contains(err.Error(), "Not A Name!") {
		t.Fatalf("init with a refused admin name: %v", err)
	}
	if got := listing(t, parent); !slices.Equal(got, []string{"."}) {
		t.Fatalf("init that failed after creating keys and database left %v", got)
	}
	if err := Init(ctx, InitOptions{DataDir: dir, Password: goodPassword}); err != nil {
		t.Fatalf("init after failed ones: %v", err)
	}
	for _, f := range []string{DBFile, SessionKeyFile, "ca.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("init made no %s: %v", f, err)
		}
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 1 {
		t.Errorf("init left %v next to the data directory", entries)
	}
	if err := Init(ctx, InitOptions{DataDir: dir, Password: goodPassword}); err == nil {
		t.Error("init over an existing controller succeeded")
	}
}

// start runs a controller on dir and returns when it is ready, with a
// function that stops it and returns Run's error.
func start(t *testing.T, dir string) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Logger: quiet(),
			Ready: func(net.Addr, string) { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("controller did not start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("controller not ready after 60 s")
	}
	return func() error { cancel(); return <-done }
}

// TestSecondServeRefused: a second controller on the same data directory
// refuses before it touches anything, naming the lock and what to do.
func TestSecondServeRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ctl")
	if err := Init(context.Background(), InitOptions{DataDir: dir, Password: goodPassword}); err != nil {
		t.Fatal(err)
	}
	stop := start(t, dir)
	before := listing(t, dir)
	dbBefore, _ := os.Stat(filepath.Join(dir, DBFile))
	err := Run(context.Background(), Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Logger: quiet()})
	if !errors.Is(err, statelock.ErrLocked) {
		t.Fatalf("second serve: %v, want statelock.ErrLocked", err)
	}
	for _, want := range []string{"pid", LockFile, "stop it first"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("second serve's error %q does not say %q", err, want)
		}
	}
	if after := listing(t, dir); !slices.Equal(before, after) {
		t.Errorf("the refused serve changed the data directory: %v → %v", before, after)
	}
	if dbAfter, _ := os.Stat(filepath.Join(dir, DBFile)); !dbAfter.ModTime().Equal(dbBefore.ModTime()) {
		t.Error("the refused serve wrote to the database")
	}
	if err := stop(); err != nil {
		t.Fatalf("first serve: %v", err)
	}
	// Stopped, the directory is free again.
	start(t, dir)()
}

// TestFailedStartLeavesNothing: a start that fails part-way (the MQTT port
// is taken, after the REST API's listener and the ingest goroutines were
// set up) returns the error and leaves no goroutine, listener or lock
// behind.
func TestFailedStartLeavesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ctl")
	if err := Init(context.Background(), InitOptions{DataDir: dir, Password: goodPassword}); err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	// The REST API's address: free now, so Run binds it.
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := probe.Addr().String()
	probe.Close()

	baseline := runtime.NumGoroutine()
	err = Run(context.Background(), Options{DataDir: dir, HTTPAddr: httpAddr, MQTTAddr: taken.Addr().String(), Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), taken.Addr().String()) || !strings.Contains(err.Error(), "--mqtt") {
		t.Fatalf("start with the MQTT port taken: %v, want an error naming the address and --mqtt", err)
	}
	// Polled with a generous deadline: on a loaded machine the last
	// goroutines take a while to be scheduled and return.
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after the failed start, %d before:\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		t.Fatalf("the REST API's address is still bound after the failed start: %v", err)
	}
	ln.Close()
	l, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("the failed start kept the lock: %v", err)
	}
	l.Release()
}
