package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgewarden/edgewarden/controller/api"
	"github.com/edgewarden/edgewarden/controller/api/apitest"
	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
)

// cli runs the edgewarden CLI in-process against one config file.
type cli struct {
	t      *testing.T
	config string
}

type result struct {
	code           int
	stdout, stderr string
}

func newCLI(t *testing.T) *cli {
	return &cli{t: t, config: filepath.Join(t.TempDir(), "cfg", "config.json")}
}

func (c *cli) runIn(stdin string, argv ...string) result {
	c.t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), argv, env{
		stdin:  strings.NewReader(stdin),
		stdout: &out,
		stderr: &errb,
		getenv: func(k string) string {
			if k == "EDGEWARDEN_CONFIG" {
				return c.config
			}
			return ""
		},
	})
	return result{code, out.String(), errb.String()}
}

func (c *cli) run(argv ...string) result { c.t.Helper(); return c.runIn("", argv...) }

// ok runs argv and fails the test unless it exits 0.
func (c *cli) ok(argv ...string) string {
	c.t.Helper()
	r := c.run(argv...)
	if r.code != 0 || r.stderr != "" {
		c.t.Fatalf("edgewarden %s: exit %d, stderr %q", strings.Join(argv, " "), r.code, r.stderr)
	}
	return r.stdout
}

// fails runs argv and checks the exit code and the one-line message.
func (c *cli) fails(code int, want string, argv ...string) {
	c.t.Helper()
	r := c.run(argv...)
	if r.code != code {
		c.t.Fatalf("edgewarden %s: exit %d, want %d (stderr %q)", strings.Join(argv, " "), r.code, code, r.stderr)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "edgewarden: ") {
		c.t.Errorf("stderr is not one line: %q", r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		c.t.Errorf("stderr %q does not contain %q", r.stderr, want)
	}
	if r.stdout != "" {
		c.t.Errorf("a failure printed to stdout: %q", r.stdout)
	}
}

func (c *cli) jsonOf(v any, argv ...string) {
	c.t.Helper()
	out := c.ok(append(argv, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("edgewarden %s -o json: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

func login(t *testing.T, s *apitest.Server) *cli {
	t.Helper()
	c := newCLI(t)
	r := c.runIn(apitest.AdminPassword+"\n", "login", "--controller", s.URL, "--ca", s.CAFile, "--user", apitest.AdminUser, "--password-stdin")
	if r.code != 0 {
		t.Fatalf("login: exit %d: %s", r.code, r.stderr)
	}
	return c
}

func TestLogin(t *testing.T) {
	s := apitest.NewServer(t, nil)
	if err := s.Store.SetSetting(context.Background(), api.SettingBanner, "Authorized use only. Activity is logged."); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t)
	r := c.runIn(apitest.AdminPassword+"\n", "login", "--controller", s.URL, "--ca", s.CAFile, "--user", apitest.AdminUser, "--password-stdin")
	if r.code != 0 {
		t.Fatalf("login: %d %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "Authorized use only.") || !strings.Contains(r.stdout, "Logged in to") {
		t.Errorf("login output %q lacks the banner or confirmation", r.stdout)
	}
	fi, err := os.Stat(c.config)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v, want 0600", fi.Mode().Perm())
	}
	var cfg config
	raw, _ := os.ReadFile(c.config)
	if err := json.Unmarshal(raw, &cfg); err != nil || cfg.Token == "" || cfg.Controller != s.URL || !filepath.IsAbs(cfg.CA) {
		t.Fatalf("config %s: %v", raw, err)
	}
	c.ok("devices", "ls")

	// Wrong password: exit 1, the server's message, the old session kept.
	r = c.runIn("nope-nope\n", "login", "--controller", s.URL, "--ca", s.CAFile, "--user", apitest.AdminUser, "--password-stdin")
	if r.code != 1 || !strings.Contains(r.stderr, "wrong user name or password") {
		t.Errorf("wrong password: %d %q", r.code, r.stderr)
	}
	if raw2, _ := os.ReadFile(c.config); !bytes.Equal(raw, raw2) {
		t.Error("a failed login changed the config")
	}
	// Untrusted CA: exit 1 with a TLS error.
	other := filepath.Join(t.TempDir(), "other.pem")
	os.WriteFile(other, s.PKI.CAPEM(), 0o644)
	r = c.runIn(apitest.AdminPassword+"\n", "login", "--controller", s.URL, "--ca", other, "--user", apitest.AdminUser, "--password-stdin")
	if r.code != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("untrusted CA: %d %q", r.code, r.stderr)
	}

	c.fails(2, "--password-stdin", "login", "--controller", s.URL, "--user", "admin")
	fresh := newCLI(t)
	fresh.fails(2, "--controller and --user are required", "login", "--password-stdin")
	fresh.fails(1, "not logged in", "devices", "ls")
}

func TestUsageErrors(t *testing.T) {
	c := newCLI(t)
	c.fails(2, "unknown flag: --bogus", "devices", "ls", "--bogus")
	c.fails(2, "unknown command", "devices", "bogus")
	c.fails(2, "unknown command", "bogus")
	c.fails(2, "usage: edgewarden devices show ID", "devices", "show")
	c.fails(2, "accepts 1 arg", "devices", "show", "a", "b")
	c.fails(2, "use -o json or -o table", "status", "-o", "yaml")
	c.fails(2, "key=value", "enroll-tokens", "create", "--labels", "novalue")
	c.fails(2, "--ttl", "enroll-tokens", "create", "--ttl", "1ms")
	c.fails(2, "invalid argument", "enroll-tokens", "create", "--uses", "many")
	c.fails(2, "requires at least 2 arg", "groups", "add", "g1")
	c.fails(2, "needs a subcommand", "groups")
}

func TestHelpHasExamples(t *testing.T) {
	c := newCLI(t)
	root := (&app{}).rootCmd()
	for _, cmd := range root.Commands() {
		if cmd.Name() == "help" {
			continue
		}
		if cmd.Example == "" {
			t.Errorf("%s has no example", cmd.CommandPath())
		}
		for _, sub := range cmd.Commands() {
			if sub.Example == "" {
				t.Errorf("%s has no example", sub.CommandPath())
			}
			out := c.ok(append(strings.Fields(sub.CommandPath())[1:], "--help")...)
			if !strings.Contains(out, "Examples:") {
				t.Errorf("%s --help shows no example", sub.CommandPath())
			}
		}
	}
}

func TestEnrollTokensDevicesGroups(t *testing.T) {
	s := apitest.NewServer(t, nil)
	c := login(t, s)
	ctx := context.Background()

	c.ok("groups", "create", "line-1")
	out := c.ok("enroll-tokens", "create", "--groups", "line-1", "--labels", "site=plant-a,role=press", "--uses", "3", "--ttl", "2h", "--approval")
	secret := strings.TrimSpace(out)
	if !strings.HasPrefix(secret, "ewt_") || strings.Contains(secret, "\n") {
		t.Fatalf("create printed %q, want only the token", out)
	}
	var tok apiv1.EnrollToken
	c.jsonOf(&tok, "enroll-tokens", "create")
	if tok.ID == "" || tok.Token == "" || tok.MaxUses != 1 {
		t.Errorf("token json %+v", tok)
	}

	anon, _ := client.New(client.Options{BaseURL: s.URL, CAFile: s.CAFile})
	for _, id := range []string{"press-01", "press-02"} {
		if _, err := anon.Enroll(ctx, apiv1.EnrollRequest{Token: secret, CSRPEM: apitest.NewCSR(t, id)}); err != nil {
			t.Fatal(err)
		}
	}
	var toks []apiv1.EnrollToken
	c.jsonOf(&toks, "enroll-tokens", "ls")
	if len(toks) != 2 {
		t.Fatalf("tokens %+v", toks)
	}
	table := c.ok("enroll-tokens", "ls")
	if !strings.Contains(table, "2/3") || !strings.Contains(table, "line-1") || !strings.Contains(table, "role=press,site=plant-a") {
		t.Errorf("token table:\n%s", table)
	}
	c.ok("enroll-tokens", "revoke", tok.ID)
	if !strings.Contains(c.ok("enroll-tokens", "ls"), "revoked") {
		t.Error("revoked token not shown as revoked")
	}
	c.fails(1, "not found", "enroll-tokens", "revoke", "et_missing")

	// devices
	table = c.ok("devices", "ls")
	if !strings.Contains(table, "press-01") || !strings.Contains(table, "pending approval") {
		t.Errorf("devices table:\n%s", table)
	}
	c.ok("devices", "approve", "press-01")
	s.SetDesired(t, "press-01", 4)
	s.Report(t, "press-01", true, protocol.StatusReport{AppliedRevision: 4, Apps: []protocol.AppStatus{{Name: "opcua-bridge", Version: "1.2.0", State: protocol.AppRunning}}})
	var m map[string]any
	c.jsonOf(&m, "devices", "show", "press-01")
	for _, k := range []string{"id", "online", "groups", "labels", "desired_revision", "applied_revision", "apps", "last_seen"} {
		if _, ok := m[k]; !ok {
			t.Errorf("devices show -o json lacks %q: %v", k, m)
		}
	}
	if m["id"] != "press-01" || m["online"] != true || m["desired_revision"].(float64) != 4 || m["applied_revision"].(float64) != 4 {
		t.Errorf("devices show -o json: %v", m)
	}
	apps := m["apps"].([]any)
	app := apps[0].(map[string]any)
	for _, k := range []string{"name", "version", "state"} {
		if _, ok := app[k]; !ok {
			t.Errorf("app json lacks %q: %v", k, app)
		}
	}
	if g := m["groups"].([]any); len(g) != 1 || g[0] != "line-1" {
		t.Errorf("groups %v", m["groups"])
	}
	text := c.ok("devices", "show", "press-01")
	for _, want := range []string{"press-01", "in sync", "opcua-bridge", "site=plant-a"} {
		if !strings.Contains(text, want) {
			t.Errorf("devices show lacks %q:\n%s", want, text)
		}
	}

	var d apiv1.Device
	c.jsonOf(&d, "devices", "label", "press-01", "zone=3", "role-")
	if d.Labels["zone"] != "3" || d.Labels["role"] != "" || d.Labels["site"] != "plant-a" {
		t.Errorf("labels after label: %v", d.Labels)
	}
	c.fails(1, "not found", "devices", "show", "ghost")

	// groups
	c.ok("groups", "create", "presses", "--selector", "site=plant-a")
	c.ok("groups", "create", "plant")
	var g apiv1.Group
	c.jsonOf(&g, "groups", "include", "plant", "presses")
	if !slices.Equal(g.Members, []string{"press-01", "press-02"}) {
		t.Errorf("plant members %v", g.Members)
	}
	c.fails(1, "cycle", "groups", "include", "presses", "plant")
	c.jsonOf(&g, "groups", "add", "plant", "press-01")
	if !slices.Equal(g.Devices, []string{"press-01"}) {
		t.Errorf("plant devices %v", g.Devices)
	}
	c.jsonOf(&g, "groups", "exclude", "plant", "presses")
	c.jsonOf(&g, "groups", "remove", "plant", "press-01")
	if len(g.Members) != 0 {
		t.Errorf("plant members after remove %v", g.Members)
	}
	var gs []apiv1.Group
	c.jsonOf(&gs, "groups", "ls")
	if len(gs) != 3 {
		t.Errorf("groups %+v", gs)
	}
	if out := c.ok("groups", "show", "presses"); !strings.Contains(out, "site=plant-a") || !strings.Contains(out, "press-02") {
		t.Errorf("groups show:\n%s", out)
	}
	c.fails(1, "already exists", "groups", "create", "plant")
	c.ok("groups", "delete", "plant")
	c.fails(1, "not found", "groups", "show", "plant")

	// status
	var st apiv1.FleetStatus
	c.jsonOf(&st, "status")
	if st.Devices != 2 || st.Online != 1 || st.InSync != 1 || st.Pending != 1 {
		t.Errorf("status %+v", st)
	}
	if out := c.ok("status"); !strings.Contains(out, "Pending approval:") {
		t.Errorf("status:\n%s", out)
	}

	c.ok("devices", "delete", "press-02")
	c.fails(1, "not found", "devices", "delete", "press-02")
}

func TestDisabledUserLosesSession(t *testing.T) {
	s := apitest.NewServer(t, nil)
	c := login(t, s)
	s.SetUserState(t, apitest.AdminUser, store.UserDisabled)
	c.fails(1, "disabled", "devices", "ls")
}
