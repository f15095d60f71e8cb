package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/spf13/cobra"
)

func (a *app) enrollTokensCmd() *cobra.Command {
	return group("enroll-tokens", "Create, list and revoke enrollment tokens",
		"  edgewarden enroll-tokens create --groups line-1 --labels site=plant-a --uses 10 --ttl 2h\n  edgewarden enroll-tokens ls",
		a.enrollTokensCreateCmd(), a.enrollTokensListCmd(), a.enrollTokensRevokeCmd())
}

func (a *app) enrollTokensCreateCmd() *cobra.Command {
	var groups, labels []string
	var uses int
	var ttl time.Duration
	var approval bool
	var labelKeys []string
	c := &cobra.Command{
		Use:   "create [--groups G,..] [--labels k=v,..] [--label-keys K,..] [--uses N] [--ttl D] [--approval]",
		Short: "Create an enrollment token and print it",
		Long: `create makes an enrollment token for 'edgewarden-agent enroll' and prints the
secret (only now: the controller keeps only its hash). Devices enrolled with it
join --groups and get --labels. A device may set labels of its own at enrollment
('edgewarden-agent enroll --label k=v') only for the keys --label-keys allows
(default: none), so a stolen token cannot put a device into groups that select
by label; other requested labels are shown on the device as requested, not
applied ('devices label' applies them). With --approval devices wait for
'devices approve'.`,
		Example: `  edgewarden enroll-tokens create
  edgewarden enroll-tokens create --groups line-1,line-2 --labels site=plant-a --uses 50 --ttl 72h --approval
  edgewarden enroll-tokens create --groups line-1 --label-keys arch,model
  edgewarden enroll-tokens create -o json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			lm, err := parseLabels(labels, false)
			if err != nil {
				return err
			}
			if uses < 1 {
				return usagef("--uses must be at least 1")
			}
			if ttl < time.Second || ttl%time.Second != 0 {
				return usagef("--ttl must be a whole number of seconds, at least 1s (e.g. 30m, 24h)")
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			tok, err := cl.CreateEnrollToken(cmd.Context(), apiv1.CreateEnrollTokenRequest{
				Groups: groups, Labels: lm, LabelKeys: labelKeys, Uses: uses, TTLSeconds: int64(ttl / time.Second), Approval: approval,
			})
			if err != nil {
				return fmt.Errorf("create enrollment token: %w", err)
			}
			if a.output == "json" {
				return a.printJSON(tok)
			}
			_, err = fmt.Fprintln(a.stdout, tok.Token)
			return err
		},
	}
	f := c.Flags()
	f.StringSliceVar(&groups, "groups", nil, "groups devices join, comma-separated")
	f.StringSliceVar(&labels, "labels", nil, "labels devices get, k=v comma-separated")
	f.StringSliceVar(&labelKeys, "label-keys", nil, "label keys devices may set for themselves at enrollment, comma-separated (default none)")
	f.IntVar(&uses, "uses", 1, "how many devices may enroll with it")
	f.DurationVar(&ttl, "ttl", 24*time.Hour, "how long it is valid")
	f.BoolVar(&approval, "approval", false, "devices wait for an admin's 'devices approve'")
	return c
}

func tokenState(t apiv1.EnrollToken, now time.Time) string {
	switch {
	case t.Revoked:
		return "revoked"
	case !now.Before(t.ExpiresAt):
		return "expired"
	case t.Used >= t.MaxUses:
		return "used up"
	}
	return "valid"
}

func (a *app) enrollTokensListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List enrollment tokens",
		Example: "  edgewarden enroll-tokens ls\n  edgewarden enroll-tokens ls -o json",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			toks, err := cl.ListEnrollTokens(cmd.Context())
			if err != nil {
				return fmt.Errorf("list enrollment tokens: %w", err)
			}
			now := time.Now()
			return a.emit(toks, func(w *tabwriter.Writer) {
				row(w, "ID", "STATE", "USED", "EXPIRES", "APPROVAL", "GROUPS", "LABELS", "LABEL KEYS", "CREATED BY")
				for _, t := range toks {
					row(w, t.ID, tokenState(t, now), fmt.Sprintf("%d/%d", t.Used, t.MaxUses), timeString(t.ExpiresAt),
						yesNo(t.Approval), listString(t.Groups), labelsString(t.Labels), listString(t.LabelKeys), t.CreatedBy)
				}
			})
		},
	}
}

func (a *app) enrollTokensRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "revoke ID",
		Short:   "Revoke an enrollment token",
		Example: "  edgewarden enroll-tokens revoke et_0123456789abcdef",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			if err := cl.RevokeEnrollToken(cmd.Context(), argv[0]); err != nil {
				return fmt.Errorf("revoke enrollment token %s: %w", argv[0], err)
			}
			return a.emit(map[string]any{"id": argv[0], "revoked": true}, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "Revoked enrollment token %s.\n", argv[0])
			})
		},
	}
}
