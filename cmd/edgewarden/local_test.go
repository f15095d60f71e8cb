package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/agent/apply"
	"github.com/edgewarden/edgewarden/agent/localapi"
	"github.com/edgewarden/edgewarden/agent/localapi/localwire"
	"github.com/edgewarden/edgewarden/agent/state"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/access"
	"github.com/edgewarden/edgewarden/protocol/optoken"
)

// localDevice is a real agent local API (applier fed one signed document)
// on a socket, for the `local` commands.
type localDevice struct {
	socket string
	tokens *optoken.Signer
}

func newLocalDevice(t *testing.T) *localDevice {
	t.Helper()
	dir := t.TempDir()
	pub, ctlKey, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	ctlPub := protocol.PublicKey{KeyID: protocol.KeyID(pub), Algorithm: "Ed25519",
		PEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}
	_, tokKey, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := optoken.NewSigner(tokKey)
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(context.Background(), filepath.Join(dir, "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ap, err := apply.New(context.Background(), apply.Options{DeviceID: "d-1", Keys: []protocol.PublicKey{ctlPub}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := access.CompileForDevice(access.Input{
		Roles:  access.BuiltinRoles(),
		Users:  []access.User{{Name: "alice"}},
		Grants: []access.Grant{{ID: "g-1", Subject: access.UserSubject("alice"), Role: access.RoleOperator, Scope: access.GroupScope("line-1")}},
	}, access.NewHierarchy(nil).Device("d-1", []string{"line-1"}))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	raw, err := protocol.SignDesired(&protocol.DesiredState{
		Schema: protocol.Schema, DeviceID: "d-1", Revision: 1, IssuedAt: now, ExpiresAt: now.Add(time.Hour),
		Groups: []string{"line-1"}, Access: pol, TokenKeys: []protocol.PublicKey{signer.PublicKey()},
		Banner: "AUTHORIZED USE ONLY",
	}, ctlKey)
	if err != nil {
		t.Fatal(err)
	}
	if res := ap.Handle(context.Background(), raw); res.Outcome != apply.Applied {
		t.Fatalf("apply: %v %v", res.Outcome, res.Err)
	}
	d := &localDevice{socket: filepath.Join(dir, "agent.sock"), tokens: signer}
	srv, err := localapi.New(localapi.Options{Socket: d.socket, DeviceID: "d-1", Policy: ap.Current, Events: st,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return d
}

func (d *localDevice) token(t *testing.T, user string) string {
	t.Helper()
	tok, _, err := d.tokens.Issue(optoken.IssueOptions{Subject: user, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type localResult struct {
	code           int
	stdout, stderr string
}

// runLocal runs the CLI in-process with the given environment.
func runLocal(vars map[string]string, argv ...string) localResult {
	var out, errb bytes.Buffer
	code := run(context.Background(), argv, env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		getenv: func(k string) string { return vars[k] }})
	return localResult{code, out.String(), errb.String()}
}

func TestLocalCommands(t *testing.T) {
	d := newLocalDevice(t)
	alice := d.token(t, "alice")
	base := []string{"local", "--socket", d.socket}
	with := func(args ...string) []string { return append(append([]string{}, base...), args...) }

	r := runLocal(nil, with("--token", alice, "status")...)
	if r.code != 0 || !strings.Contains(r.stdout, "d-1") || !strings.Contains(r.stdout, "device:app-operate") {
		t.Fatalf("status: %+v", r)
	}
	if !strings.HasPrefix(r.stderr, "AUTHORIZED USE ONLY") {
		t.Errorf("banner not shown first on stderr: %q", r.stderr)
	}

	// Token from the environment; -o json on stdout, banner on stderr only.
	envTok := map[string]string{"EDGEWARDEN_TOKEN": alice}
	r = runLocal(envTok, with("status", "-o", "json")...)
	var st localwire.Status
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil || st.User != "alice" {
		t.Fatalf("status -o json: %+v", r)
	}

	r = runLocal(envTok, with("authorize", "device:app-operate")...)
	if r.code != 0 || !strings.Contains(r.stdout, "allowed: grant g-1") {
		t.Errorf("authorize allowed: %+v", r)
	}
	r = runLocal(envTok, with("authorize", "device:sideload")...)
	if r.code != exitDenied || strings.Count(strings.TrimPrefix(r.stderr, "AUTHORIZED USE ONLY\n\n"), "\n") != 1 ||
		!strings.Contains(r.stderr, "edgewarden: denied: no grant gives device:sideload") {
		t.Errorf("authorize denied: %+v", r)
	}
	r = runLocal(envTok, with("authorize", "device:sideload", "-o", "json")...)
	var az localwire.Authorization
	if r.code != exitDenied || json.Unmarshal([]byte(r.stdout), &az) != nil || az.Allowed || az.User != "alice" {
		t.Errorf("authorize denied -o json: %+v", r)
	}

	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"no token", nil, with("authorize", "device:view"), 1, "no operator token"},
		{"bad token", map[string]string{"EDGEWARDEN_TOKEN": "x.y.z"}, with("status"), 1, "malformed operator token"},
		{"no agent", envTok, []string{"local", "--socket", filepath.Join(t.TempDir(), "none.sock"), "status"}, 1, "cannot reach the agent's local API"},
		{"no apps runtime", envTok, with("apps", "ls"), 1, "no apps runtime yet"},
		{"unknown action", envTok, with("authorize", "device:fly"), 2, "not in the action catalogue"},
		{"missing app name", envTok, with("apps", "start"), 2, "accepts 1 arg"},
		{"bad lines", envTok, with("apps", "logs", "x", "--lines", "0"), 2, "--lines"},
		{"no subcommand", envTok, with(), 2, "needs a subcommand"},
	} {
		r := runLocal(tc.env, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d (want %d), stderr %q (want %q)", tc.name, r.code, tc.code, r.stderr, tc.want)
		}
	}
}
