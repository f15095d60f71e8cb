package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/edgewarden/edgewarden/cmd/internal/buildinfo"
	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/spf13/cobra"
)

// versions is what `edgewarden version -o json` prints.
type versions struct {
	Client         string         `json:"client"`
	DocumentSchema int            `json:"document_schema"`
	Controller     *apiv1.Version `json:"controller"`
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the versions of this client and of the controller it is logged in to",
		Long: `version prints this client's version and, when logged in, the controller's: its
build, REST API version and the document schema it writes. Without a session it
prints the client's and fails with the reason.`,
		Example: "  edgewarden version\n  edgewarden version -o json",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := versions{Client: buildinfo.Version(version), DocumentSchema: protocol.Schema}
			cl, err := a.client()
			if err == nil {
				v.Controller, err = cl.Version(cmd.Context())
			}
			if perr := a.emit(v, func(w *tabwriter.Writer) {
				row(w, "Client:", fmt.Sprintf("%s (document schema %d)", v.Client, v.DocumentSchema))
				if v.Controller != nil {
					row(w, "Controller:", fmt.Sprintf("%s (API %s, document schema %d)", v.Controller.Controller, v.Controller.API, v.Controller.DocumentSchema))
				}
			}); perr != nil {
				return perr
			}
			if err != nil {
				return fmt.Errorf("controller version: %w", err)
			}
			return nil
		},
	}
}
