package main

import (
	"bufio"
	"fmt"
	"io"
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
		Use:   "login --controller URL --ca FILE --user NAME --password-stdin",
		Short: "Log in to a controller and keep the session",
		Long: `login checks your password with the controller and keeps the session token,
the controller URL and the CA file path in $EDGEWARDEN_CONFIG (default
~/.config/edgewarden/config.json, mode 0600). It prints the controller's
system-use banner, if one is set.`,
		Example: `  edgewarden login --controller https://127.0.0.1:8443 --ca /var/lib/edgewarden/ca.pem --user admin --password-stdin < pw.txt`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if controller == "" || user == "" {
				return usagef("--controller and --user are required")
			}
			if !passwordStdin {
				return usagef("pass the password on standard input with --password-stdin")
			}
			password, err := readPassword(a.stdin)
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
	f.StringVar(&controller, "controller", "", "controller URL, e.g. https://127.0.0.1:8443")
	f.StringVar(&ca, "ca", "", "PEM file with the controller's CA certificate (the controller's ca.pem)")
	f.StringVar(&user, "user", "", "user name")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	return c
}

// readPassword reads the first line of r.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read password from standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", usagef("no password on standard input (--password-stdin)")
	}
	return line, nil
}
