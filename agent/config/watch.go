package config

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// WatchOptions configure Watch.
type WatchOptions struct {
	// Path is the config file. Required.
	Path string
	// Current is the configuration in force. Required.
	Current *Config
	// Apply receives each new configuration that loaded, with the keys that
	// changed live; it runs on Watch's goroutine.
	Apply func(next *Config, liveKeys []string)
	// Logger receives what changed, what needs a restart, and load errors.
	Logger *slog.Logger
	// Debounce folds a burst of writes into one reload. Zero means 200ms.
	Debounce time.Duration
}

// Watch reloads the file whenever it changes until ctx is done. It watches
// the directory, not the file, so editors and config management that
// replace the file by renaming a new one over it are seen too. A file that
// does not load is logged and the running configuration stays.
func Watch(ctx context.Context, opts WatchOptions) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(opts.Path)); err != nil {
		return err
	}
	if opts.Debounce == 0 {
		opts.Debounce = 200 * time.Millisecond
	}
	name := filepath.Clean(opts.Path)
	cur := opts.Current
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if filepath.Clean(ev.Name) != name || ev.Op == fsnotify.Chmod {
				continue
			}
			if timer == nil {
				timer = time.NewTimer(opts.Debounce)
			} else {
				timer.Reset(opts.Debounce)
			}
			fire = timer.C
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			opts.Logger.Warn("config watch", "err", err)
		case <-fire:
			fire = nil
			next, err := Load(opts.Path)
			if err != nil {
				opts.Logger.Error("config not reloaded; the running configuration stays", "path", opts.Path, "err", err)
				continue
			}
			liveKeys, restartKeys := cur.Diff(next)
			if len(liveKeys) == 0 && len(restartKeys) == 0 {
				continue
			}
			if len(restartKeys) > 0 {
				opts.Logger.Warn("config changes that need a restart (systemctl restart edgewarden-agent)", "keys", restartKeys)
			}
			if len(liveKeys) > 0 {
				opts.Logger.Info("config reloaded", "applied", liveKeys)
			}
			// Keep the start-up values of what needs a restart, so the
			// next diff still reports them.
			merged := *cur
			merged.LogLevel, merged.HeartbeatInterval, merged.OutboxInterval = next.LogLevel, next.HeartbeatInterval, next.OutboxInterval
			cur = &merged
			if len(liveKeys) > 0 {
				opts.Apply(cur, liveKeys)
			}
		}
	}
}
