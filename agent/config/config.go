// Package config is the agent's configuration file (/etc/edgewarden/agent.yaml):
// strict loading (unknown keys are errors), EDGEWARDEN_<KEY> environment
// overrides, and a watcher that reloads the file when it changes, telling
// which changes apply at once and which need a restart.
//
// Applied live: log_level, heartbeat_interval, outbox_interval. Everything
// else (sockets, directories, the app
// runtime, log_format) is read at start-up; a change is logged as needing a
// restart. A file that does not load keeps the running configuration.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the agent's configuration. Zero values mean the defaults, which
// each field names. The yaml tag is also the environment variable:
// EDGEWARDEN_ plus the key in upper case (EDGEWARDEN_LOG_LEVEL).
type Config struct {
	LogLevel  string `yaml:"log_level"`  // debug, info (default), warn, error — live
	LogFormat string `yaml:"log_format"` // text (default) or json — restart

	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"` // status report period, default 30s — live
	OutboxInterval    time.Duration `yaml:"outbox_interval"`    // event outbox retry period, default 5s — live
	// SideloadScanInterval is the period of the guard's full scan of the
	// apps directory, default 5m — restart.
	SideloadScanInterval time.Duration `yaml:"sideload_scan_interval"`

	Socket string `yaml:"socket"` // local API socket, default /run/edgewarden/agent.sock — restart
	// SocketGroup is the group given the local API socket (mode 0660);
	// default: the agent's own group — restart.
	SocketGroup string `yaml:"socket_group"`
	AppsDir     string `yaml:"apps_dir"` // default STATE/apps — restart

	// SystemdUnitDir and AppUser configure the systemd app runtime:
	// default /etc/systemd/system and edgewarden-app — restart.
	SystemdUnitDir string `yaml:"systemd_unit_dir"`
	AppUser        string `yaml:"app_user"`

	// OutboxLimit bounds the event outbox, e.g. "64MiB" (the default) or
	// "512KiB"; at least 1MiB. When full, the oldest info events are
	// dropped first, security events last, and the drops reported —
	// restart.
	OutboxLimit string `yaml:"outbox_limit"`
	// AckTimeout is how long sent events and status wait for the
	// controller's acknowledgement before they are sent again (doubling
	// up to 10m), default 30s — restart.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	// StallTimeout is how long a reconcile phase (download, install,
	// app start...) may show no progress before the agent stops feeding
	// the systemd watchdog so systemd restarts it, default 10m — restart.
	StallTimeout time.Duration `yaml:"stall_timeout"`

	// MemoryLimit is the Go runtime's soft memory limit for the agent
	// (runtime/debug.SetMemoryLimit), e.g. "64MiB" (the default,
	// DefaultMemoryLimit), at least 8MiB; a GOMEMLIMIT environment
	// variable takes precedence. GOGC is left at the runtime's default:
	// lowering it raised idle RSS (docs/BENCHMARKS.md) — restart.
	MemoryLimit string `yaml:"memory_limit"`

	// Metrics, if set, serves Prometheus /metrics and /healthz over plain
	// HTTP on this address, e.g. 127.0.0.1:9465. Empty: off — restart.
	Metrics string `yaml:"metrics"`
}

// EnvPrefix prefixes the environment variables that override the file.
const EnvPrefix = "EDGEWARDEN_"

// live names the keys applied without a restart.
var live = map[string]bool{"log_level": true, "heartbeat_interval": true, "outbox_interval": true}

// Load reads path (empty: no file) and applies environment overrides. The
// result is validated; on any error nothing is returned.
func Load(path string) (*Config, error) {
	var c Config
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if err := c.decode(b); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := c.applyEnv(); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		if path != "" {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		return nil, err
	}
	return &c, nil
}

// decode reads a YAML mapping into c key by key, so every error names its
// key (and line), and an unknown key is an error.
func (c *Config) decode(b []byte) error {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) { // only comments
			return nil
		}
		return err
	}
	if len(doc.Content) == 0 {
		return nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want key: value lines", m.Line)
	}
	fields := map[string]reflect.Value{}
	v := reflect.ValueOf(c).Elem()
	for i := range v.NumField() {
		fields[v.Type().Field(i).Tag.Get("yaml")] = v.Field(i)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, val := m.Content[i], m.Content[i+1]
		f, ok := fields[k.Value]
		if !ok {
			return fmt.Errorf("line %d: unknown option %q (see /etc/edgewarden/agent.yaml as shipped for every option)", k.Line, k.Value)
		}
		if err := val.Decode(f.Addr().Interface()); err != nil {
			return fmt.Errorf("%s (line %d): %v", k.Value, k.Line, err)
		}
	}
	return nil
}

// applyEnv sets every field whose EDGEWARDEN_<KEY> variable is set.
func (c *Config) applyEnv() error {
	v := reflect.ValueOf(c).Elem()
	for i := range v.NumField() {
		key := v.Type().Field(i).Tag.Get("yaml")
		env := EnvPrefix + strings.ToUpper(key)
		s, ok := os.LookupEnv(env)
		if !ok {
			continue
		}
		f := v.Field(i)
		switch f.Interface().(type) {
		case time.Duration:
			d, err := time.ParseDuration(s)
			if err != nil {
				return fmt.Errorf("environment %s=%q: %w", env, s, err)
			}
			f.SetInt(int64(d))
		case string:
			f.SetString(s)
		}
	}
	return nil
}

// Validate checks values that decode but make no sense.
func (c *Config) Validate() error {
	if _, err := c.Level(); err != nil {
		return err
	}
	switch c.LogFormat {
	case "", "text", "json":
	default:
		return fmt.Errorf("log_format %q: want text or json", c.LogFormat)
	}
	if _, err := c.OutboxBytes(); err != nil {
		return err
	}
	if _, err := c.MemoryBytes(); err != nil {
		return err
	}
	for key, d := range map[string]time.Duration{"heartbeat_interval": c.HeartbeatInterval, "outbox_interval": c.OutboxInterval, "sideload_scan_interval": c.SideloadScanInterval, "ack_timeout": c.AckTimeout, "stall_timeout": c.StallTimeout} {
		if d < 0 || (d > 0 && d < 100*time.Millisecond) {
			return fmt.Errorf("%s %s: give at least 100ms (or leave it out for the default)", key, d)
		}
	}
	return nil
}

// MinOutboxBytes is the smallest outbox_limit accepted (agent/state's
// minimum: room for a few full event batches).
const MinOutboxBytes = 1 << 20

// OutboxBytes is outbox_limit in bytes; 0 when unset (the default).
// It accepts a number of bytes or a number with KiB, MiB or GiB.
func (c *Config) OutboxBytes() (int64, error) {
	return parseSize("outbox_limit", c.OutboxLimit, MinOutboxBytes)
}

// DefaultMemoryLimit is memory_limit's default: a soft limit well above the
// agent's working set (heap ~2 MB idle, 17 MB RSS peak installing 200 MB),
// so it never makes the collector run harder in normal work, and bounds
// what a burst (a long outbox drain, many documents) can grow the heap to.
const DefaultMemoryLimit = 64 << 20

// MinMemoryLimit is the smallest memory_limit accepted: below it the
// collector would run almost continuously.
const MinMemoryLimit = 8 << 20

// MemoryBytes is memory_limit in bytes: DefaultMemoryLimit when unset.
func (c *Config) MemoryBytes() (int64, error) {
	if c.MemoryLimit == "" {
		return DefaultMemoryLimit, nil
	}
	return parseSize("memory_limit", c.MemoryLimit, MinMemoryLimit)
}

// parseSize reads a size option: a number of bytes or a number with KiB,
// MiB or GiB, at least min; 0 when unset.
func parseSize(key, val string, min int64) (int64, error) {
	if val == "" {
		return 0, nil
	}
	s, mult := strings.TrimSpace(val), int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if v, ok := strings.CutSuffix(s, suffix); ok {
			s, mult = strings.TrimSpace(v), m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("%s %q: want a size such as 64MiB, 512KiB or a number of bytes", key, val)
	}
	if n*mult < min {
		return 0, fmt.Errorf("%s %q: give at least %dMiB", key, val, min>>20)
	}
	return n * mult, nil
}

// Level is the log level (info when unset).
func (c *Config) Level() (slog.Level, error) {
	var l slog.Level
	if c.LogLevel != "" {
		if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
			return 0, fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel)
		}
	}
	return l, nil
}

// Logger returns a logger writing to w in the configured format, whose
// level follows level (so a reload can change it live).
func (c *Config) Logger(w io.Writer, level *slog.LevelVar) *slog.Logger {
	ho := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

// Diff returns the keys whose values differ between c and next, split into
// those applied live and those that need a restart.
func (c *Config) Diff(next *Config) (liveKeys, restartKeys []string) {
	a, b := reflect.ValueOf(c).Elem(), reflect.ValueOf(next).Elem()
	for i := range a.NumField() {
		if a.Field(i).Interface() == b.Field(i).Interface() {
			continue
		}
		key := a.Type().Field(i).Tag.Get("yaml")
		if live[key] {
			liveKeys = append(liveKeys, key)
		} else {
			restartKeys = append(restartKeys, key)
		}
	}
	return liveKeys, restartKeys
}
