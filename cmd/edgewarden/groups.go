package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/spf13/cobra"
)

func (a *app) groupsCmd() *cobra.Command {
	return group("groups", "Manage device groups: members, selectors, included groups",
		"  edgewarden groups create line-1 --selector line=1\n  edgewarden groups add line-1 press-01 press-02\n  edgewarden groups include plant-a line-1",
		a.groupsCreateCmd(), a.groupsListCmd(), a.groupsShowCmd(), a.groupsDeleteCmd(),
		a.groupsRenameCmd(), a.groupsSetSelectorCmd(),
		a.groupsChangeCmd("add NAME DEVICE..", "Add devices to a group directly", "  edgewarden groups add line-1 press-01 press-02",
			"add devices to group", func(ctx context.Context, c *client.Client, argv []string) (*apiv1.Group, error) {
				return c.AddGroupDevices(ctx, argv[0], argv[1:])
			}, 2),
		a.groupsChangeCmd("remove NAME DEVICE..", "Remove direct members from a group", "  edgewarden groups remove line-1 press-02",
			"remove devices from group", func(ctx context.Context, c *client.Client, argv []string) (*apiv1.Group, error) {
				return c.RemoveGroupDevices(ctx, argv[0], argv[1:])
			}, 2),
		a.groupsChangeCmd("include PARENT CHILD", "Make a group include another (members flow up)", "  edgewarden groups include plant-a line-1",
			"include group", func(ctx context.Context, c *client.Client, argv []string) (*apiv1.Group, error) {
				return c.IncludeGroup(ctx, argv[0], argv[1])
			}, -2),
		a.groupsChangeCmd("exclude PARENT CHILD", "Stop a group including another", "  edgewarden groups exclude plant-a line-1",
			"exclude group", func(ctx context.Context, c *client.Client, argv []string) (*apiv1.Group, error) {
				if err := c.ExcludeGroup(ctx, argv[0], argv[1]); err != nil {
					return nil, err
				}
				return c.GetGroup(ctx, argv[0]) // DELETE answers 204: read the group back

			}, -2),
	)
}

func (a *app) printGroup(g *apiv1.Group) error {
	return a.emit(g, func(w *tabwriter.Writer) {
		row(w, "Name:", g.Name)
		sel := g.Selector
		if sel == "" {
			sel = "-"
		}
		row(w, "Selector:", sel)
		row(w, "Devices:", listString(g.Devices))
		row(w, "Includes:", listString(g.Includes))
		row(w, "Members:", listString(g.Members))
		row(w, "Created:", timeString(g.CreatedAt))
	})
}

func (a *app) groupsCreateCmd() *cobra.Command {
	var selector string
	c := &cobra.Command{
		Use:   "create NAME [--selector EXPR]",
		Short: "Create a device group",
		Long: `create makes a device group. With --selector (k=v,k2=v2: every pair must
match) devices whose labels match are members, besides those added directly.`,
		Example: "  edgewarden groups create line-1\n  edgewarden groups create presses --selector role=press,site=plant-a",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			g, err := cl.CreateGroup(cmd.Context(), argv[0], selector)
			if err != nil {
				return fmt.Errorf("create group %s: %w", argv[0], err)
			}
			return a.emit(g, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "Created group %s (%d members).\n", g.Name, len(g.Members))
			})
		},
	}
	c.Flags().StringVar(&selector, "selector", "", "label selector, k=v,k2=v2")
	return c
}

func (a *app) groupsListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List device groups",
		Example: "  edgewarden groups ls\n  edgewarden groups ls -o json",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			gs, err := cl.ListGroups(cmd.Context())
			if err != nil {
				return fmt.Errorf("list groups: %w", err)
			}
			return a.emit(gs, func(w *tabwriter.Writer) {
				row(w, "NAME", "SELECTOR", "DEVICES", "INCLUDES", "MEMBERS")
				for _, g := range gs {
					sel := g.Selector
					if sel == "" {
						sel = "-"
					}
					row(w, g.Name, sel, len(g.Devices), listString(g.Includes), len(g.Members))
				}
			})
		},
	}
}

func (a *app) groupsShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show NAME",
		Short:   "Show a device group and all its members",
		Example: "  edgewarden groups show line-1\n  edgewarden groups show line-1 -o json",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			g, err := cl.GetGroup(cmd.Context(), argv[0])
			if err != nil {
				return fmt.Errorf("show group %s: %w", argv[0], err)
			}
			return a.printGroup(g)
		},
	}
}

func (a *app) groupsDeleteCmd() *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:     "delete NAME [--force]",
		Aliases: []string{"rm"},
		Short:   "Delete a device group",
		Long: `delete removes a device group; its devices stay enrolled. A group that carries
what others rely on (a sideload override, grants to others, app assignments,
inclusion in another group) is refused with the list of what would go; --force
deletes it with all of that, if you could remove each of those yourself. The
audit entry names everything removed.`,
		Example: "  edgewarden groups delete line-1\n  edgewarden groups delete line-1 --force",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			if err := cl.DeleteGroup(cmd.Context(), argv[0], force); err != nil {
				return fmt.Errorf("delete group %s: %w", argv[0], err)
			}
			return a.emit(map[string]any{"name": argv[0], "deleted": true}, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "Deleted group %s.\n", argv[0])
			})
		},
	}
	c.Flags().BoolVar(&force, "force", false, "delete the group with its sideload override, grants, app assignments and inclusions")
	return c
}

func (a *app) groupsRenameCmd() *cobra.Command {
	return a.groupsChangeCmd("rename OLD NEW", "Rename a device group (grants, overrides, assignments and tokens follow it)",
		"  edgewarden groups rename line-1 press-line-1", "rename group",
		func(ctx context.Context, c *client.Client, argv []string) (*apiv1.Group, error) {
			return c.RenameGroup(ctx, argv[0], argv[1])
		}, -2)
}

func (a *app) groupsSetSelectorCmd() *cobra.Command {
	var dryRun bool
	c := &cobra.Command{
		Use:   "set-selector NAME EXPR [--dry-run]",
		Short: "Replace a group's label selector (\"\" removes it); --dry-run shows what it would match",
		Long: `set-selector replaces the group's label selector (k=v,k2=v2: every pair must
match; "" removes it) and prints the devices that join and leave the group.
Every device a selector adds needs device:manage, as adding it by name does.
--dry-run prints the same, and changes nothing.`,
		Example: "  edgewarden groups set-selector presses role=press,site=plant-a --dry-run\n  edgewarden groups set-selector presses role=press,site=plant-a",
		Args:    args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			ch, err := cl.SetGroupSelector(cmd.Context(), argv[0], argv[1], dryRun)
			if err != nil {
				return fmt.Errorf("set selector of group %s: %w", argv[0], err)
			}
			return a.emit(ch, func(w *tabwriter.Writer) {
				verb := "Set"
				if ch.DryRun {
					verb = "Would set (dry run, nothing changed):"
				}
				sel := ch.Group.Selector
				if sel == "" {
					sel = "none"
				}
				fmt.Fprintf(w, "%s selector of group %s to %s.\n", verb, ch.Group.Name, sel)
				row(w, "Joining:", listString(ch.Added))
				row(w, "Leaving:", listString(ch.Removed))
				row(w, "Members:", listString(ch.Group.Members))
			})
		},
	}
	c.Flags().BoolVar(&dryRun, "dry-run", false, "only show which devices the selector would add and remove")
	return c
}

// groupsChangeCmd builds a command that changes a group and prints it.
// nargs > 0: at least nargs arguments; nargs < 0: exactly -nargs.
func (a *app) groupsChangeCmd(use, short, example, what string,
	change func(context.Context, *client.Client, []string) (*apiv1.Group, error), nargs int) *cobra.Command {
	v := cobra.MinimumNArgs(nargs)
	if nargs < 0 {
		v = cobra.ExactArgs(-nargs)
	}
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    args(v),
		RunE: func(cmd *cobra.Command, argv []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			g, err := change(cmd.Context(), cl, argv)
			if err != nil {
				return fmt.Errorf("%s %s: %w", what, argv[0], err)
			}
			return a.printGroup(g)
		},
	}
}
