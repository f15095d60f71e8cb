package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/edgewarden/edgewarden/protocol/access"
)

// accessCmds are the commands of the access model: users, teams, actions,
// roles, grants, share, access, operator tokens, audit and settings.
func (a *app) accessCmds() []*cobra.Command {
	return []*cobra.Command{
		a.usersCmd(), a.teamsCmd(), a.actionsCmd(), a.rolesCmd(), a.grantsCmd(), a.shareCmd(),
		a.accessCmd(), a.opTokensCmd(), a.auditCmd(), a.settingsCmd(),
	}
}

// simple builds a leaf command that calls fn with a client.
func (a *app) simple(use, short, example string, nargs cobra.PositionalArgs, fn func(cmd *cobra.Command, cl *client.Client, argv []string) error) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short, Example: example, Args: args(nargs),
		RunE: func(cmd *cobra.Command, argv []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			return fn(cmd, cl, argv)
		},
	}
}

// ---- users ----

func (a *app) usersCmd() *cobra.Command {
	return group("users", "Invite, activate, list, disable, enable and delete users; reset passwords",
		"  edgewarden users invite bob\n  edgewarden users activate TOKEN --password-stdin < pw.txt\n  edgewarden users ls",
		a.usersInviteCmd(), a.usersActivateCmd(), a.usersLookupCmd(),
		a.simple("ls", "List users", "  edgewarden users ls -o json", cobra.NoArgs, func(cmd *cobra.Command, cl *client.Client, _ []string) error {
			us, err := cl.ListUsers(cmd.Context())
			if err != nil {
				return fmt.Errorf("list users: %w", err)
			}
			return a.emit(us, func(w *tabwriter.Writer) {
				row(w, "NAME", "STATE", "TEAMS", "CREATED")
				for _, u := range us {
					row(w, u.Name, u.State, listString(u.Teams), timeString(u.CreatedAt))
				}
			})
		}),
		a.simple("disable NAME", "Disable a user (its grants stop working everywhere)", "  edgewarden users disable bob", cobra.ExactArgs(1), func(cmd *cobra.Command, cl *client.Client, argv []string) error {
			u, err := cl.DisableUser(cmd.Context(), argv[0])
			if err != nil {
				return fmt.Errorf("disable user %s: %w", argv[0], err)
			}
			return a.emit(u, func(w *tabwriter.Writer) { fmt.Fprintf(w, "Disabled user %s.\n", u.Name) })
		}),
		a.simple("enable NAME", "Enable a disabled user again (its grants work again; old sessions stay ended)", "  edgewarden users enable bob", cobra.ExactArgs(1), func(cmd *cobra.Command, cl *client.Client, argv []string) error {
			u, err := cl.EnableUser(cmd.Context(), argv[0])
			if err != nil {
				return fmt.Errorf("enable user %s: %w", argv[0], err)
			}
			return a.emit(u, func(w *tabwriter.Writer) { fmt.Fprintf(w, "Enabled user %s.\n", u.Name) })
		}),
		a.usersResetPasswordCmd(),
		a.simple("delete NAME", "Delete a user with its grants and team memberships", "  edgewarden users delete bob", cobra.ExactArgs(1), func(cmd *cobra.Command, cl *client.Client, argv []string) error {
			if err := cl.DeleteUser(cmd.Context(), argv[0]); err != nil {
				return fmt.Errorf("delete user %s: %w", argv[0], err)
			}
			return a.emit(map[string]any{"name": argv[0], "deleted": true}, func(w *tabwriter.Writer) { fmt.Fprintf(w, "Deleted user %s.\n", argv[0]) })
		}),
	)
}

// usersLookupCmd asks whether an active user exists, for sharing a group
// with them; the answer is the name, nothing more.
func (a *app) usersLookupCmd() *cobra.Command {
	return a.simple("lookup NAME", "Check that an active user of that name exists (to share a group with them)",
		"  edgewarden users lookup bob\n  edgewarden share --group line-1 --user bob --role group-owner", cobra.ExactArgs(1),
		func(cmd *cobra.Command, cl *client.Client, argv []string) error {
			u, err := cl.LookupUser(cmd.Context(), argv[0])
			if err != nil {
				return fmt.Errorf("look up user %s: %w", argv[0], err)
			}
			return a.emit(u, func(w *tabwriter.Writer) { fmt.Fprintf(w, "%s is an active user.\n", u.Name) })
		})
}

func (a *app) usersInviteCmd() *cobra.Command {
	var ttl time.Duration
	c := a.simple("invite NAME [--ttl D]", "Invite a user and print its activation token", "  edgewarden users invite bob\n  edgewarden users invite bob --ttl 48h -o json", cobra.ExactArgs(1),
		func(cmd *cobra.Command, cl *client.Client, argv []string) error {
			if ttl < 0 || ttl%time.Second != 0 {
				return usagef("--ttl must be a whole number of seconds (e.g. 48h)")
			}
			inv, err := cl.InviteUser(cmd.Context(), apiv1.InviteRequest{Name: argv[0], TTLSeconds: int64(ttl / time.Second)})
			if err != nil {
				return fmt.Errorf("invite user %s: %w", argv[0], err)
			}
			if a.output == "json" {
				return a.printJSON(inv)
			}
			_, err = fmt.Fprintln(a.stdout, inv.Token)
			return err
		})
	c.Long = `invite creates user NAME, waiting for activation, and prints the activation
token (only now: the controller keeps only its hash). Hand it to the user, who
runs 'edgewarden users activate TOKEN --password-stdin'. The user can do
nothing until granted a role.`
	c.Flags().DurationVar(&ttl, "ttl", 0, "how long the activation token is valid (default 7 days)")
	return c
}

func (a *app) usersResetPasswordCmd() *cobra.Command {
	var ttl time.Duration
	c := a.simple("reset-password NAME [--ttl D]", "Reset a user's password and print a new activation token", "  edgewarden users reset-password bob\n  edgewarden users reset-password bob --ttl 2h -o json", cobra.ExactArgs(1),
		func(cmd *cobra.Command, cl *client.Client, argv []string) error {
			if ttl < 0 || ttl%time.Second != 0 {
				return usagef("--ttl must be a whole number of seconds (e.g. 2h)")
			}
			inv, err := cl.ResetPassword(cmd.Context(), argv[0], ttl)
			if err != nil {
				return fmt.Errorf("reset the password of %s: %w", argv[0], err)
			}
			if a.output == "json" {
				return a.printJSON(inv)
			}
			_, err = fmt.Fprintln(a.stdout, inv.Token)
			return err
		})
	c.Long = `reset-password clears the password of user NAME, ends its sessions and revokes
its operator tokens at once; it prints an activation token, as 'users invite'
does (only now: the controller keeps only its hash). Hand it to the user, who chooses a new password with
'edgewarden users activate TOKEN --password-stdin'. Until then the user can do
nothing. Your own password you change with 'edgewarden passwd'.`
	c.Flags().DurationVar(&ttl, "ttl", 0, "how long the activation token is valid (default 7 days)")
	return c
}

func (a *app) usersActivateCmd() *cobra.Command {
	var controller, ca string
	var passwordStdin bool
	c := &cobra.Command{
		Use:   "activate TOKEN --password-stdin [--controller URL --ca FILE]",
		Short: "Activate your invited user with its token and choose a password (no login needed)",
		Long: `activate redeems the activation token from 'edgewarden users invite' and sets
your password. It needs no session: give --controller and --ca, or it uses
those of the saved session. Then run 'edgewarden login'.`,
		Example: "  edgewarden users activate ewa_XXXX --password-stdin --controller https://127.0.0.1:8443 --ca ca.pem < pw.txt",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if !passwordStdin {
				return usagef("pass the new password on standard input with --password-stdin")
			}
			if controller == "" {
				if cfg, _, err := a.loadConfig(); err == nil {
					controller = cfg.Controller
					if ca == "" {
						ca = cfg.CA
					}
				}
			}
			if controller == "" {
				return usagef("--controller is required (no saved session to take it from)")
			}
			if ca != "" {
				var err error
				if ca, err = filepath.Abs(ca); err != nil {
					return fmt.Errorf("--ca: %w", err)
				}
			}
			password, err := readPassword(a.stdin)
			if err != nil {
				return err
			}
			cl, err := client.New(client.Options{BaseURL: controller, CAFile: ca})
			if err != nil {
				return err
			}
			u, err := cl.ActivateUser(cmd.Context(), argv[0], password)
			if err != nil {
				return fmt.Errorf("activate user: %w", err)
			}
			return a.emit(u, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "Activated user %s; log in with 'edgewarden login --user %s'.\n", u.Name, u.Name)
			})
		},
	}
	f := c.Flags()
	f.StringVar(&controller, "controller", "", "controller URL (default: the saved session's)")
	f.StringVar(&ca, "ca", "", "PEM file with the controller's CA certificate")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the new password from standard input")
	return c
}

// ---- teams ----

func (a *app) printTeam(t *apiv1.Team, verb string) error {
	return a.emit(t, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "%s team %s (members: %s).\n", verb, t.Name, listString(t.Members))
	})
}

func (a *app) teamsCmd() *cobra.Command {
	return group("teams", "Manage teams of users (grants to a team reach its members)",
		"  edgewarden teams create ops\n  edgewarden teams add-member ops bob carol",
		a.simple("create NAME", "Create a team", "  edgewarden teams create ops", cobra.ExactArgs(1), func(cmd *cobra.Command, cl *client.Client, argv []string) error {
			t, err := cl.CreateTeam(cmd.Context(), argv[0])
			if err != nil {
				return fmt.Errorf("create team %s: %w", argv[0], err)
			}
			return a.printTeam(t, "Created")
		}),
		a.simple("ls", "List teams", "  edgewarden teams ls", cobra.NoArgs, func(cmd *cobra.Command, cl *client.Client, _ []string) error {
			ts, err := cl.ListTeams(cmd.Context())
			if err != nil {
				return fmt.Errorf("list teams: %w", err)
			}
			return a.emit(ts, func(w *tabwriter.Writer) {
				row(w, "NAME", "MEMBERS", "CREATED")
				for _, t := range ts {
					row(w, t.Name, listString(t.Members), timeString(t.CreatedAt))
				}
			})
		}),
		a.simple("add-member TEAM USER..", "Add users to a team", "  edgewarden teams add-member ops bob", cobra.MinimumNArgs(2), func(cmd *cobra.Command, cl *client.Client, argv []string) error {
			t, err := cl.AddTeamMembers(cmd.Context(), argv[0], argv[1:])
			if err != nil {
				return fmt.Errorf("add members to team %s: %w", argv[0], err)
			}
			return a.printTeam(t, "Changed")
		}),
		a.simple("remove-member TEAM USER..", "Remove users from a team", "  edgewarden teams remove-member ops bob", cobra.MinimumNArgs(2), func(cmd *cobra.Command, cl *client.Client, argv []string) error {
			t, err := cl.RemoveTeamMembers(cmd.Context(), argv[0], argv[1:])
			if err != nil {
				return fmt.Errorf("remove members from team %s: %w", argv[0], err)
			}
			return a.printTeam(t, "Changed")
		}),
		a.simple("delete NAME", "Delete a team and its grants", "  edgewarden teams delete ops", cobra.ExactArgs(1), func(cmd *cobra.Command, cl *client.Client, argv []string) error {
			if err := cl.DeleteTeam(cmd.Context(), argv[0]); err != nil {
				return fmt.Errorf("delete team %s: %w", argv[0], err)
			}
			return a.emit(map[string]any{"name": argv[0], "deleted": true}, func(w *tabwriter.Writer) { fmt.Fprintf(w, "Deleted team %s.\n", argv[0]) })
		}),
	)
}

// ---- actions and roles ----

func (a *app) actionsCmd() *cobra.Command {
	return group("actions", "The action catalogue",
		"  edgewarden actions ls",
		a.simple("ls", "List every action, per resource type, with what it allows", "  edgewarden actions ls -o json", cobra.NoArgs, func(cmd *cobra.Command, cl *client.Client, _ []string) error {
			as, err := cl.ListActions(cmd.Context())
			if err != nil {
				return fmt.Errorf("list actions: %w", err)
			}
			return a.emit(as, func(w *tabwriter.Writer) {
				row(w, "RESOURCE", "ACTION", "DESCRIPTION")
				for _, x := range as {
					row(w, x.Resource, x.Name, x.Description)
				}
			})
		}),
	)
}

func actionsString(as []access.Action) string {
	s := make([]string, len(as))
	for i, x := range as {
		s[i] = string(x)
	}
	return listString(s)
}

func (a *app) printRole(r *apiv1.Role) error {
	return a.emit(r, func(w *tabwriter.Writer) {
		row(w, "Name:", r.Name)
		row(w, "Description:", r.Description)
		row(w, "Built in:", yesNo(r.Builtin))
		row(w, "Shareable:", yesNo(r.Shareable))
		row(w, "Actions:", actionsString(r.Actions))
	})
}

func (a *app) rolesCmd() *cobra.Command {
	return group("roles", "List, show, create, update and delete roles (built-in roles are fixed)",
		"  edgewarden roles ls\n  edgewarden roles create line-lead --actions device:view,device:logs --shareable",
		a.simple("ls", "List roles", "  edgewarden roles ls", cobra.NoArgs, func(cmd *cobra.Command, cl *client.Client, _ []string) error {
			rs, err := cl.ListRoles(cmd.Context())
			if err != nil {
				return fmt.Errorf("list roles: %w", err)
			}
			return a.emit(rs, func(w *tabwriter.Writer) {
				row(w, "NAME", "BUILT IN", "SHAREABLE", "ACTIONS")
				for _, r := range rs {
					row(w, r.Name, yesNo(r.Builtin), yesNo(r.Shareable), len(r.Actions))
				}
			})
		}),
		a.simple("show NAME", "Show a role", "  edgewarden roles show operator", cobra.ExactArgs(1), func(cmd *cobra.Command, cl *client.Client, argv []string) error {
			r, err := cl.GetRole(cmd.Context(), argv[0])
			if err != nil {
				return fmt.Errorf("show role %s: %w", argv[0], err)
			}
			return a.printRole(r)
		}),
		a.roleWriteCmd(true), a.roleWriteCmd(false),
		a.simple("delete NAME", "Delete a custom role no grant uses", "  edgewarden roles delete line-lead", cobra.ExactArgs(1), func(cmd *cobra.Command, cl *client.Client, argv []string) error {
			if err := cl.DeleteRole(cmd.Context(), argv[0]); err != nil {
				return fmt.Errorf("delete role %s: %w", argv[0], err)
			}
			return a.emit(map[string]any{"name": argv[0], "deleted": true}, func(w *tabwriter.Writer) { fmt.Fprintf(w, "Deleted role %s.\n", argv[0]) })
		}),
	)
}

func (a *app) roleWriteCmd(create bool) *cobra.Command {
	var actions []string
	var description string
	var shareable bool
	use, short, verb := "create NAME --actions a,b [--shareable]", "Create a custom role", "create"
	if !create {
		use, short, verb = "update NAME --actions a,b [--shareable]", "Replace a custom role's actions", "update"
	}
	c := a.simple(use, short, "  edgewarden roles "+verb+" line-lead --actions device:view,device:logs --shareable", cobra.ExactArgs(1),
		func(cmd *cobra.Command, cl *client.Client, argv []string) error {
			if len(actions) == 0 {
				return usagef("--actions is required: name at least one action (see 'edgewarden actions ls')")
			}
			req := apiv1.RoleRequest{Name: argv[0], Description: description, Actions: actions, Shareable: shareable}
			var r *apiv1.Role
			var err error
			if create {
				r, err = cl.CreateRole(cmd.Context(), req)
			} else {
				r, err = cl.UpdateRole(cmd.Context(), argv[0], req)
			}
			if err != nil {
				return fmt.Errorf("%s role %s: %w", verb, argv[0], err)
			}
			return a.printRole(r)
		})
	f := c.Flags()
	f.StringSliceVar(&actions, "actions", nil, "actions, comma-separated (see 'edgewarden actions ls')")
	f.StringVar(&description, "description", "", "what the role is for")
	f.BoolVar(&shareable, "shareable", false, "make it a template that group sharers may share")
	return c
}

// ---- grants and share ----

func subjectString(s access.Subject) string { return string(s.Kind) + ":" + s.Name }

func (a *app) grantsCmd() *cobra.Command {
	return group("grants", "Give roles to users and teams on scopes",
		"  edgewarden grants create --role viewer --user bob --group line-1\n  edgewarden grants ls",
		a.grantsCreateCmd(),
		a.simple("ls", "List grants", "  edgewarden grants ls -o json", cobra.NoArgs, func(cmd *cobra.Command, cl *client.Client, _ []string) error {
			gs, err := cl.ListGrants(cmd.Context())
			if err != nil {
				return fmt.Errorf("list grants: %w", err)
			}
			return a.emit(gs, func(w *tabwriter.Writer) {
				row(w, "ID", "SUBJECT", "ROLE", "SCOPE", "CREATED BY", "CREATED")
				for _, g := range gs {
					row(w, g.ID, subjectString(g.Subject), g.Role, g.Scope.String(), g.CreatedBy, timeString(g.CreatedAt))
				}
			})
		}),
		a.simple("delete ID", "Delete a grant", "  edgewarden grants delete g-0123456789", cobra.ExactArgs(1), func(cmd *cobra.Command, cl *client.Client, argv []string) error {
			if err := cl.DeleteGrant(cmd.Context(), argv[0]); err != nil {
				return fmt.Errorf("delete grant %s: %w", argv[0], err)
			}
			return a.emit(map[string]any{"id": argv[0], "deleted": true}, func(w *tabwriter.Writer) { fmt.Fprintf(w, "Deleted grant %s.\n", argv[0]) })
		}),
	)
}

func (a *app) printGrant(g *apiv1.Grant) error {
	return a.emit(g, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "Created grant %s: role %s to %s on %s.\n", g.ID, g.Role, g.Subject, g.Scope)
	})
}

func (a *app) grantsCreateCmd() *cobra.Command {
	var req apiv1.CreateGrantRequest
	c := a.simple("create --role R (--user U | --team T) [--group G | --device D | --app A]", "Give a role to a user or team (no scope: everywhere)",
		"  edgewarden grants create --role operator --team ops --group line-1\n  edgewarden grants create --role admin --user alice", cobra.NoArgs,
		func(cmd *cobra.Command, cl *client.Client, _ []string) error {
			if req.Role == "" || (req.User == "") == (req.Team == "") {
				return usagef("give --role and exactly one of --user and --team")
			}
			g, err := cl.CreateGrant(cmd.Context(), req)
			if err != nil {
				return fmt.Errorf("create grant: %w", err)
			}
			return a.printGrant(g)
		})
	f := c.Flags()
	f.StringVar(&req.Role, "role", "", "role to give")
	f.StringVar(&req.User, "user", "", "user to give it to")
	f.StringVar(&req.Team, "team", "", "team to give it to")
	f.StringVar(&req.Group, "group", "", "scope: a device group (its devices and included groups)")
	f.StringVar(&req.Device, "device", "", "scope: one device")
	f.StringVar(&req.App, "app", "", "scope: one app")
	return c
}

func (a *app) shareCmd() *cobra.Command {
	var req apiv1.ShareRequest
	c := a.simple("share --group G (--user U | --team T) --role TEMPLATE", "Share a template role on a group you may share",
		"  edgewarden share --group line-1 --user carol --role viewer", cobra.NoArgs,
		func(cmd *cobra.Command, cl *client.Client, _ []string) error {
			if req.Group == "" || req.Role == "" || (req.User == "") == (req.Team == "") {
				return usagef("give --group, --role and exactly one of --user and --team")
			}
			g, err := cl.Share(cmd.Context(), req)
			if err != nil {
				return fmt.Errorf("share: %w", err)
			}
			return a.printGrant(g)
		})
	f := c.Flags()
	f.StringVar(&req.Group, "group", "", "device group to share")
	f.StringVar(&req.Role, "role", "", "template (shareable) role")
	f.StringVar(&req.User, "user", "", "user to share with")
	f.StringVar(&req.Team, "team", "", "team to share with")
	return c
}

// ---- access check / explain ----

func (a *app) accessCmd() *cobra.Command {
	return group("access", "Ask whether a user may do an action, and why",
		"  edgewarden access check --user bob --action device:view --device press-01\n  edgewarden access explain --user bob --action device:logs --group line-1",
		a.accessDecideCmd("check", false), a.accessDecideCmd("explain", true))
}

func (a *app) accessDecideCmd(name string, explain bool) *cobra.Command {
	var req apiv1.AccessCheckRequest
	short := "Check whether a user may do an action (exit 0 allowed, 3 denied)"
	if explain {
		short = "Explain a decision: the grant chain that allows it, or why it is denied (exit 0 allowed, 3 denied)"
	}
	c := a.simple(name+" --user U --action A [--device D | --group G | --app A]", short,
		"  edgewarden access "+name+" --user bob --action device:app-operate --device press-01", cobra.NoArgs,
		func(cmd *cobra.Command, cl *client.Client, _ []string) error {
			if req.Action == "" {
				return usagef("--action is required (see 'edgewarden actions ls')")
			}
			d, err := cl.CheckAccess(cmd.Context(), req)
			if err != nil {
				return fmt.Errorf("access %s: %w", name, err)
			}
			err = a.emit(d, func(w *tabwriter.Writer) {
				if !explain {
					verdict, may := "denied", "may not"
					if d.Allowed {
						verdict, may = "allowed", "may"
					}
					fmt.Fprintf(w, "%s: %s %s %s on %s\n", verdict, d.User, may, d.Action, d.Resource)
					if !d.Allowed {
						fmt.Fprintln(w, d.Explanation)
					}
					return
				}
				fmt.Fprintln(w, d.Explanation)
				for i, s := range d.Chain {
					fmt.Fprintf(w, "  %s%s %s\n", strings.Repeat("  ", i), s.Kind, s.Name)
				}
			})
			if err != nil {
				return err
			}
			if !d.Allowed {
				return exitError{exitDenied, errors.New("denied")}
			}
			return nil
		})
	f := c.Flags()
	f.StringVar(&req.User, "user", "", "user to ask about (default: you)")
	f.StringVar(&req.Action, "action", "", "action, e.g. device:view")
	f.StringVar(&req.Device, "device", "", "on a device")
	f.StringVar(&req.Group, "group", "", "on a device group")
	f.StringVar(&req.App, "app", "", "on an app")
	return c
}

// ---- operator tokens ----

func (a *app) opTokensCmd() *cobra.Command {
	return group("tokens", "Issue, list and revoke operator tokens for local access on devices",
		"  edgewarden tokens issue --ttl 8h\n  edgewarden tokens revoke ID",
		a.tokensIssueCmd(),
		a.simple("ls", "List operator tokens (yours; everyone's with controller:manage-tokens)", "  edgewarden tokens ls", cobra.NoArgs, func(cmd *cobra.Command, cl *client.Client, _ []string) error {
			ts, err := cl.ListTokens(cmd.Context())
			if err != nil {
				return fmt.Errorf("list operator tokens: %w", err)
			}
			now := time.Now()
			return a.emit(ts, func(w *tabwriter.Writer) {
				row(w, "ID", "USER", "STATE", "ISSUED", "EXPIRES")
				for _, t := range ts {
					state := "valid"
					switch {
					case t.Revoked:
						state = "revoked"
					case !now.Before(t.ExpiresAt):
						state = "expired"
					}
					row(w, t.ID, t.User, state, timeString(t.IssuedAt), timeString(t.ExpiresAt))
				}
			})
		}),
		a.simple("revoke ID", "Revoke an operator token (devices refuse it with their next document)", "  edgewarden tokens revoke ABCDEF", cobra.ExactArgs(1), func(cmd *cobra.Command, cl *client.Client, argv []string) error {
			if err := cl.RevokeToken(cmd.Context(), argv[0]); err != nil {
				return fmt.Errorf("revoke operator token %s: %w", argv[0], err)
			}
			// DELETE answers 204: read the token back for what it was.
			ts, err := cl.ListTokens(cmd.Context())
			if err != nil {
				return fmt.Errorf("operator token %s revoked; reading it back: %w", argv[0], err)
			}
			i := slices.IndexFunc(ts, func(t apiv1.OperatorToken) bool { return t.ID == argv[0] })
			if i < 0 {
				return fmt.Errorf("operator token %s revoked, but it is not in your token list; see `edgewarden tokens ls`", argv[0])
			}
			t := ts[i]
			return a.emit(t, func(w *tabwriter.Writer) { fmt.Fprintf(w, "Revoked operator token %s of %s.\n", t.ID, t.User) })
		}),
	)
}

func (a *app) tokensIssueCmd() *cobra.Command {
	var ttl time.Duration
	c := a.simple("issue [--ttl D]", "Issue yourself an operator token and print it",
		"  edgewarden tokens issue\n  edgewarden tokens issue --ttl 2h -o json", cobra.NoArgs,
		func(cmd *cobra.Command, cl *client.Client, _ []string) error {
			if ttl < 0 || ttl%time.Second != 0 {
				return usagef("--ttl must be a whole number of seconds (e.g. 2h)")
			}
			t, err := cl.IssueToken(cmd.Context(), ttl)
			if err != nil {
				return fmt.Errorf("issue operator token: %w", err)
			}
			if a.output == "json" {
				return a.printJSON(t)
			}
			_, err = fmt.Fprintln(a.stdout, t.Token)
			return err
		})
	c.Long = `issue prints an operator token (a JWT) for 'edgewarden local --token T' on a
device. It proves who you are; the grants in the device's document decide what
you may do there, so removing a grant takes effect without waiting for expiry.`
	c.Flags().DurationVar(&ttl, "ttl", 0, "lifetime (default 8h, at most 7 days)")
	return c
}

// ---- audit and settings ----

// auditCmd and printSettings are in security.go.

func (a *app) settingsCmd() *cobra.Command {
	banner := group("banner", "The system-use notification shown before login", "  edgewarden settings banner set 'Authorized use only'",
		a.simple("set TEXT", "Set the banner (\"\" removes it)", "  edgewarden settings banner set 'Authorized use only'", cobra.ExactArgs(1), func(cmd *cobra.Command, cl *client.Client, argv []string) error {
			s, err := cl.SetBanner(cmd.Context(), argv[0])
			if err != nil {
				return fmt.Errorf("set banner: %w", err)
			}
			return a.printSettings(s)
		}))
	return group("settings", "Show and change global settings",
		"  edgewarden settings show\n  edgewarden settings banner set 'Authorized use only'\n  edgewarden settings sideload allow --group line-1",
		a.simple("show", "Show the settings", "  edgewarden settings show -o json", cobra.NoArgs, func(cmd *cobra.Command, cl *client.Client, _ []string) error {
			s, err := cl.Settings(cmd.Context())
			if err != nil {
				return fmt.Errorf("show settings: %w", err)
			}
			return a.printSettings(s)
		}),
		banner,
		a.sideloadCmd(), // security.go
	)
}
