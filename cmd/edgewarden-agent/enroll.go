package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/edgewarden/edgewarden/agent/enroll"
)

func newEnrollCmd() *cobra.Command {
	var opts enroll.Options
	var labels []string
	cmd := &cobra.Command{
		Use:   "enroll --controller URL --token T --ca-fingerprint sha256:HEX --state DIR [--label k=v]... [--device-id ID]",
		Short: "Create the device key, enroll with the controller and store the trust it returns",
		Args:  cobra.NoArgs,
		RunE: work(func(cmd *cobra.Command, _ []string) error {
			for _, f := range []struct{ name, val string }{
				{"controller", opts.ControllerURL}, {"token", opts.Token},
				{"ca-fingerprint", opts.CAFingerprint}, {"state", opts.StateDir},
			} {
				if f.val == "" {
					return usage{fmt.Sprintf("enroll needs --%s", f.name)}
				}
			}
			if len(labels) > 0 {
				opts.Labels = make(map[string]string, len(labels))
				for _, l := range labels {
					k, v, ok := strings.Cut(l, "=")
					if !ok || k == "" {
						return usage{fmt.Sprintf("--label %q: want key=value", l)}
					}
					opts.Labels[k] = v
				}
			}
			res, err := enroll.Enroll(cmd.Context(), opts)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "enrolled as %s; state in %s\n", res.DeviceID, opts.StateDir)
			if res.PendingApproval {
				fmt.Fprintf(out, "waiting for approval: an admin must run `edgewarden devices approve %s`\n", res.DeviceID)
			}
			fmt.Fprintf(out, "start the service with: edgewarden-agent run --state %s\n", opts.StateDir)
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&opts.ControllerURL, "controller", "", "controller REST URL, e.g. https://controller:8443")
	f.StringVar(&opts.Token, "token", "", "enrollment token")
	f.StringVar(&opts.CAFingerprint, "ca-fingerprint", "", "controller CA fingerprint, sha256:HEX (edgewarden-controller ca-fingerprint)")
	f.StringVar(&opts.StateDir, "state", "", "state directory to create (e.g. /var/lib/edgewarden)")
	f.StringVar(&opts.DeviceID, "device-id", "", "device id to request (default: host name plus a suffix from /etc/machine-id; the host name goes in the hostname label)")
	f.StringArrayVar(&labels, "label", nil, "label k=v to request (repeatable)")
	return cmd
}
