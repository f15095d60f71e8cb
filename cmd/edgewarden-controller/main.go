// Command edgewarden-controller runs the Edgewarden controller: the REST API,
// the embedded MQTT broker and the desired-state compiler, over one SQLite
// database. See `edgewarden-controller --help`.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/edgewarden/edgewarden/cmd/internal/buildinfo"
	"github.com/edgewarden/edgewarden/controller/store"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/edgewarden/edgewarden/cmd/internal/flagconfig"
	"github.com/edgewarden/edgewarden/controller/pki"
	"github.com/edgewarden/edgewarden/controller/server"
)

// version is set at build time (-ldflags -X main.version=...).
var version = "dev"

// usageError marks errors that should exit with status 2.
type usageError struct{ error }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "edgewarden-controller:", err)
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") {
		return 2
	}
	return 1
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "edgewarden-controller",
		Short:         "The Edgewarden controller: REST API, MQTT broker and desired-state compiler",
		Version:       buildinfo.Version(version),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate(buildinfo.Line("edgewarden-controller", root.Version) + "\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(initCmd(stdout), serveCmd(stderr), fingerprintCmd(stdout), rotateCmd(stdout), recoverCmd(stdout))
	return root
}

func initCmd(stdout io.Writer) *cobra.Command {
	var dir, admin, passwordFile string
	var hosts []string
	c := &cobra.Command{
		Use:   "init --data DIR [--admin NAME] [--admin-password-file F]",
		Short: "Create a controller: database, signing key, CA, TLS certificate and the first admin",
		Example: `  edgewarden-controller init --data /var/lib/edgewarden-controller
  edgewarden-controller init --data ./ctl --admin alice --admin-password-file pw.txt --host ctl.plant.example`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageError{errors.New("--data DIR is required")}
			}
			password, generated := "", false
			if passwordFile != "" {
				b, err := os.ReadFile(passwordFile)
				if err != nil {
					return fmt.Errorf("read admin password: %w", err)
				}
				password = strings.TrimRight(string(b), "\r\n")
			} else {
				b := make([]byte, 18)
				if _, err := rand.Read(b); err != nil {
					return err
				}
				password, generated = base64.RawURLEncoding.EncodeToString(b), true
			}
			if admin == "" {
				admin = "admin"
			}
			if err := server.Init(cmd.Context(), server.InitOptions{DataDir: dir, Admin: admin, Password: password, Hosts: hosts}); err != nil {
				return err
			}
			a, err := pki.Load(dir)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "controller created in %s\n", dir)
			fmt.Fprintf(stdout, "CA certificate for clients: %s/%s\n", dir, pki.CAFile)
			fmt.Fprintf(stdout, "CA fingerprint (agents pin it at enrollment): %s\n", a.Fingerprint())
			if generated {
				fmt.Fprintf(stdout, "admin user %q, password (shown once): %s\n", admin, password)
			} else {
				fmt.Fprintf(stdout, "admin user %q\n", admin)
			}
			return nil
		},
	}
	c.Flags().StringVar(&dir, "data", "", "data directory to create (must not exist or be empty)")
	c.Flags().StringVar(&admin, "admin", "admin", "name of the first admin user")
	c.Flags().StringVar(&passwordFile, "admin-password-file", "", "file holding the admin password (default: generate one and print it once)")
	c.Flags().StringSliceVar(&hosts, "host", nil, "DNS name or IP address for the TLS certificate (repeatable; default localhost, 127.0.0.1, ::1)")
	return c
}

func serveCmd(stderr io.Writer) *cobra.Command {
	var opts server.Options
	var logFormat, logLevel, configFile string
	c := &cobra.Command{
		Use:   "serve --data DIR [--http ADDR] [--mqtt ADDR] [--config FILE]",
		Short: "Run the controller: HTTPS REST API and the embedded MQTT broker (mutual TLS)",
		Example: `  edgewarden-controller serve --data /var/lib/edgewarden-controller
  edgewarden-controller serve --data ./ctl --http 0.0.0.0:8443 --mqtt 0.0.0.0:8883 --advertise-mqtt tls://ctl.plant.example:8883`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Flags beat EDGEWARDEN_* variables, which beat the file.
			if err := flagconfig.Apply(cmd.Flags(), flagconfig.Options{File: configFile, EnvPrefix: "EDGEWARDEN_", Skip: []string{"config"}}); err != nil {
				return usageError{err}
			}
			if opts.DataDir == "" {
				return usageError{errors.New("--data DIR is required")}
			}
			logger, err := newLogger(stderr, logFormat, logLevel)
			if err != nil {
				return usageError{err}
			}
			opts.Logger = logger
			opts.Version = buildinfo.Version(version)
			return server.Run(cmd.Context(), opts)
		},
	}
	c.Flags().StringVar(&opts.DataDir, "data", "", "data directory made by init")
	c.Flags().StringVar(&configFile, "config", "", "YAML config file (e.g. /etc/edgewarden/controller.yaml); keys are flag names with _ for -, EDGEWARDEN_<KEY> variables override it")
	c.Flags().StringVar(&opts.HTTPAddr, "http", server.DefaultHTTPAddr, "listen address of the REST API (HTTPS)")
	c.Flags().IntVar(&opts.MaxConnsPerSource, "http-max-conns-per-source", server.DefaultMaxConnsPerSource, "open REST API connections allowed from one source address (more are closed at once); -1 for no limit")
	c.Flags().DurationVar(&opts.PresenceTimeout, "presence-timeout", store.DefaultPresenceTimeout, "a device silent this long is shown offline (keep it at least twice the agents' heartbeat_interval)")
	c.Flags().StringVar(&opts.MQTTAddr, "mqtt", server.DefaultMQTTAddr, "listen address of the embedded MQTT broker (mutual TLS)")
	c.Flags().StringVar(&opts.BrokerURL, "broker-url", "", "use this external MQTT broker (e.g. tls://mqtt.plant.example:8883, see packaging/mosquitto) instead of the embedded one")
	c.Flags().StringVar(&opts.AdvertiseHTTP, "advertise-http", "", "REST URL given to enrolling agents (default: https:// + the bound --http address)")
	c.Flags().StringVar(&opts.AdvertiseMQTT, "advertise-mqtt", "", "broker URL given to enrolling agents (default: tls:// + the bound --mqtt address)")
	c.Flags().StringVar(&opts.MetricsAddr, "metrics", "", "serve Prometheus /metrics and /healthz over plain HTTP on this address (e.g. 127.0.0.1:9464); off when empty")
	c.Flags().StringVar(&opts.SIEMLog, "siem-log", "", "append every security event (device events of severity security, audit entries of kind security) to this file as JSON lines, after it is committed; at least once, so deduplicate on id / device_id+event_id (off when empty)")
	c.Flags().DurationVar(&opts.DocumentTTL, "document-ttl", server.DefaultDocumentTTL, "validity of signed desired-state documents (re-signed before expiry)")
	c.Flags().StringVar(&logFormat, "log-format", "text", "log format: text or json")
	c.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return c
}

func recoverCmd(stdout io.Writer) *cobra.Command {
	var opts server.RecoverOptions
	c := &cobra.Command{
		Use:   "recover-admin --data DIR [--user NAME]",
		Short: "Break-glass: make a user an active admin with a new password (controller stopped, as the data directory's owner)",
		Long: `recover-admin is the way back when no one can administer the controller any more
(passwords lost, the admin disabled outside the rules). Stop the controller first: it
takes the data directory's lock. The user is created, or re-activated, with a new
password printed once and the admin role globally. The recovery is audited as security
now and again when the controller starts.`,
		Example: `  systemctl stop edgewarden-controller
  edgewarden-controller recover-admin --data /var/lib/edgewarden-controller --user alice
  systemctl start edgewarden-controller`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.DataDir == "" {
				return usageError{errors.New("--data DIR is required")}
			}
			rec, err := server.RecoverAdmin(cmd.Context(), opts)
			if err != nil {
				return err
			}
			how := "re-activated (was " + rec.Was + ")"
			if rec.Created {
				how = "created"
			}
			fmt.Fprintf(stdout, "user %q %s with the admin role globally\n", rec.User, how)
			fmt.Fprintf(stdout, "password (shown once; change it after logging in with `edgewarden passwd`): %s\n", rec.Password)
			fmt.Fprintf(stdout, "the recovery is audited as security; start the controller again\n")
			return nil
		},
	}
	c.Flags().StringVar(&opts.DataDir, "data", "", "data directory of the stopped controller")
	c.Flags().StringVar(&opts.User, "user", "admin", "the user to make an admin (created if missing)")
	return c
}

func fingerprintCmd(stdout io.Writer) *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:     "ca-fingerprint --data DIR",
		Short:   "Print sha256:<hex> of the controller CA, which agents pin at enrollment",
		Example: `  edgewarden-controller ca-fingerprint --data /var/lib/edgewarden-controller`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageError{errors.New("--data DIR is required")}
			}
			a, err := pki.Load(dir)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, a.Fingerprint())
			return nil
		},
	}
	c.Flags().StringVar(&dir, "data", "", "controller data directory")
	return c
}

func rotateCmd(stdout io.Writer) *cobra.Command {
	var dir string
	var promote bool
	c := &cobra.Command{
		Use:   "rotate-signing-key --data DIR [--promote]",
		Short: "Rotate the key that signs desired-state documents: announce a next key, then promote it",
		Long: `Rotate the Ed25519 key that signs desired-state documents, in two steps.

Without --promote: create the next key (` + pki.NextSigningKeyFile + `). After a controller
restart, every document announces it, signed by the current key, and agents
that apply such a document trust the next key too.

With --promote, run while the controller is STOPPED: the next key becomes the
signing key and the old one is kept as ` + pki.PrevSigningKeyFile + `. Documents are then
signed by both keys and keep announcing the new one, so a device that missed
the announcement still accepts them and learns the new key. Promote once every
device is in sync. The previous key stays until the next promotion replaces
it; to retire it earlier, once every device is in sync again, stop the
controller, delete ` + pki.PrevSigningKeyFile + ` and start it. A device that missed
both phases must then be enrolled again.`,
		Example: `  edgewarden-controller rotate-signing-key --data /var/lib/edgewarden-controller
  systemctl restart edgewarden-controller    # announce; wait until every device is in sync
  systemctl stop edgewarden-controller
  edgewarden-controller rotate-signing-key --data /var/lib/edgewarden-controller --promote
  systemctl start edgewarden-controller`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageError{errors.New("--data DIR is required")}
			}
			if promote {
				cur, prev, err := pki.PromoteSigningKey(dir)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "signing key %s promoted; previous key %s kept in %s/%s and co-signs documents\n", cur, prev, dir, pki.PrevSigningKeyFile)
				fmt.Fprintln(stdout, "next: start the controller; every device gets a document signed by both keys")
				return nil
			}
			id, err := pki.CreateNextSigningKey(dir)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "next signing key %s created in %s/%s\n", id, dir, pki.NextSigningKeyFile)
			fmt.Fprintln(stdout, "next: restart the controller so every document announces it; once every device is in sync,")
			fmt.Fprintf(stdout, "stop the controller, run edgewarden-controller rotate-signing-key --data %s --promote, and start it again\n", dir)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "data", "", "controller data directory")
	c.Flags().BoolVar(&promote, "promote", false, "make the announced next key the signing key (run with the controller stopped)")
	return c
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// noArgs refuses positional arguments as a usage error (exit status 2).
func noArgs(cmd *cobra.Command, args []string) error {
	if err := cobra.NoArgs(cmd, args); err != nil {
		return usageError{err}
	}
	return nil
}
