package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/spf13/cobra"
)

func (a *app) publishersCmd() *cobra.Command {
	return group("publishers", "Manage trusted app publishers and their signing keys",
		"  edgewarden publishers add acme --key cosign.pub\n  edgewarden publishers ls\n  edgewarden publishers remove acme --key sha256:3f2a9c01",
		a.publishersAddCmd(), a.publishersListCmd(), a.publishersRemoveCmd())
}

// shortKeyID abbreviates a key id for tables.
func shortKeyID(id string) string {
	if len(id) > len("sha256:")+12 {
		return id[:len("sha256:")+12]
	}
	return id
}

func trustedKeys(p apiv1.Publisher) []apiv1.PublisherKey {
	var out []apiv1.PublisherKey
	for _, k := range p.Keys {
		if k.State == apiv1.Trusted {
			out = append(out, k)
		}
	}
	return out
}

func (a *app) publishersAddCmd() *cobra.Command {
	var keyFile string
	c := &cobra.Command{
		Use:   "add NAME --key FILE",
		Short: "Trust a publisher's public key (several keys per publisher, for rotation)",
		Long: `add trusts the PEM public key in FILE (the cosign.pub that 'cosign
generate-key-pair' writes) for publisher NAME, creating the publisher if
needed. App versions are stored only if their manifest signature verifies
against a trusted key of the publisher the manifest names.`,
		Example: "  edgewarden publishers add acme --key cosign.pub",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if keyFile == "" {
				return usagef("--key FILE is required: the publisher's PEM public key (cosign.pub)")
			}
			raw, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("read publisher key: %w", err)
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			p, err := cl.AddPublisherKey(cmd.Context(), argv[0], string(raw))
			if err != nil {
				return fmt.Errorf("add key of publisher %s: %w", argv[0], err)
			}
			return a.emit(p, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "Publisher %s now trusts %d key(s).\n", p.Name, len(trustedKeys(*p)))
			})
		},
	}
	c.Flags().StringVar(&keyFile, "key", "", "PEM public key file (cosign.pub)")
	return c
}

func (a *app) publishersListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List publishers and their keys",
		Example: "  edgewarden publishers ls\n  edgewarden publishers ls -o json",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			ps, err := cl.ListPublishers(cmd.Context())
			if err != nil {
				return fmt.Errorf("list publishers: %w", err)
			}
			return a.emit(ps, func(w *tabwriter.Writer) {
				row(w, "NAME", "STATE", "TRUSTED KEYS", "KEY IDS")
				for _, p := range ps {
					var ids []string
					for _, k := range trustedKeys(p) {
						ids = append(ids, shortKeyID(k.ID))
					}
					row(w, p.Name, p.State, len(ids), listString(ids))
				}
			})
		},
	}
}

func (a *app) publishersRemoveCmd() *cobra.Command {
	var key string
	c := &cobra.Command{
		Use:     "remove NAME [--key KEYID]",
		Aliases: []string{"rm"},
		Short:   "Stop trusting a publisher, or one of its keys",
		Long: `remove stops trusting publisher NAME and all its keys, or with --key only
that key (its id as 'publishers ls -o json' shows it, or a unique prefix of
at least 8 hex digits). Apps that no trusted key verifies are no longer
installed; devices keep running what they run and flag it.`,
		Example: "  edgewarden publishers remove acme\n  edgewarden publishers remove acme --key sha256:3f2a9c01",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			if key != "" {
				if err := cl.RemovePublisherKey(cmd.Context(), argv[0], key); err != nil {
					return fmt.Errorf("remove key %s of publisher %s: %w", key, argv[0], err)
				}
				// DELETE answers 204: read what the publisher has now.
				p, err := publisherNamed(cmd.Context(), cl, argv[0])
				if err != nil {
					return fmt.Errorf("key %s of publisher %s removed; reading the publisher back: %w", key, argv[0], err)
				}
				return a.emit(p, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "Removed key %s; publisher %s trusts %d key(s).\n", strings.TrimSpace(key), p.Name, len(trustedKeys(*p)))
				})
			}
			if err := cl.RemovePublisher(cmd.Context(), argv[0]); err != nil {
				return fmt.Errorf("remove publisher %s: %w", argv[0], err)
			}
			return a.emit(map[string]any{"name": argv[0], "removed": true}, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "Publisher %s is no longer trusted.\n", argv[0])
			})
		},
	}
	c.Flags().StringVar(&key, "key", "", "remove only this key (id or unique prefix)")
	return c
}

// publisherNamed reads one publisher from the list.
func publisherNamed(ctx context.Context, cl *client.Client, name string) (*apiv1.Publisher, error) {
	ps, err := cl.ListPublishers(ctx)
	if err != nil {
		return nil, err
	}
	for i := range ps {
		if ps[i].Name == name {
			return &ps[i], nil
		}
	}
	return nil, fmt.Errorf("publisher %s is not listed; see `edgewarden publishers ls`", name)
}
