package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/spf13/cobra"
)

func (a *app) loginCmd() *cobra.Command {
	var controller, ca, user string
	var passwordStdin bool
	c := &cobra.Command{
		Use:   "login [--controller URL --ca FILE --user NAME] [--password-stdin]",
		Short: "Log in to a controller and keep the session",
		Long: `login checks your password with the controller and keeps the session token,
the controller URL and the CA file path in $EDGEWARDEN_CONFIG (default
~/.config/edgewarden/config.json, mode 0600). It prints the controller's
system-use banner, if one is set.

--controller, --ca and --user default to those of the saved config, so after
the first login (or a logout) 'edgewarden login' alone logs in again. On a
terminal it asks for the password without echoing it; scripts pass it on
standard input with --password-stdin.`,
		Example: `  edgewarden login --controller https://127.0.0.1:8443 --ca /var/lib/edgewarden/ca.pem --user admin --password-stdin < pw.txt
  edgewarden login`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if saved, _, err := a.readConfig(); err == nil {
				if controller == "" || strings.TrimRight(controller, "/") == saved.Controller {
					// The CA goes with its controller: never another's.
					controller = saved.Controller
					if ca == "" {
						ca = saved.CA
					}
				}
				if user == "" {
					user = saved.User
				}
			}
			if controller == "" || user == "" {
				return usagef("--controller and --user are required (no saved config to take them from)")
			}
			var password string
			var err error
			if passwordStdin {
				password, err = readPassword(a.stdin)
			} else if tty, ok := a.terminal(); ok {
				password, err = a.askSecret(tty, fmt.Sprintf("Password for %s at %s: ", user, controller))
			} else {
				return usagef("standard input is not a terminal: pass the password on standard input with --password-stdin")
			}
			if err != nil {
				return err
			}
			if ca != "" {
				if ca, err = filepath.Abs(ca); err != nil {
					return fmt.Errorf("--ca: %w", err)
				}
			}
			cl, err := client.New(client.Options{BaseURL: controller, CAFile: ca})
			if err != nil {
				return err
			}
			resp, err := cl.Login(cmd.Context(), user, password)
			if err != nil {
				return fmt.Errorf("login as %s: %w", user, err)
			}
			path, err := a.configPath()
			if err != nil {
				return err
			}
			cfg := &config{Controller: strings.TrimRight(controller, "/"), CA: ca, User: user, Token: resp.Token, ExpiresAt: resp.ExpiresAt}
			if err := saveConfig(path, cfg); err != nil {
				return err
			}
			out := struct {
				Controller string `json:"controller"`
				User       string `json:"user"`
				ExpiresAt  any    `json:"expires_at"`
				Banner     string `json:"banner,omitempty"`
			}{cfg.Controller, user, resp.ExpiresAt, resp.Banner}
			return a.emit(out, func(w *tabwriter.Writer) {
				if resp.Banner != "" {
					fmt.Fprintln(w, resp.Banner)
					fmt.Fprintln(w)
				}
				fmt.Fprintf(w, "Logged in to %s as %s (session expires %s).\n", cfg.Controller, user, timeString(resp.ExpiresAt))
			})
		},
	}
	f := c.Flags()
	f.StringVar(&controller, "controller", "", "controller URL, e.g. https://127.0.0.1:8443 (default: the saved config's)")
	f.StringVar(&ca, "ca", "", "PEM file with the controller's CA certificate (the controller's ca.pem; default: the saved config's)")
	f.StringVar(&user, "user", "", "user name (default: the saved config's)")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	return c
}
