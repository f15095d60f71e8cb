package test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's Chromium, which .ci/run installs.
const chromiumPath = "/usr/bin/chromium"

// chrome is a headless Chromium (Debian's, driven with chromedp) that
// trusts exactly the plant's HTTPS key.
type chrome struct {
	t   *testing.T
	ctx context.Context
	p   *plant
}

// newChrome starts Chromium with an empty profile. A missing Chromium is
// a failure, not a skip: CI installs it (.ci/run).
func newChrome(t *testing.T, p *plant) *chrome {
	t.Helper()
	if _, err := exec.LookPath(chromiumPath); err != nil {
		t.Fatalf("Chromium is not installed at %s: install it with `apt-get install -y --no-install-recommends chromium` (.ci/run does)", chromiumPath)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Trust the controller's own HTTPS key, and only it.
		chromedp.Flag("ignore-certificate-errors-spki-list", spkiHash(t, p)),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return &chrome{t: t, ctx: ctx, p: p}
}

// spkiHash is the base64 SHA-256 of the public key of the certificate the
// controller serves, checked against the plant's CA.
func spkiHash(t *testing.T, p *plant) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(p.ctlDir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(raw)
	host, _, _ := strings.Cut(p.httpAddr, ":")
	conn, err := tls.Dial("tcp", p.httpAddr, &tls.Config{RootCAs: pool, ServerName: host})
	if err != nil {
		t.Fatalf("reach the controller over HTTPS: %v", err)
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func (c *chrome) do(steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		c.t.Fatalf("browser: %v\npage: %s", err, c.text("body"))
	}
}

// open navigates to a path of the console and waits for the page.
func (c *chrome) open(path string) {
	c.t.Helper()
	c.do(chromedp.Navigate(c.p.url() + path))
	c.waitLoaded()
}

// eval evaluates a JavaScript expression in the page (DevTools
// evaluation, which the page's CSP does not govern; the page's own
// scripts are only the controller's).
func eval[T any](c *chrome, expr string) T {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		c.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// text is the text of the first element matching a CSS selector ("" if
// none).
func (c *chrome) text(sel string) string {
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q)||{}).innerText||""`, sel)))
	return v
}

// where is the page's path and query.
func (c *chrome) where() string {
	return eval[string](c, `location.pathname + location.search`)
}

func (c *chrome) waitLoaded() {
	c.t.Helper()
	eventually(c.t, 30*time.Second, func() (bool, string) {
		s := eval[string](c, `document.readyState`)
		return s == "complete", "document " + s
	})
}

// waitText waits until the element's text holds want.
func (c *chrome) waitText(sel, want string, timeout time.Duration) {
	c.t.Helper()
	eventually(c.t, timeout, func() (bool, string) {
		got := c.text(sel)
		return strings.Contains(got, want), fmt.Sprintf("%s at %s shows %q, want %q", sel, c.where(), got, want)
	})
}

// submit clicks a submit button and waits for the page it leads to (path
// prefix) to load.
func (c *chrome) submit(button, leadsTo string) {
	c.t.Helper()
	c.do(chromedp.Click(chromedp.CSS(button)))
	eventually(c.t, 30*time.Second, func() (bool, string) {
		at := c.where()
		return strings.HasPrefix(at, leadsTo) && eval[string](c, `document.readyState`) == "complete", "at " + at + ", want " + leadsTo
	})
}

// status is the HTTP status of the document the browser shows, read from
// the Navigation Timing API.
func (c *chrome) status() int {
	return eval[int](c, `performance.getEntriesByType("navigation")[0].responseStatus`)
}

// screenshot saves the page to $EDGEWARDEN_CONSOLE_SCREENSHOTS/name.png
// when that is set (docs/console holds the committed ones).
func (c *chrome) screenshot(name string) {
	c.t.Helper()
	dir := os.Getenv("EDGEWARDEN_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		c.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

func (c *chrome) login(user, password string) {
	c.t.Helper()
	c.open("/login")
	c.do(
		chromedp.SendKeys(chromedp.ID("user"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
	)
	c.submit("#login", "/")
	c.waitText("#whoami", user, 10*time.Second)
}

// TestConsoleInBrowser drives the web console in headless Chromium against
// the real controller and two real agents: log in past the system-use
// notification, create a group, add two devices, assign a signed app and
// watch the device page reach "running", see a sideload event appear; a
// form without its CSRF token is refused; a viewer cannot reach admin
// pages or post admin forms, even by URL, and nothing changes.
func TestConsoleInBrowser(t *testing.T) {
	cosign := cosignBin(t)
	p := newPlant(t)
	p.mustCLI("settings", "banner", "set", "Authorized use only. Activity on this system is monitored and recorded.")
	tok := p.enrollToken("--uses", "2")
	for _, id := range []string{"press-01", "press-02"} {
		p.mustEnroll(id, tok)
		p.startAgent(id)
	}
	p.converged(map[string][]string{"press-01": nil, "press-02": nil})

	// A publisher signs an app with the real cosign and pushes it (the
	// console does not push: publishers do, with their key).
	work := filepath.Join(p.dir, "publisher")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	pass := []string{"COSIGN_PASSWORD=publisher secret"}
	mustInDir(t, work, pass, cosign, "generate-key-pair")
	p.mustCLI("publishers", "add", "acme", "--key", filepath.Join(work, "cosign.pub"))
	if err := os.WriteFile(filepath.Join(work, "run.sh"), []byte("#!/bin/sh\nexec sleep 1000\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := mustInDir(t, work, p.env(), bin.cli, "apps", "manifest", "--name", "web", "--version", "1.0.0",
		"--publisher", "acme", "--runtime", "process", "--exec", "run.sh", "run.sh")
	if err := os.WriteFile(filepath.Join(work, "manifest.json"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	mustInDir(t, work, append(p.env(), pass...), bin.cli, "apps", "sign", "--key", filepath.Join(work, "cosign.key"), "manifest.json")
	mustInDir(t, work, p.env(), bin.cli, "apps", "push", "--manifest", "manifest.json", "--signature", "manifest.json.sig", "run.sh")

	c := newChrome(t, p)

	// The login page shows the notification before anything else.
	c.open("/")
	if at := c.where(); at != "/login" {
		t.Fatalf("the console without a session is at %s, want /login", at)
	}
	c.waitText("#banner", "Authorized use only.", 10*time.Second)
	c.screenshot("login")
	c.login("admin", "correct horse battery staple")
	// Scripts in the page cannot read the session (HttpOnly).
	if jar := eval[string](c, `document.cookie`); strings.Contains(jar, "edgewarden-session") {
		t.Errorf("the page's scripts see the session cookie: %q", jar)
	}

	// Create a group.
	c.open("/groups")
	c.do(chromedp.SendKeys(chromedp.ID("g-name"), "line-1"))
	c.submit("#create-group", "/groups/line-1")
	c.waitText(".flash", "Group line-1 created.", 10*time.Second)

	// Add two devices (multi-select).
	c.do(chromedp.Click(chromedp.ID("add-press-01")), chromedp.Click(chromedp.ID("add-press-02")))
	c.submit("#add-devices", "/groups/line-1")
	c.waitText("#members", "press-01", 10*time.Second)
	c.waitText("#members", "press-02", 10*time.Second)
	p.converged(map[string][]string{"press-01": {"line-1"}, "press-02": {"line-1"}})

	// A form whose CSRF token was taken out is refused, and changes
	// nothing: press-02 stays a member.
	eval[bool](c, `(() => { document.querySelectorAll('form[action="/groups/line-1/devices/remove"] input[name=csrf]').forEach(e => e.remove()); return true })()`)
	c.do(chromedp.Click(chromedp.ID("rm-press-02")))
	c.submit("#remove-devices", "/groups/line-1/devices/remove")
	if st := c.status(); st != 403 || !strings.Contains(c.text("#error"), "CSRF") {
		t.Fatalf("a form without its CSRF token: %d %q, want 403 naming the CSRF token", st, c.text("#error"))
	}
	var g struct {
		Devices []string `json:"devices"`
	}
	p.cliJSON(&g, "groups", "show", "line-1")
	if strings.Join(g.Devices, ",") != "press-01,press-02" {
		t.Fatalf("after the refused form, line-1 holds %v", g.Devices)
	}
	// A label set on the device page; a selector typed on a new group's
	// page previews, live, the device it would take in (the API's dry run),
	// and takes it in once saved.
	c.open("/devices/press-02")
	c.do(chromedp.SendKeys(chromedp.ID("l-key"), "site"), chromedp.SendKeys(chromedp.ID("l-value"), "north"))
	c.submit(`form[action="/devices/press-02/labels"] button`, "/devices/press-02")
	c.waitText(".flash", "Labels of press-02 changed.", 10*time.Second)
	c.open("/groups")
	c.do(chromedp.SendKeys(chromedp.ID("g-name"), "north"))
	c.submit("#create-group", "/groups/north")
	c.do(chromedp.SendKeys(chromedp.ID("sel"), "site=north"))
	c.waitText("#sel-preview", "Joining: press-02", 10*time.Second)
	var north struct {
		Members []string `json:"members"`
	}
	p.cliJSON(&north, "groups", "show", "north")
	if len(north.Members) != 0 {
		t.Fatalf("the preview changed the group: %v", north.Members)
	}
	c.screenshot("group")
	c.submit("#set-selector", "/groups/north")
	c.waitText(".flash", "1 device(s) joined", 10*time.Second)
	c.waitText("#members", "press-02", 10*time.Second)

	// Assign the signed app, after reading the guidance.
	c.open("/apps/web")
	c.do(chromedp.SetValue(chromedp.ID("a-group"), "line-1"))
	c.submit("#check", "/apps/web?")
	c.waitText("#guidance", "Allow", 10*time.Second)
	c.submit("#assign", "/apps/web")
	c.waitText(".flash", "Assigned web 1.0.0 to line-1", 10*time.Second)

	// The device page reaches "running" by itself (htmx polls it).
	c.open("/devices/press-01")
	c.waitText(`#apps`, "running", 90*time.Second)
	c.waitText("#sync", "in_sync", 30*time.Second)
	c.waitText("#groups", "line-1", 5*time.Second)
	c.open("/apps/web")
	c.waitText("#assignments", "2 of 2 running", 90*time.Second)
	c.screenshot("app")

	// Something sideloaded behind the agent's back is quarantined, and the
	// event appears on the device page without a reload.
	c.open("/devices/press-01")
	appsDir := p.agentStatus("press-01").AppsDir
	dropped := filepath.Join(appsDir, "dropped")
	if err := os.MkdirAll(filepath.Join(dropped, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dropped, "bin", "miner"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c.waitText("#events", "sideload_blocked", 60*time.Second)
	c.screenshot("device")
	c.open("/")
	c.waitText("#security-events", "press-01", 10*time.Second)
	if n := c.text("#count-devices"); n != "2" {
		t.Errorf("overview counts %s devices, want 2", n)
	}
	c.screenshot("overview")

	// Readable on a tablet (820 × 1180, portrait): the main pages need no
	// sideways scrolling.
	c.do(chromedp.EmulateViewport(820, 1180, chromedp.EmulatePortrait))
	for _, path := range []string{"/", "/devices/press-01", "/groups/line-1", "/apps/web", "/security"} {
		c.open(path)
		if w := eval[int](c, `document.documentElement.scrollWidth - window.innerWidth`); w > 0 {
			t.Errorf("on a tablet, %s is %d px wider than the screen", path, w)
		}
		if path == "/" {
			c.screenshot("overview-tablet")
		}
	}
	c.do(chromedp.EmulateViewport(1280, 900))
	c.open("/security/audit?since=24h")
	c.waitText("#audit", "app.assign", 10*time.Second)
	c.screenshot("audit")
	c.open("/security")
	c.waitText("#publishers", "acme", 10*time.Second)
	c.screenshot("security")
	c.open("/access/roles")
	c.screenshot("roles")
	// A viewer: sees the fleet, not the admin pages; admin forms, even
	// posted by hand with the viewer's own valid CSRF token, are refused by
	// the API and change nothing.
	p.newUser("vera")
	p.mustCLI("grants", "create", "--role", "viewer", "--user", "vera")
	c.open("/access")
	c.waitText("#users", "vera", 10*time.Second)
	c.screenshot("access")
	c.open("/")
	c.submit(`form[action="/logout"] button`, "/login")
	c.login("vera", "vera has a long password")
	if nav := c.text("header nav"); strings.Contains(nav, "Access") {
		t.Errorf("the viewer's navigation offers Access: %q", nav)
	}
	for _, path := range []string{"/access", "/security/audit"} {
		c.open(path)
		if st := c.status(); st != 403 || !strings.Contains(c.text("#error"), "vera may not") {
			t.Errorf("viewer opens %s: %d %q, want 403 with the reason", path, st, c.text("#error"))
		}
	}
	c.open("/groups/line-1")
	c.do(chromedp.SendKeys(chromedp.ID("confirm"), "line-1"))
	c.submit("#delete-group", "/groups/line-1/delete")
	if st := c.status(); st != 403 || !strings.Contains(c.text("#error"), "device-group:delete") {
		t.Fatalf("viewer deletes line-1: %d %q, want 403", st, c.text("#error"))
	}
	// Forms the viewer's pages never show, built by hand.
	for _, f := range []struct{ action, fields string }{
		{"/groups", `name=rogue`},
		{"/apps/web/unassign", `group=line-1`},
		{"/access/invite", `name=mallory`},
	} {
		c.open("/groups")
		eval[bool](c, fmt.Sprintf(`(() => {
			const csrf = document.querySelector('form[action="/logout"] input[name=csrf]').value;
			const f = document.createElement('form'); f.method = 'post'; f.action = %q;
			for (const [k, v] of [['csrf', csrf], ...%q.split('&').map(kv => kv.split('='))]) {
				const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
			}
			document.body.appendChild(f); f.submit(); return true })()`, f.action, f.fields))
		eventually(t, 30*time.Second, func() (bool, string) {
			at := c.where()
			return at == f.action && eval[string](c, `document.readyState`) == "complete", "at " + at
		})
		if st := c.status(); st != 403 {
			t.Errorf("viewer posts %s: %d %q, want 403", f.action, st, c.text("#error"))
		}
	}
	var groups []struct {
		Name string `json:"name"`
	}
	p.cliJSON(&groups, "groups", "ls")
	var users []struct {
		Name string `json:"name"`
	}
	p.cliJSON(&users, "users", "ls")
	var app struct {
		Assignments []struct {
			Group string `json:"group"`
		} `json:"assignments"`
	}
	p.cliJSON(&app, "apps", "show", "web")
	if len(groups) != 2 || groups[0].Name != "line-1" || groups[1].Name != "north" || len(users) != 2 || len(app.Assignments) != 1 {
		raw, _ := json.Marshal([]any{groups, users, app})
		t.Fatalf("after the viewer's refused posts: %s", raw)
	}
}
