package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
)

// sideloadCmd is `settings sideload allow|deny [--group G]` and
// `settings sideload inherit --group G`.
func (a *app) sideloadCmd() *cobra.Command {
	set := func(policy string) *cobra.Command {
		var grp string
		c := a.simple(policy+" [--group G]", policy+" sideloading on every device (controller:settings), or on a device group's devices (--group, device:sideload on it)",
			"  edgewarden settings sideload "+policy+"\n  edgewarden settings sideload "+policy+" --group line-1", cobra.NoArgs,
			func(cmd *cobra.Command, cl *client.Client, _ []string) error {
				if cmd.Flags().Changed("group") && grp == "" {
					return usagef("--group needs a device group name")
				}
				var s *apiv1.Settings
				var err error
				if grp == "" {
					s, err = cl.SetSideload(cmd.Context(), policy)
				} else {
					s, err = cl.SetGroupSideload(cmd.Context(), grp, policy)
				}
				if err != nil {
					return fmt.Errorf("set sideload policy: %w", err)
				}
				return a.printSettings(s)
			})
		c.Flags().StringVar(&grp, "group", "", "override the global policy for this device group only")
		return c
	}
	var grp string
	inherit := a.simple("inherit --group G", "Remove a device group's override: its devices follow the global policy again (device:sideload on the group)",
		"  edgewarden settings sideload inherit --group line-1", cobra.NoArgs,
		func(cmd *cobra.Command, cl *client.Client, _ []string) error {
			if grp == "" {
				return usagef("inherit needs --group G (the global policy is always allow or deny)")
			}
			if err := cl.DeleteGroupSideload(cmd.Context(), grp); err != nil {
				return fmt.Errorf("remove sideload override of %s: %w", grp, err)
			}
			s, err := cl.Settings(cmd.Context()) // DELETE answers 204: read the policy back
			if err != nil {
				return fmt.Errorf("sideload override of %s removed; reading the settings back: %w", grp, err)
			}
			return a.printSettings(s)
		})
	inherit.Flags().StringVar(&grp, "group", "", "the device group")
	c := group("sideload", "The sideload policy: global (default deny) and per device group",
		"  edgewarden settings sideload deny\n  edgewarden settings sideload allow --group line-1\n  edgewarden settings sideload inherit --group line-1",
		set("deny"), set("allow"), inherit)
	c.Long = `A device follows the global sideload policy unless one of its device groups
(directly, by label selector or through an included group) has an override;
when its groups' overrides disagree, deny wins. Every change is audited and
reaches the devices in their next signed documents.`
	return c
}

// printSettings prints the settings: the global sideload policy, every
// group override, and the banner.
func (a *app) printSettings(s *apiv1.Settings) error {
	if s.SideloadOverrides == nil {
		s.SideloadOverrides = []apiv1.SideloadOverride{}
	}
	return a.emit(s, func(w *tabwriter.Writer) {
		row(w, "Sideload:", s.Sideload+" (global)")
		for _, o := range s.SideloadOverrides {
			row(w, "", fmt.Sprintf("%s for group %s (set by %s, %s)", o.Policy, o.Group, o.SetBy, timeString(o.SetAt)))
		}
		row(w, "Banner:", dash(s.Banner))
	})
}

// auditRecords reads the audit log and, for kind "" or "security", the
// devices' security events, merged newest first, at most limit (0: 1000).
func auditRecords(ctx context.Context, cl *client.Client, since time.Time, kind string, limit int) ([]apiv1.AuditRecord, error) {
	es, err := cl.ListAudit(ctx, client.AuditFilter{Kind: kind, Since: since, Limit: limit})
	if err != nil {
		return nil, fmt.Errorf("list audit log: %w", err)
	}
	out := make([]apiv1.AuditRecord, 0, len(es))
	for _, e := range es {
		out = append(out, apiv1.RecordOfAudit(e))
	}
	if kind == "" || kind == apiv1.SeveritySecurity {
		evs, err := cl.ListEvents(ctx, client.EventFilter{Severity: apiv1.SeveritySecurity, Since: since, Limit: limit})
		if err != nil {
			return nil, fmt.Errorf("list device security events: %w", err)
		}
		for _, e := range evs {
			out = append(out, apiv1.RecordOfEvent(e))
		}
	}
	slices.SortStableFunc(out, func(x, y apiv1.AuditRecord) int { return y.At.Compare(x.At) })
	if n := cmp.Or(limit, 1000); len(out) > n {
		out = out[:n]
	}
	return out, nil
}

// auditFlags are the filters of `audit ls` and `audit export`.
type auditFlags struct {
	since time.Duration
	kind  string
	limit int
}

func (f *auditFlags) register(c *cobra.Command) {
	c.Flags().DurationVar(&f.since, "since", 0, "only entries of the last D (e.g. 24h)")
	c.Flags().StringVar(&f.kind, "kind", "", "only entries of kind change, security or access (security includes the devices' security events)")
	c.Flags().IntVar(&f.limit, "limit", 0, "at most N entries of each origin (default and maximum 1000)")
}

func (f *auditFlags) sinceTime() (time.Time, error) {
	if f.since < 0 {
		return time.Time{}, usagef("--since must be positive, e.g. 24h")
	}
	if f.since == 0 {
		return time.Time{}, nil
	}
	return time.Now().Add(-f.since), nil
}

func (a *app) auditCmd() *cobra.Command {
	var lf, ef auditFlags
	ls := a.simple("ls [--since D] [--kind K]", "List audit entries and the devices' security events, newest first",
		"  edgewarden audit ls --since 24h --kind security", cobra.NoArgs,
		func(cmd *cobra.Command, cl *client.Client, _ []string) error {
			since, err := lf.sinceTime()
			if err != nil {
				return err
			}
			rs, err := auditRecords(cmd.Context(), cl, since, lf.kind, lf.limit)
			if err != nil {
				return err
			}
			return a.emit(rs, func(w *tabwriter.Writer) {
				row(w, "AT", "KIND", "ACTOR", "ACTION", "TARGET", "DETAIL", "FROM")
				for _, r := range rs {
					from := r.Source
					if r.Origin == apiv1.OriginDevice {
						from = "device " + r.DeviceID
					}
					row(w, timeString(r.At), r.Kind, r.Actor, r.Action, dash(r.Target), dash(oneLine(r.Detail)), dash(from))
				}
			})
		})
	lf.register(ls)
	export := a.simple("export [--since D] [--kind K]", "Print audit entries and security events as JSON lines, oldest first (for a SIEM)",
		"  edgewarden audit export --since 24h --kind security >> siem.jsonl", cobra.NoArgs,
		func(cmd *cobra.Command, cl *client.Client, _ []string) error {
			since, err := ef.sinceTime()
			if err != nil {
				return err
			}
			rs, err := auditRecords(cmd.Context(), cl, since, ef.kind, ef.limit)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(a.stdout)
			for _, r := range slices.Backward(rs) {
				if err := enc.Encode(r); err != nil {
					return err
				}
			}
			return nil
		})
	export.Long = `export prints one JSON object per line (the same fields as 'audit ls -o json'),
oldest first: audit entries and, without --kind or with --kind security, the
security events the devices reported. Each origin is capped at 1000 entries
per run; narrow with --since, or run the controller with --siem-log FILE to
receive every security event as it is stored.`
	ef.register(export)
	return group("audit", "Read and export the audit log and the devices' security events",
		"  edgewarden audit ls --since 1h\n  edgewarden audit ls --kind security\n  edgewarden audit export --since 24h", ls, export)
}

// oneLine keeps a table row on one line.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
