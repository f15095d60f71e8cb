package test

import (
	"os/exec"
	"strings"
	"testing"
)

// deps lists every package the given package links.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

const module = "github.com/edgewarden/edgewarden/"

// TestDependencyRules holds the architecture: protocol/ is the shared
// contract and imports neither side; the agent links no controller code and
// not cosign (DESIGN.md: verification on the device uses the standard
// library alone, which keeps the binary small); the web console links
// neither the store nor the evaluator, so it reads and changes nothing
// except through the API's routes and their one middleware.
func TestDependencyRules(t *testing.T) {
	for _, p := range deps(t, "./../protocol/...") {
		if strings.HasPrefix(p, module+"agent") || strings.HasPrefix(p, module+"controller") {
			t.Errorf("protocol links %s", p)
		}
		if strings.Contains(p, "sigstore/cosign") {
			t.Errorf("protocol links cosign (%s)", p)
		}
	}
	for _, p := range deps(t, "./../cmd/edgewarden-agent") {
		if strings.HasPrefix(p, module+"controller") {
			t.Errorf("the agent links controller code: %s", p)
		}
		if strings.Contains(p, "sigstore/cosign") {
			t.Errorf("the agent links cosign: %s", p)
		}
		// Footprint (issue 11, docs/BENCHMARKS.md): signatures are checked
		// with the standard library and metrics written as text, so the
		// agent links neither sigstore, the Prometheus client nor protobuf.
		for _, heavy := range []string{"github.com/sigstore/", "github.com/prometheus/", "google.golang.org/protobuf"} {
			if strings.HasPrefix(p, heavy) {
				t.Errorf("the agent links %s (it costs binary size and resident memory on every device)", p)
			}
		}
	}
	for _, p := range deps(t, "./../controller/console") {
		for _, banned := range []string{module + "controller/store", module + "controller/authz", module + "controller/auth", module + "controller/api", "database/sql"} {
			if p == banned {
				t.Errorf("the console links %s: it reads and changes only through the API's routes", p)
			}
		}
	}
}
