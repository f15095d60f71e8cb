// Command openapigen writes controller/api/openapi.yaml from the route
// table and the wire types (api.GenerateOpenAPI). It runs from
// `go generate ./controller/api` (or `make openapi`); the controller embeds
// and serves the file it writes, and TestOpenAPIGenerated fails while the
// committed file differs from what it would write.
package main

import (
	"fmt"
	"os"

	"github.com/edgewarden/edgewarden/controller/api"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "openapigen:", err)
		os.Exit(1)
	}
}

// run writes openapi.yaml in the current directory (go generate runs it in
// controller/api).
func run() error {
	root, err := api.ModuleRoot(".")
	if err != nil {
		return err
	}
	doc, err := api.GenerateOpenAPI(api.Routes(), root)
	if err != nil {
		return fmt.Errorf("generate the OpenAPI document: %w", err)
	}
	if err := os.WriteFile("openapi.yaml", doc, 0o644); err != nil {
		return fmt.Errorf("write openapi.yaml: %w (run it from controller/api: go generate ./controller/api)", err)
	}
	return nil
}
