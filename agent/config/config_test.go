package config

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func write(t *testing.T, path, body string) {
	t.Helper()
	// Write and rename, as config management does.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestLoadStrict(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.yaml")
	write(t, path, "heartbeat_interval: 10s\nsocket: /tmp/x.sock\n")
	c, err := Load(path)
	if err != nil || c.HeartbeatInterval != 10*time.Second || c.Socket != "/tmp/x.sock" {
		t.Fatalf("config %+v, %v", c, err)
	}
	for body, want := range map[string]string{
		"heartbeat: 10s\n":             "heartbeat",
		"log_level: loud\n":            "log_level",
		"log_format: xml\n":            "log_format",
		"outbox_interval: 1ns\n":       "outbox_interval",
		"heartbeat_interval: soon\n":   "heartbeat_interval",
		"socket: [a, b]\n":             "socket",
		"heartbeat_interval: -5s\n":    "heartbeat_interval",
		"sideload_scan_interval: 1s\n": "", // valid
	} {
		write(t, path, body)
		_, err := Load(path)
		if want == "" {
			if err != nil {
				t.Errorf("%q: %v", body, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want one naming %s", body, err, want)
		}
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("a missing config file was accepted")
	}
}

func TestEnvironmentOverridesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.yaml")
	write(t, path, "log_level: info\nheartbeat_interval: 10s\n")
	t.Setenv("EDGEWARDEN_LOG_LEVEL", "debug")
	t.Setenv("EDGEWARDEN_HEARTBEAT_INTERVAL", "1m")
	c, err := Load(path)
	if err != nil || c.LogLevel != "debug" || c.HeartbeatInterval != time.Minute {
		t.Fatalf("config %+v, %v", c, err)
	}
	t.Setenv("EDGEWARDEN_OUTBOX_INTERVAL", "often")
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "EDGEWARDEN_OUTBOX_INTERVAL") {
		t.Fatalf("bad environment value: %v", err)
	}
}

func TestDiff(t *testing.T) {
	a := &Config{LogLevel: "info", Socket: "/a"}
	b := &Config{LogLevel: "debug", Socket: "/b", OutboxInterval: time.Second}
	liveKeys, restart := a.Diff(b)
	if strings.Join(liveKeys, ",") != "log_level,outbox_interval" || strings.Join(restart, ",") != "socket" {
		t.Fatalf("live %v restart %v", liveKeys, restart)
	}
}

// TestWatchReloads: a changed file is applied live; a broken file keeps the
// running configuration; a change that needs a restart is not applied.
func TestWatchReloads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	write(t, path, "log_level: info\nsocket: /run/a.sock\n")
	cur, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var applied []*Config
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Watch(ctx, WatchOptions{Path: path, Current: cur, Debounce: 20 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Apply: func(next *Config, _ []string) {
				mu.Lock()
				applied = append(applied, next)
				mu.Unlock()
			}})
	}()
	t.Cleanup(func() { cancel(); <-done })
	last := func() *Config {
		mu.Lock()
		defer mu.Unlock()
		if len(applied) == 0 {
			return nil
		}
		return applied[len(applied)-1]
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// The watcher may start after the first write below; keep writing
	// until it is seen.
	lastWrite := time.Time{}
	waitFor("a live reload", func() bool {
		if time.Since(lastWrite) > 300*time.Millisecond { // longer than the debounce
			write(t, path, "log_level: debug\nsocket: /run/a.sock\n")
			lastWrite = time.Now()
		}
		c := last()
		return c != nil && c.LogLevel == "debug"
	})

	// A broken file: nothing applied.
	n := len(applied)
	write(t, path, "log_level: debug\nsocket: [\n")
	// Then a valid one that also changes the socket (restart needed): the
	// live part applies, the socket stays as started.
	write(t, path, "log_level: warn\nsocket: /run/b.sock\n")
	waitFor("the next reload", func() bool { c := last(); return c != nil && c.LogLevel == "warn" })
	mu.Lock()
	defer mu.Unlock()
	for _, c := range applied[n:] {
		if c.LogLevel != "warn" {
			t.Errorf("a broken file was applied: %+v", c)
		}
		if c.Socket != "/run/a.sock" {
			t.Errorf("socket changed live to %q; it needs a restart", c.Socket)
		}
	}
}

func TestOutboxLimit(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "64MiB": 64 << 20, "1 GiB": 1 << 30, "2048KiB": 2 << 20, "1048576": 1 << 20} {
		c := Config{OutboxLimit: in}
		if got, err := c.OutboxBytes(); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"64MB", "-1MiB", "512KiB", "1000", "lots", "99999999999GiB"} {
		c := Config{OutboxLimit: bad}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "outbox_limit") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	if n, err := (&Config{}).MemoryBytes(); err != nil || n != DefaultMemoryLimit {
		t.Fatalf("default memory_limit = %d, %v; want %d", n, err, DefaultMemoryLimit)
	}
	if n, err := (&Config{MemoryLimit: "32MiB"}).MemoryBytes(); err != nil || n != 32<<20 {
		t.Fatalf("memory_limit 32MiB = %d, %v", n, err)
	}
	for _, bad := range []string{"1MiB", "-5", "lots", "0"} {
		c := Config{MemoryLimit: bad}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "memory_limit") {
			t.Errorf("memory_limit %q: %v, want an error naming memory_limit", bad, err)
		}
	}
}
