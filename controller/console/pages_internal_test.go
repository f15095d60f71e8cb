package console

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// TestConsoleMuxServesOnlyTheTable: every page of the table is served by
// its own pattern (so its Access and the CSRF check apply), and nothing
// registers on the mux outside New, where the table, the static files and
// the not-found page are registered.
func TestConsoleMuxServesOnlyTheTable(t *testing.T) {
	c, err := New(Options{API: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range c.pages {
		path := strings.NewReplacer("{$}", "", "{", "x", "}", "x").Replace(p.Path)
		if _, pattern := c.mux.Handler(httptest.NewRequest(p.Method, path, nil)); pattern != p.Pattern() {
			t.Errorf("%s %s is served by %q, not by its page %q", p.Method, path, pattern, p.Pattern())
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
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Name.Name == "New" {
				continue
			}
			ast.Inspect(fn, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok && (sel.Sel.Name == "Handle" || sel.Sel.Name == "HandleFunc") {
					t.Errorf("%s: %s registers on a mux; declare the page in pageTable", fset.Position(sel.Pos()), fn.Name.Name)
				}
				return true
			})
		}
	}
}
