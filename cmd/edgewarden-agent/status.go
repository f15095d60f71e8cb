package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgewarden/edgewarden/agent"
	"github.com/edgewarden/edgewarden/agent/config"
)

func newStatusCmd() *cobra.Command {
	var stateDir, configPath, output string
	cmd := &cobra.Command{
		Use:   "status --state DIR [-o json]",
		Short: "Print the local view: identity, document in force, outbox, apps",
		Args:  cobra.NoArgs,
		RunE: work(func(cmd *cobra.Command, _ []string) error {
			if stateDir == "" {
				return usage{"status needs --state"}
			}
			if output != "" && output != "json" && output != "table" {
				return usage{fmt.Sprintf("-o %q: want json or table", output)}
			}
			cfg, err := config.Load(configPath)
			if err != nil {
				return err
			}
			st, err := agent.Status(cmd.Context(), agent.StatusOptions{StateDir: stateDir, Socket: cfg.Socket, AppsDir: cfg.AppsDir})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
			row("device", st.DeviceID)
			row("broker", st.MQTTURL)
			if st.AppliedRevision == 0 {
				row("applied revision", "none (local access denied)")
			} else {
				exp := st.PolicyExpiresAt.Format(time.RFC3339)
				if st.PolicyExpired {
					exp += " (expired)"
				}
				row("applied revision", st.AppliedRevision)
				row("policy expires", exp)
			}
			if r := st.LastRejected; r != nil {
				row("last rejected", fmt.Sprintf("revision %d at %s: %s (%s)", r.Revision, r.At.Format(time.RFC3339), r.Reason, r.Message))
			}
			row("pending events", st.PendingEvents)
			if d := st.DiskFull; d != nil {
				row("disk", fmt.Sprintf("FULL: %s has %d bytes free; nothing can be stored until space is freed (apps keep running)", d.Path, d.FreeBytes))
			}
			row("socket", st.Socket)
			row("apps dir", st.AppsDir)
			if len(st.Apps) == 0 {
				row("apps", "none")
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(st.Apps) > 0 {
				tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "\nAPP\tVERSION\tSTATE\tREASON")
				for _, a := range st.Apps {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Name, a.Version, a.State, a.Reason)
				}
				return tw.Flush()
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&stateDir, "state", "", "enrolled state directory")
	cmd.Flags().StringVar(&configPath, "config", "", "config file (YAML), for socket and apps_dir")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or table")
	return cmd
}
