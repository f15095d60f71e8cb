package api

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/access"
)

// schemaTypes maps every component schema of openapi.yaml to the Go type
// whose JSON encoding it describes. Output types are sent by the
// controller: their required list must be exactly the fields encoded
// without omitempty/omitzero (the ones always present).
var schemaTypes = map[string]struct {
	typ    reflect.Type
	output bool
}{
	"Error":                    {reflect.TypeFor[apiv1.Error](), true},
	"LoginRequest":             {reflect.TypeFor[apiv1.LoginRequest](), false},
	"LoginResponse":            {reflect.TypeFor[apiv1.LoginResponse](), true},
	"Banner":                   {reflect.TypeFor[apiv1.Banner](), true},
	"EnrollRequest":            {reflect.TypeFor[apiv1.EnrollRequest](), false},
	"EnrollResponse":           {reflect.TypeFor[apiv1.EnrollResponse](), true},
	"PublicKey":                {reflect.TypeFor[protocol.PublicKey](), true},
	"CreateEnrollTokenRequest": {reflect.TypeFor[apiv1.CreateEnrollTokenRequest](), false},
	"EnrollToken":              {reflect.TypeFor[apiv1.EnrollToken](), true},
	"Device":                   {reflect.TypeFor[apiv1.Device](), true},
	"AppStatus":                {reflect.TypeFor[protocol.AppStatus](), true},
	"Rejection":                {reflect.TypeFor[protocol.Rejection](), true},
	"SetLabelsRequest":         {reflect.TypeFor[apiv1.SetLabelsRequest](), false},
	"FleetStatus":              {reflect.TypeFor[apiv1.FleetStatus](), true},
	"DeviceSilence":            {reflect.TypeFor[apiv1.DeviceSilence](), true},
	"Version":                  {reflect.TypeFor[apiv1.Version](), true},
	"CreateGroupRequest":       {reflect.TypeFor[apiv1.CreateGroupRequest](), false},
	"Group":                    {reflect.TypeFor[apiv1.Group](), true},
	"DevicesRequest":           {reflect.TypeFor[apiv1.DevicesRequest](), false},
	"IncludeRequest":           {reflect.TypeFor[apiv1.IncludeRequest](), false},
	"User":                     {reflect.TypeFor[apiv1.User](), true},
	"InviteRequest":            {reflect.TypeFor[apiv1.InviteRequest](), false},
	"Invitation":               {reflect.TypeFor[apiv1.Invitation](), true},
	"ActivateRequest":          {reflect.TypeFor[apiv1.ActivateRequest](), false},
	"Team":                     {reflect.TypeFor[apiv1.Team](), true},
	"CreateTeamRequest":        {reflect.TypeFor[apiv1.CreateTeamRequest](), false},
	"TeamMembersRequest":       {reflect.TypeFor[apiv1.TeamMembersRequest](), false},
	"ActionInfo":               {reflect.TypeFor[access.ActionInfo](), true},
	"Role":                     {reflect.TypeFor[apiv1.Role](), true},
	"RoleRequest":              {reflect.TypeFor[apiv1.RoleRequest](), false},
	"Subject":                  {reflect.TypeFor[access.Subject](), true},
	"Scope":                    {reflect.TypeFor[access.Scope](), true},
	"Grant":                    {reflect.TypeFor[apiv1.Grant](), true},
	"CreateGrantRequest":       {reflect.TypeFor[apiv1.CreateGrantRequest](), false},
	"ShareRequest":             {reflect.TypeFor[apiv1.ShareRequest](), false},
	"AccessCheckRequest":       {reflect.TypeFor[apiv1.AccessCheckRequest](), false},
	"Step":                     {reflect.TypeFor[access.Step](), true},
	"AccessDecision":           {reflect.TypeFor[apiv1.AccessDecision](), true},
	"IssueTokenRequest":        {reflect.TypeFor[apiv1.IssueTokenRequest](), false},
	"OperatorToken":            {reflect.TypeFor[apiv1.OperatorToken](), true},
	"AuditEntry":               {reflect.TypeFor[apiv1.AuditEntry](), true},
	"Settings":                 {reflect.TypeFor[apiv1.Settings](), true},
	"SetBannerRequest":         {reflect.TypeFor[apiv1.SetBannerRequest](), false},
	"SetSideloadRequest":       {reflect.TypeFor[apiv1.SetSideloadRequest](), false},
	"SideloadOverride":         {reflect.TypeFor[apiv1.SideloadOverride](), true},
	"Event":                    {reflect.TypeFor[apiv1.Event](), true},
	"AuditRecord":              {reflect.TypeFor[apiv1.AuditRecord](), true},
	"AddPublisherKeyRequest":   {reflect.TypeFor[apiv1.AddPublisherKeyRequest](), false},
	"Publisher":                {reflect.TypeFor[apiv1.Publisher](), true},
	"PublisherKey":             {reflect.TypeFor[apiv1.PublisherKey](), true},
	"Artifact":                 {reflect.TypeFor[apiv1.Artifact](), true},
	"AppVersion":               {reflect.TypeFor[apiv1.AppVersion](), true},
	"AppAssignment":            {reflect.TypeFor[apiv1.AppAssignment](), true},
	"AppDevice":                {reflect.TypeFor[apiv1.AppDevice](), true},
	"App":                      {reflect.TypeFor[apiv1.App](), true},
	"AppSummary":               {reflect.TypeFor[apiv1.AppSummary](), true},
	"DeviceVerdict":            {reflect.TypeFor[apiv1.DeviceVerdict](), true},
	"CheckResult":              {reflect.TypeFor[apiv1.CheckResult](), true},
	"AssignRequest":            {reflect.TypeFor[apiv1.AssignRequest](), false},
	"AssignResponse":           {reflect.TypeFor[apiv1.AssignResponse](), true},
}

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

// TestOpenAPIRoutes holds openapi.yaml to the routes the API registers:
// every route is documented, with the right authentication, and nothing
// else is.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadDoc(t, openapiYAML)
	ops := doc.operations(t)
	routes := realRoutes(t)

	for key, auth := range routes {
		op, ok := ops[key]
		if !ok {
			t.Errorf("route %s is not in openapi.yaml; document it", key)
			continue
		}
		sec := doc.Security
		if op.Security != nil {
			sec = *op.Security
		}
		var schemes []string
		for _, req := range sec {
			for name := range req {
				schemes = append(schemes, doc.Components.SecuritySchemes[name].Type)
			}
		}
		want := map[Auth][]string{Public: nil, Authorized: {"http"}, Authenticated: {"http"}, Device: {"mutualTLS"}}[auth]
		if !slices.Equal(schemes, want) {
			t.Errorf("%s: openapi.yaml security schemes %v, the route authenticates with %v", key, schemes, want)
		}
	}
	for key := range ops {
		if _, ok := routes[key]; !ok {
			t.Errorf("openapi.yaml documents %s, which is not a route of the API", key)
		}
	}
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
				if code != "416" && (!ok || body.Schema == nil || body.Schema.Ref != "#/components/schemas/Error") {
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

// jsonField is one field of a struct's JSON encoding.
type jsonField struct {
	name      string
	typ       reflect.Type
	omitEmpty bool // omitempty or omitzero: absent when empty
}

// jsonFields lists the fields encoding/json writes for struct type t, from
// the struct tags. Embedded structs without a tag are flattened; a field of
// the outer struct hides an embedded one of the same name.
func jsonFields(t reflect.Type) []jsonField {
	var out, embedded []jsonField
	for f := range t.Fields() {
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				embedded = append(embedded, jsonFields(ft)...)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		omit := false
		for o := range strings.SplitSeq(opts, ",") {
			omit = omit || o == "omitempty" || o == "omitzero"
		}
		out = append(out, jsonField{name: name, typ: f.Type, omitEmpty: omit})
	}
	for _, e := range embedded {
		if !slices.ContainsFunc(out, func(f jsonField) bool { return f.name == e.name }) {
			out = append(out, e)
		}
	}
	return out
}

// schemaType is a component schema's Go type; see schemaTypes.
type schemaType = struct {
	typ    reflect.Type
	output bool
}

// TestOpenAPISchemas holds every component schema to its Go type: the
// same JSON field names, compatible types, references to the schema of
// the nested Go type, and for output types a required list of exactly the
// fields that are always present. A field added to, renamed in or removed
// from an apiv1 type fails here until openapi.yaml says the same.
func TestOpenAPISchemas(t *testing.T) {
	doc := loadDoc(t, openapiYAML)
	byType := map[reflect.Type]string{}
	for name, st := range schemaTypes {
		byType[st.typ] = name
	}
	for name := range doc.Components.Schemas {
		if _, ok := schemaTypes[name]; !ok {
			t.Errorf("openapi.yaml schema %s has no Go type in schemaTypes (openapi_test.go); add it", name)
		}
	}
	for name, st := range schemaTypes {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("schemaTypes maps %s to %v, but openapi.yaml has no schema %s", name, st.typ, name)
			continue
		}
		for _, p := range schemaProblems(name, s, st, byType) {
			t.Error(p)
		}
	}
}

// schemaProblems lists how schema s (named name) differs from the JSON
// encoding of its Go type.
func schemaProblems(name string, s *oaSchema, st schemaType, byType map[reflect.Type]string) []string {
	var probs []string
	if !s.Type.is("object", false) {
		probs = append(probs, fmt.Sprintf("schema %s: type %v, want object", name, s.Type))
	}
	var goNames, docNames, always []string
	for _, f := range jsonFields(st.typ) {
		goNames = append(goNames, f.name)
		if !f.omitEmpty {
			always = append(always, f.name)
		}
		if p, ok := s.Properties[f.name]; ok {
			probs = append(probs, typeProblems(name+"."+f.name, p, f, byType)...)
		}
	}
	for p := range s.Properties {
		docNames = append(docNames, p)
	}
	sort.Strings(goNames)
	sort.Strings(docNames)
	if !slices.Equal(goNames, docNames) {
		probs = append(probs, fmt.Sprintf("schema %s: properties %v, but %v encodes %v", name, docNames, st.typ, goNames))
	}
	for _, r := range s.Required {
		if _, ok := s.Properties[r]; !ok {
			probs = append(probs, fmt.Sprintf("schema %s: required %q is not a property", name, r))
		}
	}
	if st.output {
		req := slices.Sorted(slices.Values(s.Required))
		sort.Strings(always)
		if !slices.Equal(req, always) {
			probs = append(probs, fmt.Sprintf("schema %s: required %v, but %v always encodes %v (the fields without omitempty)", name, req, st.typ, always))
		}
	}
	return probs
}

var timeType = reflect.TypeFor[time.Time]()

// typeProblems lists how schema s fails to describe values of field f's
// Go type.
func typeProblems(where string, s *oaSchema, f jsonField, byType map[reflect.Type]string) []string {
	typ := f.typ
	// A nil pointer encodes as null unless omitempty drops it.
	nullable := false
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
		nullable = !f.omitEmpty
	}
	if s.Ref != "" {
		var probs []string
		want, ok := byType[typ]
		if !ok || s.Ref != "#/components/schemas/"+want {
			probs = append(probs, fmt.Sprintf("%s: refers to %s, but the Go type is %v (schema %q)", where, s.Ref, typ, want))
		}
		if nullable {
			probs = append(probs, fmt.Sprintf("%s: %v may be null; describe it without $ref, with type [..., \"null\"]", where, f.typ))
		}
		return probs
	}
	var probs []string
	want, format := "", ""
	switch {
	case typ == timeType:
		want, format = "string", "date-time"
	case typ.Kind() == reflect.Slice && typ.Elem().Kind() == reflect.Uint8:
		want, format = "string", "byte"
	case typ.Kind() == reflect.String:
		want = "string"
	case typ.Kind() == reflect.Bool:
		want = "boolean"
	case typ.Kind() >= reflect.Int && typ.Kind() <= reflect.Uint64:
		want = "integer"
	case typ.Kind() == reflect.Float32 || typ.Kind() == reflect.Float64:
		want = "number"
	case typ.Kind() == reflect.Slice || typ.Kind() == reflect.Array:
		want = "array"
		if s.Items == nil {
			probs = append(probs, fmt.Sprintf("%s: an array needs items", where))
		} else {
			probs = append(probs, typeProblems(where+"[]", s.Items, jsonField{typ: typ.Elem()}, byType)...)
		}
	case typ.Kind() == reflect.Map:
		want = "object"
		if s.AdditionalProperties == nil {
			probs = append(probs, fmt.Sprintf("%s: a map needs additionalProperties", where))
		} else {
			probs = append(probs, typeProblems(where+"{}", s.AdditionalProperties, jsonField{typ: typ.Elem()}, byType)...)
		}
	case typ.Kind() == reflect.Struct:
		return []string{fmt.Sprintf("%s: %v is a struct; refer to its component schema with $ref", where, typ)}
	default:
		return []string{fmt.Sprintf("%s: Go type %v has no OpenAPI mapping in this test", where, typ)}
	}
	if !s.Type.is(want, nullable) {
		if nullable {
			want = "[" + want + ", null]"
		}
		probs = append(probs, fmt.Sprintf("%s: type %v, want %s for %v", where, s.Type, want, f.typ))
	}
	if format != "" && s.Format != format {
		probs = append(probs, fmt.Sprintf("%s: format %q, want %q for %v", where, s.Format, format, typ))
	}
	return probs
}

// TestOpenAPICoversAPIV1 fails when apiv1 gains a struct type that no
// schema describes: every wire type must be in schemaTypes.
func TestOpenAPICoversAPIV1(t *testing.T) {
	files, err := filepath.Glob("../apiv1/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("list ../apiv1: %v (%d files)", err, len(files))
	}
	mapped := map[string]bool{}
	for _, st := range schemaTypes {
		if st.typ.PkgPath() == reflect.TypeFor[apiv1.Device]().PkgPath() { // apiv1.Error is protocol's now
			mapped[st.typ.Name()] = true
		}
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
					t.Errorf("apiv1.%s (%s) has no schema in openapi.yaml; add one and map it in schemaTypes", ts.Name.Name, filepath.Base(f))
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

// TestOpenAPISchemaCheckFails proves the schema check fails when a Go
// type and its schema drift apart: a renamed, an added and a retyped field,
// a pointer that may be null, and a nested struct of another type are each
// reported.
func TestOpenAPISchemaCheckFails(t *testing.T) {
	doc := loadDoc(t, openapiYAML)
	byType := map[reflect.Type]string{}
	for name, st := range schemaTypes {
		byType[st.typ] = name
	}
	team := doc.Components.Schemas["Team"]
	if p := schemaProblems("Team", team, schemaTypes["Team"], byType); len(p) != 0 {
		t.Fatalf("the real Team schema has problems: %v", p)
	}
	type renamed struct {
		Name      string    `json:"team_name"`
		Members   []string  `json:"members"`
		CreatedAt time.Time `json:"created_at"`
	}
	type added struct {
		apiv1.Team
		Owner string `json:"owner"`
	}
	type retyped struct {
		Name      string    `json:"name"`
		Members   []int     `json:"members"`
		CreatedAt time.Time `json:"created_at"`
	}
	type nullable struct {
		Name      string     `json:"name"`
		Members   []string   `json:"members"`
		CreatedAt *time.Time `json:"created_at"`
	}
	type optional struct {
		Name      string    `json:"name"`
		Members   []string  `json:"members,omitempty"`
		CreatedAt time.Time `json:"created_at"`
	}
	for _, tc := range []struct {
		typ  reflect.Type
		want string
	}{
		{reflect.TypeFor[renamed](), "team_name"},
		{reflect.TypeFor[added](), "owner"},
		{reflect.TypeFor[retyped](), "Team.members[]: type [string], want integer"},
		{reflect.TypeFor[nullable](), "want [string, null]"},
		{reflect.TypeFor[optional](), "required"},
	} {
		probs := schemaProblems("Team", team, schemaType{typ: tc.typ, output: true}, byType)
		if !slices.ContainsFunc(probs, func(p string) bool { return strings.Contains(p, tc.want) }) {
			t.Errorf("%v against the Team schema: problems %q, want one mentioning %q", tc.typ, probs, tc.want)
		}
	}

	grant := doc.Components.Schemas["Grant"]
	type wrongRef struct {
		apiv1.Grant
		Subject access.Scope `json:"subject"`
	}
	probs := schemaProblems("Grant", grant, schemaType{typ: reflect.TypeFor[wrongRef](), output: true}, byType)
	if !slices.ContainsFunc(probs, func(p string) bool {
		return strings.Contains(p, "Grant.subject: refers to #/components/schemas/Subject")
	}) {
		t.Errorf("a field of another struct type is not reported: %q", probs)
	}
}
