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

// routeAuth is how a route authenticates its caller.
type routeAuth int

const (
	authNone    routeAuth = iota // public: login, banner, enroll, activation, this document
	authSession                  // "Authorization: Bearer <session token>"
	authDevice                   // the device's client certificate (mutual TLS)
)

// route is one registered endpoint.
type route struct {
	pattern string // as http.ServeMux reads it: "METHOD /path/{param}"
	auth    routeAuth
}

// handle registers h at pattern and records the route, so that the set of
// real routes can be listed (and checked against openapi.yaml). Only
// authSession routes are authenticated by serve; authDevice handlers check
// the client certificate themselves.
func (a *API) handle(pattern string, auth routeAuth, h handlerFunc) {
	a.registered = append(a.registered, route{pattern: pattern, auth: auth})
	a.mux.Handle(pattern, a.serve(h, auth == authSession))
}

func (a *API) openapiRoutes() {
	a.handle("GET /api/v1/openapi.yaml", authNone, a.serveOpenAPIYAML)
	a.handle("GET /api/v1/openapi.json", authNone, a.serveOpenAPIJSON)
}

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
