package test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgewarden/edgewarden/protocol"
)

// Every binary says which build it is and which document schema it speaks,
// so an operator can match agents, controller and CLI.
func TestVersionFlag(t *testing.T) {
	for _, b := range []string{bin.controller, bin.agent, bin.cli} {
		out, code := run(t, nil, nil, b, "--version")
		name := filepath.Base(b)
		want := fmt.Sprintf("(document schema %d, go", protocol.Schema)
		if code != 0 || !strings.HasPrefix(out, name+" ") || !strings.Contains(out, want) {
			t.Errorf("%s --version: exit %d, %q; want %q... %q", name, code, out, name, want)
		}
	}
}
