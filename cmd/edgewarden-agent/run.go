package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/edgewarden/edgewarden/agent"
)

// config is the agent's optional config file (YAML). Unknown keys are an
// error. Zero values mean the defaults.
type config struct {
	LogLevel          string        `yaml:"log_level"`  // debug, info (default), warn, error
	LogFormat         string        `yaml:"log_format"` // text (default) or json
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	OutboxInterval    time.Duration `yaml:"outbox_interval"`
	Socket            string        `yaml:"socket"`   // default /run/edgewarden/agent.sock
	AppsDir           string        `yaml:"apps_dir"` // default STATE/apps

	// SocketGroup is the group given the local API socket (mode 0660);
	// default: the agent's own group.
	SocketGroup string `yaml:"socket_group"`

	// SystemdUnitDir and AppUser configure the systemd app runtime:
	// default /etc/systemd/system and edgewarden-app.
	SystemdUnitDir string `yaml:"systemd_unit_dir"`
	AppUser        string `yaml:"app_user"`
}

func loadConfig(path string) (*config, error) {
	var c config
	if path == "" {
		return &c, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &c, nil
}

func (c *config) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if c.LogLevel != "" {
		if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
			return nil, fmt.Errorf("config: log_level %q: want debug, info, warn or error", c.LogLevel)
		}
	}
	ho := &slog.HandlerOptions{Level: level}
	switch c.LogFormat {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("config: log_format %q: want text or json", c.LogFormat)
}

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
			cfg, err := loadConfig(configPath)
			if err != nil {
				return err
			}
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
			log, err := cfg.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			var a *agent.Agent // set before anything can call notify
			rt, err := newAppRuntime(stateDir, cfg, log, func() { a.NotifyStatus() })
			if err != nil {
				return err
			}
			defer rt.close()
			defer cancel() // before rt.close: ends the reconciler's loop
			a, err = agent.New(ctx, agent.Options{
				StateDir:          stateDir,
				Logger:            log,
				HeartbeatInterval: cfg.HeartbeatInterval,
				OutboxInterval:    cfg.OutboxInterval,
				Socket:            cmp.Or(cfg.Socket, agent.DefaultSocket),
				SocketGroup:       cfg.SocketGroup,
				Apps:              rt.rec,
				AppsDir:           cfg.AppsDir, // the guard watches where apps are installed
			})
			if err != nil {
				return err
			}
			defer a.Close()
			rt.start(ctx)
			err = a.Run(ctx)
			log.Info("agent stopped")
			return err
		}),
	}
	cmd.Flags().StringVar(&stateDir, "state", "", "enrolled state directory")
	cmd.Flags().StringVar(&configPath, "config", "", "config file (YAML)")
	return cmd
}
