package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/edgewarden/edgewarden/agent/identity"
	"github.com/edgewarden/edgewarden/protocol"
)

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

func TestStatusJSON(t *testing.T) {
	dir := t.TempDir()
	err := identity.Save(dir, &identity.Identity{DeviceID: "press-01", MQTTURL: "tls://127.0.0.1:8883",
		ControllerKeys: []protocol.PublicKey{{KeyID: "k", Algorithm: "Ed25519"}}})
	if err != nil {
		t.Fatal(err)
	}
	out, code := execute("status", "--state", dir, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, k := range []string{"device_id", "applied_revision", "socket", "apps_dir", "apps"} {
		if _, ok := got[k]; !ok {
			t.Errorf("status -o json lacks %q: %s", k, out)
		}
	}
	if got["device_id"] != "press-01" || got["socket"] != "/run/edgewarden/agent.sock" {
		t.Errorf("status: %s", out)
	}
	out, code = execute("status", "--state", dir)
	if code != 0 || !strings.Contains(out, "press-01") {
		t.Fatalf("table status exit %d: %s", code, out)
	}
}

func execute(args ...string) (stdout string, code int) {
	var out bytes.Buffer
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.ExecuteContext(context.Background())
	return out.String(), exitCode(err)
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"--help"}, 0},
		{[]string{"bogus"}, 2},
		{[]string{"status"}, 2},
		{[]string{"status", "--state", t.TempDir(), "--nope"}, 2},
		{[]string{"status", "--state", t.TempDir(), "-o", "yaml"}, 2},
		{[]string{"enroll", "--state", t.TempDir()}, 2},
		{[]string{"enroll", "--controller", "https://127.0.0.1:1", "--token", "t", "--ca-fingerprint", "sha256:00", "--state", t.TempDir(), "--label", "novalue"}, 2},
		{[]string{"status", "--state", t.TempDir()}, 1}, // not enrolled
		{[]string{"run", "--state", t.TempDir()}, 1},    // not enrolled
		{[]string{"enroll", "--controller", "https://127.0.0.1:1", "--token", "t", "--ca-fingerprint", "sha256:00", "--state", t.TempDir()}, 1},
	} {
		if _, code := execute(tc.args...); code != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.args, code, tc.code)
		}
	}
}

// The agent binary links neither controller code (its contract with the
// controller is in protocol/) nor cosign.
func TestAgentDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-json=ImportPath", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p struct{ ImportPath string }
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		path := p.ImportPath
		if strings.HasPrefix(path, "github.com/edgewarden/edgewarden/controller/") {
			t.Errorf("agent binary imports %s", path)
		}
		if strings.Contains(path, "sigstore/cosign") {
			t.Errorf("agent binary imports %s", path)
		}
	}
}
