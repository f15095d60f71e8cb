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
	return &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a device group",
		Example: "  edgewarden groups delete line-1",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			if err := cl.DeleteGroup(cmd.Context(), argv[0], false); err != nil {
				return fmt.Errorf("delete group %s: %w", argv[0], err)
			}
			return a.emit(map[string]any{"name": argv[0], "deleted": true}, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "Deleted group %s.\n", argv[0])
			})
		},
	}
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
