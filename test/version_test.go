package test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// `edgewarden version` names the client's and the controller's builds, and
// `devices show` the version an agent reports; the version endpoint needs a
// session.
func TestVersionCommand(t *testing.T) {
	p := newPlant(t)
	var v struct {
		Client         string `json:"client"`
		DocumentSchema int    `json:"document_schema"`
		Controller     *struct {
			Controller     string `json:"controller"`
			API            string `json:"api"`
			DocumentSchema int    `json:"document_schema"`
		} `json:"controller"`
	}
	p.cliJSON(&v, "version")
	if v.Client == "" || v.DocumentSchema != protocol.Schema || v.Controller == nil || v.Controller.Controller == "" ||
		v.Controller.API != "v1" || v.Controller.DocumentSchema != protocol.Schema {
		t.Fatalf("version: %+v", v)
	}
	// Without a session: the client's version, then a clear failure.
	out, code := run(t, nil, []string{"EDGEWARDEN_CONFIG=" + filepath.Join(t.TempDir(), "none.json")}, bin.cli, "version")
	if code != 1 || !strings.Contains(out, "Client:") || !strings.Contains(out, "controller version") {
		t.Fatalf("version without a session: exit %d: %s", code, out)
	}

	p.mustEnroll("dev-1", p.enrollToken())
	p.startAgent("dev-1")
	eventually(t, 60*time.Second, func() (bool, string) {
		var d struct {
			AgentVersion string `json:"agent_version"`
		}
		p.cliJSON(&d, "devices", "show", "dev-1")
		return d.AgentVersion != "", "devices show has no agent_version"
	})
}
