package main

import (
	"cmp"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"

	"github.com/spf13/cobra"

	"github.com/edgewarden/edgewarden/agent"
	"github.com/edgewarden/edgewarden/agent/config"
)

func newRunCmd() *cobra.Command {
	var stateDir, configPath string
	cmd := &cobra.Command{
		Use:   "run --state DIR [--config FILE]",
		Short: "Run the agent service until SIGINT or SIGTERM",
		Args:  cobra.NoArgs,
		RunE: work(func(cmd *cobra.Command, _ []string) error {
			if stateDir == "" {
				return usage{"run needs --state"}
			}
			cfg, err := config.Load(configPath)
			if err != nil {
				return err
			}
			loaded := *cfg // as in the file: what a reload is compared with
			// Apps run from their own directories: every path the agent
			// hands on must be absolute.
			if stateDir, err = filepath.Abs(stateDir); err != nil {
				return err
			}
			if cfg.AppsDir == "" {
				cfg.AppsDir = agent.AppsDir(stateDir)
			} else if cfg.AppsDir, err = filepath.Abs(cfg.AppsDir); err != nil {
				return err
			}
			outboxLimit, _ := cfg.OutboxBytes() // validated by Load
			// A process setting, so here and not in agent.New: the soft
			// memory limit (GOMEMLIMIT, if set, wins).
			if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
				limit, _ := cfg.MemoryBytes() // validated by Load
				debug.SetMemoryLimit(limit)
			}
			level := new(slog.LevelVar)
			l, _ := cfg.Level() // validated by Load
			level.Set(l)
			log := cfg.Logger(cmd.ErrOrStderr(), level)
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			a, err := agent.New(ctx, agent.Options{
				StateDir:          stateDir,
				Logger:            log,
				HeartbeatInterval: cfg.HeartbeatInterval,
				OutboxInterval:    cfg.OutboxInterval,
				Socket:            cmp.Or(cfg.Socket, agent.DefaultSocket),
				SocketGroup:       cfg.SocketGroup,
				AppsDir:           cfg.AppsDir,
				MetricsAddr:       cfg.Metrics,
				Runtime:           &agent.RuntimeOptions{SystemdUnitDir: cfg.SystemdUnitDir, AppUser: cfg.AppUser},
				OutboxLimit:       outboxLimit,
				AckTimeout:        cfg.AckTimeout,
				StallTimeout:      cfg.StallTimeout,
				// Restart-only: read once here.
				SideloadScanInterval: cfg.SideloadScanInterval,
			})
			if err != nil {
				return err
			}
			defer a.Close()
			if configPath != "" {
				// Live reload: log level and intervals change at once; the
				// rest is logged as needing a restart. A bad file is logged
				// and the running configuration stays.
				var wg sync.WaitGroup
				defer wg.Wait()
				defer cancel()
				wg.Go(func() {
					err := config.Watch(ctx, config.WatchOptions{Path: configPath, Current: &loaded, Logger: log,
						Apply: func(next *config.Config, _ []string) {
							l, _ := next.Level()
							level.Set(l)
							a.SetIntervals(next.HeartbeatInterval, next.OutboxInterval)
						}})
					if err != nil {
						log.Warn("config file not watched; changes need a restart", "path", configPath, "err", err)
					}
				})
			}
			err = a.Run(ctx)
			log.Info("agent stopped")
			return err
		}),
	}
	cmd.Flags().StringVar(&stateDir, "state", "", "enrolled state directory")
	cmd.Flags().StringVar(&configPath, "config", "", "config file (YAML)")
	return cmd
}
