package api

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/protocol/access"
)

// The parts of an OpenAPI document the tests read.
type oaDoc struct {
	OpenAPI    string                          `yaml:"openapi"`
	Security   []map[string][]string           `yaml:"security"`
	Paths      map[string]map[string]yaml.Node `yaml:"paths"`
	Components struct {
		Schemas         map[string]*oaSchema    `yaml:"schemas"`
		Parameters      map[string]oaParameter  `yaml:"parameters"`
		Responses       map[string]oaResponse   `yaml:"responses"`
		SecuritySchemes map[string]oaSecurityDf `yaml:"securitySchemes"`
	} `yaml:"components"`
}

type oaSecurityDf struct {
	Type string `yaml:"type"`
}

type oaOperation struct {
	OperationID string                 `yaml:"operationId"`
	Summary     string                 `yaml:"summary"`
	Security    *[]map[string][]string `yaml:"security"`
	Parameters  []oaParameter          `yaml:"parameters"`
	RequestBody *struct {
		Content map[string]struct {
			Schema *oaSchema `yaml:"schema"`
		} `yaml:"content"`
	} `yaml:"requestBody"`
	Responses map[string]oaResponse `yaml:"responses"`
}

type oaParameter struct {
	Ref      string `yaml:"$ref"`
	Name     string `yaml:"name"`
	In       string `yaml:"in"`
	Required bool   `yaml:"required"`
}

type oaResponse struct {
	Ref         string `yaml:"$ref"`
	Description string `yaml:"description"`
	Content     map[string]struct {
		Schema *oaSchema `yaml:"schema"`
	} `yaml:"content"`
}

type oaSchema struct {
	Ref                  string               `yaml:"$ref"`
	Type                 oaTypes              `yaml:"type"`
	Format               string               `yaml:"format"`
	Properties           map[string]*oaSchema `yaml:"properties"`
	Required             []string             `yaml:"required"`
	Items                *oaSchema            `yaml:"items"`
	AdditionalProperties *oaSchema            `yaml:"additionalProperties"`
}

// oaTypes is a schema's type: one name, or a list (OpenAPI 3.1).
type oaTypes []string

func (t *oaTypes) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*t = oaTypes{n.Value}
		return nil
	}
	var list []string
	err := n.Decode(&list)
	*t = list
	return err
}

// is reports whether the type is name, optionally with "null".
func (t oaTypes) is(name string, nullable bool) bool {
	want := []string{name}
	if nullable {
		want = append(want, "null")
	}
	return slices.Equal(slices.Sorted(slices.Values(t)), slices.Sorted(slices.Values(want)))
}

var methods = []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}

// operations decodes doc's operations, keyed "METHOD /path".
func (d *oaDoc) operations(t *testing.T) map[string]oaOperation {
	t.Helper()
	out := map[string]oaOperation{}
	for path, item := range d.Paths {
		for key, node := range item {
			if !slices.Contains(methods, key) {
				t.Errorf("openapi.yaml: path %s: key %q: write parameters and the rest on the operations, not on the path", path, key)
				continue
			}
			var op oaOperation
			if err := node.Decode(&op); err != nil {
				t.Fatalf("openapi.yaml: %s %s: %v", key, path, err)
			}
			out[strings.ToUpper(key)+" "+path] = op
		}
	}
	return out
}

func loadDoc(t *testing.T, data []byte) *oaDoc {
	t.Helper()
	var d oaDoc
	if err := yaml.Unmarshal(data, &d); err != nil {
		t.Fatalf("openapi document does not parse: %v", err)
	}
	if !strings.HasPrefix(d.OpenAPI, "3.") {
		t.Fatalf("openapi: %q, want 3.x", d.OpenAPI)
	}
	return &d
}

var wildcard = regexp.MustCompile(`\{([^}.$]+)(\.\.\.)?\}`)

// realRoutes returns the routes the API registers, keyed as operations
// are ("METHOD /path/{param}").
func realRoutes(t *testing.T) map[string]Auth {
	t.Helper()
	a := New(Options{})
	out := map[string]Auth{}
	for _, r := range a.table {
		method, path, ok := strings.Cut(r.Pattern(), " ")
		if !ok || method == "" {
			t.Errorf("route %q has no method; every route must name one", r.Pattern())
			continue
		}
		path = strings.TrimSuffix(wildcard.ReplaceAllString(path, "{$1}"), "{$}")
		key := method + " " + path
		if _, dup := out[key]; dup {
			t.Errorf("route %s registered twice", key)
		}
		out[key] = r.Auth
	}
	if len(out) < 50 {
		t.Fatalf("only %d routes registered; the route list is broken", len(out))
	}
	return out
}

// TestOpenAPIOperations checks each operation on its own: an id, a
// summary, a success response, error responses with the Error body, path
// parameters that match the path, and references that resolve.
func TestOpenAPIOperations(t *testing.T) {
	doc := loadDoc(t, openapiYAML)
	ids := map[string]string{}
	for key, op := range doc.operations(t) {
		if op.OperationID == "" || op.Summary == "" {
			t.Errorf("%s: needs an operationId and a summary", key)
		}
		if other, dup := ids[op.OperationID]; dup {
			t.Errorf("%s and %s share operationId %q", key, other, op.OperationID)
		}
		ids[op.OperationID] = key

		_, path, _ := strings.Cut(key, " ")
		var inPath []string
		for _, m := range wildcard.FindAllStringSubmatch(path, -1) {
			inPath = append(inPath, m[1])
		}
		var declared []string
		for _, p := range op.Parameters {
			if ref := p.Ref; ref != "" {
				var ok bool
				if p, ok = doc.Components.Parameters[strings.TrimPrefix(ref, "#/components/parameters/")]; !ok {
					t.Errorf("%s: parameter %s does not resolve", key, ref)
					continue
				}
			}
			if p.In == "path" {
				if !p.Required {
					t.Errorf("%s: path parameter %s must be required", key, p.Name)
				}
				declared = append(declared, p.Name)
			}
		}
		slices.Sort(inPath)
		slices.Sort(declared)
		if !slices.Equal(inPath, declared) {
			t.Errorf("%s: path parameters %v, declared %v", key, inPath, declared)
		}

		success := false
		for code, resp := range op.Responses {
			if ref := resp.Ref; ref != "" {
				var ok bool
				if resp, ok = doc.Components.Responses[strings.TrimPrefix(ref, "#/components/responses/")]; !ok {
					t.Errorf("%s %s: response %s does not resolve", key, code, ref)
					continue
				}
			}
			if resp.Description == "" {
				t.Errorf("%s %s: response needs a description", key, code)
			}
			if strings.HasPrefix(code, "2") {
				success = true
			}
			if code[0] == '4' || code[0] == '5' || code == "default" {
				body, ok := resp.Content["application/json"]
				if code != "416" && (!ok || body.Schema == nil || body.Schema.Ref != "#/components/schemas/"+reflect.TypeFor[apiv1.Error]().Name()) {
					t.Errorf("%s %s: an error response must have the Error body", key, code)
				}
			}
			for ct, c := range resp.Content {
				checkRefs(t, doc, key+" "+code+" "+ct, c.Schema)
			}
		}
		if !success {
			t.Errorf("%s: no 2xx response", key)
		}
		if op.RequestBody != nil {
			for ct, c := range op.RequestBody.Content {
				checkRefs(t, doc, key+" request "+ct, c.Schema)
			}
		}
	}
}

// checkRefs fails for a schema reference that does not resolve.
func checkRefs(t *testing.T, doc *oaDoc, where string, s *oaSchema) {
	t.Helper()
	if s == nil {
		return
	}
	if s.Ref != "" {
		if _, ok := doc.Components.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")]; !ok {
			t.Errorf("%s: schema %s does not resolve", where, s.Ref)
		}
	}
	for _, p := range s.Properties {
		checkRefs(t, doc, where, p)
	}
	checkRefs(t, doc, where, s.Items)
	checkRefs(t, doc, where, s.AdditionalProperties)
}

// TestOpenAPIGenerated holds the committed openapi.yaml (which the
// controller embeds and serves) to what the generator makes from the route
// table and the wire types now: a route or a field added, renamed or
// retyped without `go generate ./controller/api` fails here.
func TestOpenAPIGenerated(t *testing.T) {
	want := generate(t, Routes())
	if !bytes.Equal(openapiYAML, want) {
		got, wantLines := strings.Split(string(openapiYAML), "\n"), strings.Split(string(want), "\n")
		line := 0
		for line < len(got) && line < len(wantLines) && got[line] == wantLines[line] {
			line++
		}
		t.Fatalf("controller/api/openapi.yaml is out of date (first difference at line %d); run `go generate ./controller/api` (or `make openapi`) and commit it", line+1)
	}
}

// generate runs the generator on routes, from this package's directory.
func generate(t *testing.T, routes []Route) []byte {
	t.Helper()
	root, err := ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := GenerateOpenAPI(routes, root)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	return doc
}

// TestOpenAPICoversAPIV1 fails when apiv1 gains a struct type that the
// document does not describe: a wire type no route carries is either dead
// or belongs in alsoDocumented.
func TestOpenAPICoversAPIV1(t *testing.T) {
	files, err := filepath.Glob("../apiv1/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("list ../apiv1: %v (%d files)", err, len(files))
	}
	doc := loadDoc(t, openapiYAML)
	mapped := map[string]bool{}
	for name := range doc.Components.Schemas {
		mapped[name] = true
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range file.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				if _, isStruct := ts.Type.(*ast.StructType); isStruct && ts.Name.IsExported() && !mapped[ts.Name.Name] {
					t.Errorf("apiv1.%s (%s) has no schema in openapi.yaml: no route carries it; use it in a route, add it to alsoDocumented, or remove it", ts.Name.Name, filepath.Base(f))
				}
			}
		}
	}
}

// TestOpenAPIServed gets the document from the API's handler, without a
// session, as YAML and as JSON, and checks both list the registered
// routes.
func TestOpenAPIServed(t *testing.T) {
	h := New(Options{}).Handler()
	routes := realRoutes(t)
	for _, tc := range []struct {
		path, contentType string
		parse             func([]byte) (*oaDoc, error)
	}{
		{"/api/v1/openapi.yaml", "application/yaml", func(b []byte) (*oaDoc, error) {
			var d oaDoc
			return &d, yaml.Unmarshal(b, &d)
		}},
		{"/api/v1/openapi.json", "application/json", func(b []byte) (*oaDoc, error) {
			// JSON is YAML, but decode it as JSON to prove it is JSON.
			var raw map[string]any
			if err := json.Unmarshal(b, &raw); err != nil {
				return nil, err
			}
			var d oaDoc
			return &d, yaml.Unmarshal(b, &d)
		}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s: %d %s", tc.path, rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != tc.contentType {
				t.Errorf("Content-Type %q, want %q", ct, tc.contentType)
			}
			if tc.contentType == "application/yaml" && !slices.Equal(rec.Body.Bytes(), OpenAPI()) {
				t.Errorf("GET %s serves other bytes than OpenAPI()", tc.path)
			}
			d, err := tc.parse(rec.Body.Bytes())
			if err != nil {
				t.Fatalf("the served document does not parse: %v", err)
			}
			if !strings.HasPrefix(d.OpenAPI, "3.") {
				t.Errorf("openapi %q, want 3.x", d.OpenAPI)
			}
			ops := d.operations(t)
			if len(ops) != len(routes) {
				t.Errorf("served document has %d operations, the API %d routes", len(ops), len(routes))
			}
			for key := range routes {
				if _, ok := ops[key]; !ok {
					t.Errorf("served document lacks %s", key)
				}
			}
		})
	}

	// Only GET is served (other methods answer 405), and the rest of the
	// API still needs a session.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/api/v1/openapi.yaml", strings.NewReader("x")))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("PUT /api/v1/openapi.yaml: %d, want 405", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/devices", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/devices without a session: %d, want 401", rec.Code)
	}
}

// TestOpenAPIGeneratorFollowsTheCode adds a route with a body type of its
// own to the table and checks the generator describes both as the code
// says, with nothing written by hand: the path and its parameter, the
// permission, the fields encoding/json writes (renamed, flattened from an
// embedded struct, optional with omitempty, null for a bare pointer) and
// the constraints of the openapi tag.
func TestOpenAPIGeneratorFollowsTheCode(t *testing.T) {
	type inner struct {
		Depth int `json:"depth"`
	}
	type widget struct {
		inner
		Name    string            `json:"widget_name" openapi:"maxLength=64"`
		Color   string            `json:"color,omitempty" openapi:"enum=red|green"`
		Parts   []apiv1.Device    `json:"parts"`
		Tags    map[string]string `json:"tags,omitempty"`
		Expires *time.Time        `json:"expires"`
		Hint    string            `json:"hint" openapi:"optional"`
	}
	routes := append(Routes(), Route{
		Method: "POST", Path: "/api/v1/widgets/{wid}", Op: "makeWidget", Tag: "widgets",
		Summary: "Make a widget", Request: reflect.TypeFor[widget](), Response: reflect.TypeFor[widget](),
		Status: 201, Result: "Made.", Errors: []int{400, 403},
		Action: access.DeviceManage, Param: "wid",
	})
	doc := loadDoc(t, generate(t, routes))
	ops := doc.operations(t)
	op, ok := ops["POST /api/v1/widgets/{wid}"]
	if !ok {
		t.Fatalf("the added route is not in the generated document")
	}
	if op.OperationID != "makeWidget" || len(op.Parameters) != 1 || op.Parameters[0].Name != "wid" || op.Parameters[0].In != "path" || !op.Parameters[0].Required {
		t.Errorf("operation: id %q, parameters %+v; want makeWidget with the required path parameter wid", op.OperationID, op.Parameters)
	}
	for _, code := range []string{"201", "400", "403", "default"} {
		if _, ok := op.Responses[code]; !ok {
			t.Errorf("response %s missing: %v", code, op.Responses)
		}
	}
	if ref := op.RequestBody.Content["application/json"].Schema.Ref; ref != "#/components/schemas/widget" {
		t.Errorf("request body refers to %q, want the widget schema", ref)
	}
	w := doc.Components.Schemas["widget"]
	if w == nil {
		t.Fatal("no widget schema")
	}
	var names []string
	for name := range w.Properties {
		names = append(names, name)
	}
	slices.Sort(names)
	if want := []string{"color", "depth", "expires", "hint", "parts", "tags", "widget_name"}; !slices.Equal(names, want) {
		t.Errorf("widget properties %v, want %v", names, want)
	}
	if want := []string{"depth", "widget_name", "parts", "expires"}; !slices.Equal(slices.Sorted(slices.Values(w.Required)), slices.Sorted(slices.Values(want))) {
		t.Errorf("widget required %v, want %v (fields without omitempty, less the optional tag)", w.Required, want)
	}
	if p := w.Properties["parts"]; !p.Type.is("array", false) || p.Items == nil || p.Items.Ref != "#/components/schemas/Device" {
		t.Errorf("parts: %+v, want an array of Device references", p)
	}
	if p := w.Properties["expires"]; !p.Type.is("string", true) || p.Format != "date-time" {
		t.Errorf("expires: type %v format %q, want [string, null] date-time", p.Type, p.Format)
	}
	if p := w.Properties["tags"]; !p.Type.is("object", false) || p.AdditionalProperties == nil {
		t.Errorf("tags: %+v, want an object with additionalProperties", p)
	}
	raw := string(generate(t, routes))
	for _, want := range []string{"maxLength: 64", "- red\n", "x-permission: device:manage on the device {wid}"} {
		if !strings.Contains(raw, want) {
			t.Errorf("generated document lacks %q", want)
		}
	}
}

// TestOpenAPIGeneratorRefuses: what the generator cannot describe is an
// error that names the field, not a silently wrong document.
func TestOpenAPIGeneratorRefuses(t *testing.T) {
	root, err := ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	type withChan struct {
		C chan int `json:"c"`
	}
	type badTag struct {
		N int `json:"n" openapi:"minimum=low"`
	}
	type unknownTag struct {
		N int `json:"n" openapi:"colour=red"`
	}
	type intKeys struct {
		M map[int]string `json:"m"`
	}
	type pair struct {
		B struct {
			T any `json:"t"`
		} `json:"b"`
	}
	for _, tc := range []struct {
		typ  reflect.Type
		want string
	}{
		{reflect.TypeFor[withChan](), "withChan.c: Go type chan int has no OpenAPI mapping"},
		{reflect.TypeFor[badTag](), "minimum needs a whole number"},
		{reflect.TypeFor[unknownTag](), `unknown key "colour"`},
		{reflect.TypeFor[intKeys](), "map key type int is not a string"},
		{reflect.TypeFor[pair](), "pair.b.t: Go type interface {} has no OpenAPI mapping"},
	} {
		routes := []Route{{Method: "POST", Path: "/x", Op: "x", Tag: "x", Summary: "x", Status: 200, Result: "x", Request: tc.typ}}
		_, err := GenerateOpenAPI(routes, root)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.typ, err, tc.want)
		}
	}
	// A route without what the document needs is refused too.
	_, err = GenerateOpenAPI([]Route{{Method: "GET", Path: "/y", Status: 200}}, root)
	if err == nil || !strings.Contains(err.Error(), "needs Op, Tag, Summary and Status") {
		t.Errorf("a route without an operation id: %v", err)
	}
}
