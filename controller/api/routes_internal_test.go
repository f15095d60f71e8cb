package api

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// TestMuxServesOnlyTheTable: the mux serves each route of the table with
// that route's pattern, and nothing registers on the mux outside routes()
// (so no endpoint can escape the table, its middleware and its tests).
func TestMuxServesOnlyTheTable(t *testing.T) {
	a := New(Options{})
	for _, rt := range a.table {
		path := strings.NewReplacer("{", "x", "}", "x").Replace(rt.Path)
		_, pattern := a.mux.Handler(httptest.NewRequest(rt.Method, path, nil))
		if pattern != rt.Pattern() {
			t.Errorf("%s %s is served by pattern %q, not by its route %q", rt.Method, path, pattern, rt.Pattern())
		}
	}

	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
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
		for _, where := range registrationsOutsideRoutes(fset, file) {
			t.Errorf("%s registers on the mux directly; declare the endpoint in routeTable", where)
		}
	}

	// The check finds a registration outside routes().
	src := `package api
func (a *API) more() {
	a.mux.Handle("GET /api/v1/secret", nil)
}`
	file, err := parser.ParseFile(fset, "more.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := registrationsOutsideRoutes(fset, file); len(got) != 1 || !strings.Contains(got[0], "more.go:3") {
		t.Errorf("registrationsOutsideRoutes of a direct registration: %q, want one at more.go:3", got)
	}
}

// registrationsOutsideRoutes lists where file calls mux.Handle or
// mux.HandleFunc in a function other than routes.
func registrationsOutsideRoutes(fset *token.FileSet, file *ast.File) []string {
	var out []string
	for _, d := range file.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil || fd.Name.Name == "routes" {
			continue
		}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") {
				return true
			}
			if recv, ok := sel.X.(*ast.SelectorExpr); ok && recv.Sel.Name == "mux" {
				out = append(out, fmt.Sprintf("%s (in %s)", fset.Position(call.Pos()), fd.Name.Name))
			}
			return true
		})
	}
	return out
}
