package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/spf13/cobra"
)

func (a *app) devicesCmd() *cobra.Command {
	return group("devices", "List, inspect, approve, label and delete devices",
		"  edgewarden devices ls\n  edgewarden devices show press-01 -o json",
		a.devicesListCmd(), a.devicesShowCmd(), a.devicesApproveCmd(), a.devicesLabelCmd(), a.devicesDeleteCmd())
}

// syncString says how a device stands against its desired state.
func syncString(d apiv1.Device) string {
	switch d.Sync {
	case apiv1.SyncPending:
		return "pending approval"
	case apiv1.SyncInSync:
		return "in sync"
	case "":
		// A controller from before the sync field.
		if d.InSync {
			return "in sync"
		}
		if d.LastRejected != nil {
			return "failing"
		}
		return "drifting"
	}
	return d.Sync
}

func (a *app) devicesListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List devices",
		Example: "  edgewarden devices ls\n  edgewarden devices ls -o json",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			devs, err := cl.ListDevices(cmd.Context())
			if err != nil {
				return fmt.Errorf("list devices: %w", err)
			}
			return a.emit(devs, func(w *tabwriter.Writer) {
				row(w, "ID", "STATE", "ONLINE", "SILENT", "SYNC", "DESIRED", "APPLIED", "GROUPS", "LAST SEEN")
				for _, d := range devs {
					row(w, d.ID, d.State, yesNo(d.Online), silentString(d.SilentSeconds), syncString(d), d.DesiredRevision, d.AppliedRevision, listString(d.Groups), timePtrString(d.LastSeen))
				}
			})
		},
	}
}

func (a *app) printDevice(d *apiv1.Device) error {
	return a.emit(d, func(w *tabwriter.Writer) {
		row(w, "ID:", d.ID)
		row(w, "State:", d.State)
		row(w, "Online:", yesNo(d.Online))
		row(w, "Sync:", syncString(*d))
		if d.SyncReason != "" {
			row(w, "Sync reason:", d.SyncReason)
		}
		row(w, "Desired revision:", d.DesiredRevision)
		row(w, "Applied revision:", d.AppliedRevision)
		if d.LastRejected != nil {
			row(w, "Last rejected:", fmt.Sprintf("revision %d: %s (%s)", d.LastRejected.Revision, d.LastRejected.Message, d.LastRejected.Reason))
		}
		row(w, "Groups:", listString(d.Groups))
		row(w, "Labels:", labelsString(d.Labels))
		if len(d.RequestedLabels) > 0 {
			row(w, "Requested labels:", labelsString(d.RequestedLabels)+" (not applied: the enrollment token does not allow these keys; 'devices label' applies them)")
		}
		row(w, "Last seen:", timePtrString(d.LastSeen)+" (silent "+silentString(d.SilentSeconds)+")")
		if d.AgentVersion != "" {
			row(w, "Agent:", d.AgentVersion)
		}
		row(w, "Enrolled:", timeString(d.EnrolledAt))
		if !d.PolicyExpiresAt.IsZero() {
			row(w, "Policy expires:", timeString(d.PolicyExpiresAt))
		}
		if len(d.Apps) == 0 {
			row(w, "Apps:", "-")
			return
		}
		row(w, "Apps:")
		row(w, "  NAME", "VERSION", "STATE", "REASON")
		for _, app := range d.Apps {
			reason := app.Reason
			if reason == "" {
				reason = "-"
			}
			name := "  " + app.Name
			if app.Sideloaded {
				name += " (sideloaded)"
			}
			row(w, name, dash(app.Version), app.State, reason)
		}
	})
}

func (a *app) devicesShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show ID",
		Short:   "Show one device: state, sync, groups, labels, apps",
		Example: "  edgewarden devices show press-01\n  edgewarden devices show press-01 -o json",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			d, err := cl.GetDevice(cmd.Context(), argv[0])
			if err != nil {
				return fmt.Errorf("show device %s: %w", argv[0], err)
			}
			return a.printDevice(d)
		},
	}
}

func (a *app) devicesApproveCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "approve ID",
		Short:   "Approve a device enrolled with an approval token",
		Example: "  edgewarden devices approve press-01",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			d, err := cl.ApproveDevice(cmd.Context(), argv[0])
			if err != nil {
				return fmt.Errorf("approve device %s: %w", argv[0], err)
			}
			return a.emit(d, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "Approved device %s.\n", d.ID)
			})
		},
	}
}

func (a *app) devicesLabelCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "label ID KEY=VALUE.. | KEY-..",
		Short: "Set or remove labels on a device",
		Long: `label sets labels on a device; other labels stay. KEY- (or KEY=) removes a
label. Group selectors see the change at once.`,
		Example: "  edgewarden devices label press-01 site=plant-a line=3\n  edgewarden devices label press-01 line-",
		Args:    args(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			labels, err := parseLabels(argv[1:], true)
			if err != nil {
				return err
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			d, err := cl.SetDeviceLabels(cmd.Context(), argv[0], labels)
			if err != nil {
				return fmt.Errorf("label device %s: %w", argv[0], err)
			}
			return a.emit(d, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "Device %s labels: %s\n", d.ID, labelsString(d.Labels))
			})
		},
	}
}

func (a *app) devicesDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "delete ID",
		Aliases: []string{"rm"},
		Short:   "Delete a device (it must enroll again to come back)",
		Example: "  edgewarden devices delete press-01",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			if err := cl.DeleteDevice(cmd.Context(), argv[0]); err != nil {
				return fmt.Errorf("delete device %s: %w", argv[0], err)
			}
			return a.emit(map[string]any{"id": argv[0], "deleted": true}, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "Deleted device %s.\n", argv[0])
			})
		},
	}
}
