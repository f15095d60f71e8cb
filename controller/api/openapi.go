package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"gopkg.in/yaml.v3"
)

// openapiYAML is the OpenAPI 3.1 description of this API. openapi_test.go
// holds it to the routes registered here and to the apiv1 types, so it
// cannot drift from the code.
//
//go:embed openapi.yaml
var openapiYAML []byte

// openapiJSON is openapiYAML converted to JSON, made on first use.
var openapiJSON = sync.OnceValues(func() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(openapiYAML, &doc); err != nil {
		return nil, fmt.Errorf("parse the embedded openapi.yaml: %w", err)
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("convert the embedded openapi.yaml to JSON: %w", err)
	}
	return append(b, '\n'), nil
})

// OpenAPI returns the OpenAPI 3.1 document (YAML) describing the API, as
// GET /api/v1/openapi.yaml serves it.
func OpenAPI() []byte { return append([]byte(nil), openapiYAML...) }

func (a *API) serveOpenAPIYAML(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(openapiYAML)
	return nil
}

func (a *API) serveOpenAPIJSON(w http.ResponseWriter, r *http.Request) error {
	b, err := openapiJSON()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	return nil
}
