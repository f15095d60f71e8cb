package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgewarden/edgewarden/controller/client"
)

// Commands about one's own account: whoami, passwd, logout.

func (a *app) whoamiCmd() *cobra.Command {
	return a.simple("whoami", "Show who you are logged in as: name, id, teams and grants",
		"  edgewarden whoami\n  edgewarden whoami -o json", cobra.NoArgs,
		func(cmd *cobra.Command, cl *client.Client, _ []string) error {
			me, err := cl.WhoAmI(cmd.Context())
			if err != nil {
				return fmt.Errorf("whoami: %w", err)
			}
			return a.emit(me, func(w *tabwriter.Writer) {
				row(w, "User:", me.Name)
				row(w, "ID:", me.ID)
				row(w, "Teams:", listString(me.Teams))
				row(w, "Session expires:", timeString(me.SessionExpiresAt))
				fmt.Fprintln(w)
				if len(me.Grants) == 0 {
					fmt.Fprintln(w, "No grants: ask an admin for one (see `edgewarden access explain`).")
					return
				}
				row(w, "GRANT", "SUBJECT", "ROLE", "SCOPE")
				for _, g := range me.Grants {
					row(w, g.ID, subjectString(g.Subject), g.Role, g.Scope.String())
				}
			})
		})
}

func (a *app) logoutCmd() *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   "logout [--all]",
		Short: "End your session on the controller and forget it here",
		Long: `logout ends the session on the controller, so the token is refused from now on
also for anyone who copied it, then removes it from the config (the controller,
CA and user stay, for the next 'edgewarden login'). With --all every session of
your user ends, on every machine. If the controller cannot be reached the
session is kept, since it would still be valid there: try again.`,
		Example: "  edgewarden logout\n  edgewarden logout --all",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, path, err := a.loadConfig()
			if err != nil {
				return err
			}
			cl, err := client.New(client.Options{BaseURL: cfg.Controller, CAFile: cfg.CA, Token: cfg.Token})
			if err != nil {
				return err
			}
			note := "the session is ended on the controller"
			if all {
				note = "every session of " + cfg.User + " is ended on the controller"
			}
			if err := cl.Logout(cmd.Context(), all); client.IsStatus(err, 401) {
				note = "the session had already ended"
			} else if err != nil {
				return fmt.Errorf("logout: %w; the session is kept, it is still valid on the controller until %s: try again", err, cfg.ExpiresAt.UTC().Format(time.RFC3339))
			}
			cfg.Token, cfg.ExpiresAt = "", time.Time{}
			if err := saveConfig(path, cfg); err != nil {
				return err
			}
			return a.emit(map[string]any{"controller": cfg.Controller, "user": cfg.User, "logged_out": true, "all": all}, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "Logged out of %s as %s: %s.\n", cfg.Controller, cfg.User, note)
			})
		},
	}
	c.Flags().BoolVar(&all, "all", false, "end every session of your user, not only this one")
	return c
}

func (a *app) passwdCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "passwd",
		Short: "Change your password",
		Long: `passwd changes your own password. On a terminal it asks for the current
password and the new one twice, without echo. Otherwise it reads standard
input, for scripts: the current password on the first line, the new one on
the second. The new password needs at least 12 characters and must not be a
common password.

Every other session of your user ends (on other machines too, and any copy of
this one); this session is renewed and kept in the config.`,
		Example: "  edgewarden passwd\n  printf '%s\\n%s\\n' \"$OLD\" \"$NEW\" | edgewarden passwd",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, path, err := a.loadConfig()
			if err != nil {
				return err
			}
			var oldPassword, newPassword string
			if tty, ok := a.terminal(); ok {
				if oldPassword, err = a.askSecret(tty, "Current password: "); err != nil {
					return err
				}
				if newPassword, err = a.askSecret(tty, "New password: "); err != nil {
					return err
				}
				again, err := a.askSecret(tty, "New password again: ")
				if err != nil {
					return err
				}
				if again != newPassword {
					return fmt.Errorf("the two new passwords differ; nothing changed: run 'edgewarden passwd' again")
				}
			} else {
				lines, err := readLines(a.stdin, 2, "the current and the new password")
				if err != nil {
					return err
				}
				oldPassword, newPassword = lines[0], lines[1]
			}
			cl, err := client.New(client.Options{BaseURL: cfg.Controller, CAFile: cfg.CA, Token: cfg.Token})
			if err != nil {
				return err
			}
			resp, err := cl.ChangePassword(cmd.Context(), oldPassword, newPassword)
			if err != nil {
				return fmt.Errorf("change the password of %s: %w", cfg.User, err)
			}
			cfg.Token, cfg.ExpiresAt = resp.Token, resp.ExpiresAt
			if err := saveConfig(path, cfg); err != nil {
				return fmt.Errorf("password changed, but the renewed session could not be saved (%w): run 'edgewarden login'", err)
			}
			return a.emit(map[string]any{"user": cfg.User, "password_changed": true, "expires_at": resp.ExpiresAt}, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "Changed the password of %s; its other sessions have ended, this one is renewed (expires %s).\n", cfg.User, timeString(resp.ExpiresAt))
			})
		},
	}
}
