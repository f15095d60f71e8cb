package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Summarize the fleet: online, in sync, drifting, failing, pending",
		Long: `status counts devices: online (and lists offline ones with how long each
has been silent; a device silent longer than the controller's presence timeout,
90 s by default, is offline); in sync (applied their latest document and every
assigned app runs, or was stopped, in an assigned version); drifting (document
or apps not there yet); failing (rejected their latest document, or an app
failed: 'devices ls' and 'devices show' say why);
pending (waiting for 'devices approve'); and the security events the devices
reported in the last 24 hours, with the latest few ('audit ls --kind security'
lists them all).`,
		Example: "  edgewarden status\n  edgewarden status -o json",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			st, err := cl.FleetStatus(cmd.Context())
			if err != nil {
				return fmt.Errorf("fleet status: %w", err)
			}
			return a.emit(st, func(w *tabwriter.Writer) {
				row(w, "Devices:", st.Devices)
				row(w, "Online:", fmt.Sprintf("%d (offline %d)", st.Online, st.Devices-st.Online))
				for _, o := range st.Offline {
					row(w, "", fmt.Sprintf("%s  offline, silent %s", o.Device, silentString(o.SilentSeconds)))
				}
				row(w, "In sync:", st.InSync)
				row(w, "Drifting:", st.Drifting)
				row(w, "Failing:", st.Failing)
				row(w, "Pending approval:", st.Pending)
				row(w, "Security events (24h):", st.SecurityEvents24h)
				for _, e := range st.RecentSecurityEvents {
					row(w, "", fmt.Sprintf("%s  %s  %s: %s", timeString(e.At), e.DeviceID, e.Kind, oneLine(e.Message)))
				}
			})
		},
	}
}
