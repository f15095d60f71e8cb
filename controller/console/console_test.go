package console_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/edgewarden/edgewarden/controller/api"
	"github.com/edgewarden/edgewarden/controller/api/apitest"
	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/edgewarden/edgewarden/controller/console"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol/access"
)

var ctx = context.Background()

// site is the REST API on a real SQLite store with the console in front,
// as `serve` mounts them.
type site struct {
	*httptest.Server
	api *apitest.Server
}

func newSite(t *testing.T) *site {
	t.Helper()
	s := apitest.NewServer(t, nil)
	con, err := console.New(console.Options{API: s.API.Handler()})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", s.API.Handler())
	mux.Handle("/", con.Handler())
	ts := httptest.NewTLSServer(mux)
	t.Cleanup(ts.Close)
	return &site{Server: ts, api: s}
}

// admin is an API client logged in as the store's admin.
func (s *site) admin(t *testing.T) *client.Client {
	t.Helper()
	anon, err := client.New(client.Options{BaseURL: s.api.URL, CAFile: s.api.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := anon.Login(ctx, apitest.AdminUser, apitest.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Options{BaseURL: s.api.URL, CAFile: s.api.CAFile, Token: resp.Token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enroll enrolls devices with one enrollment token.
func (s *site) enroll(t *testing.T, c *client.Client, ids ...string) {
	t.Helper()
	tok, err := c.CreateEnrollToken(ctx, apiv1.CreateEnrollTokenRequest{Uses: len(ids)})
	if err != nil {
		t.Fatal(err)
	}
	anon, err := client.New(client.Options{BaseURL: s.api.URL, CAFile: s.api.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if _, err := anon.Enroll(ctx, apiv1.EnrollRequest{Token: tok.Token, CSRPEM: apitest.NewCSR(t, id)}); err != nil {
			t.Fatal(err)
		}
	}
}

// browser is a cookie-keeping HTTP client that does not follow redirects.
type browser struct {
	t    *testing.T
	s    *site
	http *http.Client
}

func (s *site) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	hc := s.Client()
	hc.Jar = jar
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: t, s: s, http: hc}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values) answer {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.s.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(raw)}
}

func (b *browser) get(path string) answer { return b.do("GET", path, nil) }
func (b *browser) post(path string, form url.Values) answer {
	return b.do("POST", path, form)
}

// pathValues fills a page's path parameters.
var pathValues = strings.NewReplacer("{$}", "", "{name}", "g1", "{id}", "1", "{child}", "g2", "{version}", "1.0.0", "{key}", "sha256:00")

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token of the first form of a page.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	a := b.get(path)
	m := csrfField.FindStringSubmatch(a.body)
	if a.status != http.StatusOK || m == nil {
		b.t.Fatalf("GET %s: %d, no CSRF token in:\n%s", path, a.status, a.body)
	}
	return m[1]
}

func (b *browser) login(user, password string) answer {
	b.t.Helper()
	return b.post("/login", url.Values{"csrf": {b.csrf("/login")}, "user": {user}, "password": {password}})
}

func (b *browser) mustLogin(user, password string) {
	b.t.Helper()
	if a := b.login(user, password); a.status != http.StatusSeeOther || a.header.Get("Location") != "/" {
		b.t.Fatalf("login %s: %d %s\n%s", user, a.status, a.header.Get("Location"), a.body)
	}
}

// TestLoginSessionCookie: the login page shows the banner and sets no
// session; a login sets the session cookie HttpOnly, Secure and
// SameSite=Strict; a wrong password shows the API's refusal and sets none;
// logging out ends the cookie.
func TestLoginSessionCookie(t *testing.T) {
	s := newSite(t)
	if _, err := s.admin(t).SetBanner(ctx, "Authorized use only. <script>alert(1)</script>"); err != nil {
		t.Fatal(err)
	}
	b := s.browser(t)
	if a := b.get("/"); a.status != http.StatusSeeOther || a.header.Get("Location") != "/login" {
		t.Fatalf("GET / without a session: %d %q, want 303 to /login", a.status, a.header.Get("Location"))
	}
	if a := b.get("/devices/x?y=1"); a.status != http.StatusSeeOther || a.header.Get("Location") != "/login?next=%2Fdevices%2Fx%3Fy%3D1" {
		t.Fatalf("GET /devices/x without a session: %d %q, want 303 to the login page and back", a.status, a.header.Get("Location"))
	}
	page := b.get("/login")
	if !strings.Contains(page.body, "Authorized use only. &lt;script&gt;") || strings.Contains(page.body, "<script>alert") {
		t.Fatalf("the login page does not show the escaped banner:\n%s", page.body)
	}
	if csp := page.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}

	if a := b.login("admin", "wrong"); a.status != http.StatusUnauthorized || !strings.Contains(a.body, "wrong user name or password") {
		t.Fatalf("wrong password: %d\n%s", a.status, a.body)
	}
	a := b.login(apitest.AdminUser, apitest.AdminPassword)
	if a.status != http.StatusSeeOther {
		t.Fatalf("login: %d\n%s", a.status, a.body)
	}
	var session *http.Cookie
	for _, c := range (&http.Response{Header: a.header}).Cookies() {
		if c.Name == "__Host-edgewarden-session" && c.Value != "" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || !session.Secure || session.SameSite != http.SameSiteStrictMode || session.Path != "/" {
		t.Fatalf("session cookie %+v: want HttpOnly, Secure, SameSite=Strict, Path=/", session)
	}
	if o := b.get("/"); o.status != http.StatusOK || !strings.Contains(o.body, `id="whoami">admin<`) {
		t.Fatalf("overview after login: %d\n%s", o.status, o.body)
	}
	csrf := b.csrf("/")
	if o := b.post("/logout", url.Values{"csrf": {csrf}}); o.status != http.StatusSeeOther {
		t.Fatalf("logout: %d", o.status)
	}
	if o := b.get("/"); o.status != http.StatusSeeOther {
		t.Fatalf("after logout GET /: %d, want the login page", o.status)
	}
	// The session ended on the controller: a copy of the cookie is refused.
	stolen, err := client.New(client.Options{BaseURL: s.api.URL, CAFile: s.api.CAFile, Token: session.Value})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stolen.ListDevices(ctx); !client.IsStatus(err, http.StatusUnauthorized) {
		t.Fatalf("the logged-out session's token: %v, want 401", err)
	}
}

// TestLoginNextStaysHere: the page to return to after login is a path on
// this controller; anything else goes to the overview.
func TestLoginNextStaysHere(t *testing.T) {
	s := newSite(t)
	for next, want := range map[string]string{"/groups": "/groups", "//evil.example/": "/", "https://evil.example/": "/", `/\evil.example`: "/"} {
		b := s.browser(t)
		a := b.post("/login", url.Values{"csrf": {b.csrf("/login")}, "user": {apitest.AdminUser}, "password": {apitest.AdminPassword}, "next": {next}})
		if a.status != http.StatusSeeOther || a.header.Get("Location") != want {
			t.Errorf("login with next %q: %d to %q, want %q", next, a.status, a.header.Get("Location"), want)
		}
	}
}

// TestFormsNeedCSRF posts every form of the page table with a logged-in
// admin's session but without (or with a wrong) CSRF token: each is
// refused with 403 and nothing changes. The login form needs its token too.
func TestFormsNeedCSRF(t *testing.T) {
	s := newSite(t)
	c := s.admin(t)
	if _, err := c.CreateGroup(ctx, "g1", ""); err != nil {
		t.Fatal(err)
	}
	b := s.browser(t)
	if a := b.post("/login", url.Values{"user": {apitest.AdminUser}, "password": {apitest.AdminPassword}}); a.status != http.StatusForbidden {
		t.Fatalf("login without its CSRF token: %d, want 403", a.status)
	}
	b.mustLogin(apitest.AdminUser, apitest.AdminPassword)
	auditBefore := len(s.api.Audit(t))
	posts := 0
	for _, p := range console.Pages() {
		if p.Method != http.MethodPost || p.Access == console.Public {
			continue
		}
		posts++
		path := pathValues.Replace(p.Path)
		form := url.Values{"name": {"new"}, "confirm": {"g1"}, "device": {"d1"}, "group": {"g1"}, "role": {"viewer"}, "subject": {"x"}, "version": {"1.0.0"}}
		for _, token := range []string{"", "forged"} {
			if token != "" {
				form.Set("csrf", token)
			}
			a := b.post(path, form)
			if a.status != http.StatusForbidden || !strings.Contains(a.body, "CSRF") {
				t.Errorf("POST %s with CSRF %q: %d, want 403 naming the CSRF token\n%s", path, token, a.status, a.body)
			}
		}
	}
	if posts < 10 {
		t.Fatalf("only %d form targets in the page table", posts)
	}
	if es := s.api.Audit(t); len(es) != auditBefore {
		t.Errorf("refused forms reached the API: audit %d -> %d entries (%+v)", auditBefore, len(es), es[len(es)-1])
	}
	if _, groups, _ := s.api.Counts(t); groups != 1 {
		t.Errorf("after refused forms: %d groups, want 1", groups)
	}
	if gs, _ := c.ListGroups(ctx); len(gs) != 1 || gs[0].Name != "g1" {
		t.Errorf("groups after refused forms: %+v", gs)
	}
}

// TestViewerCannotUseAdminPages: a user with the viewer role everywhere
// sees the fleet, but the admin pages answer 403, and admin forms posted
// with the viewer's own valid CSRF token are refused by the API (403,
// audited) and change nothing.
func TestViewerCannotUseAdminPages(t *testing.T) {
	s := newSite(t)
	c := s.admin(t)
	if _, err := c.CreateGroup(ctx, "g1", ""); err != nil {
		t.Fatal(err)
	}
	s.api.AddUser(t, "vera", "vera-password-1", store.UserActive)
	s.api.Grant(t, access.Subject{Kind: access.SubjectUser, Name: "vera"}, access.RoleViewer, access.Global())
	b := s.browser(t)
	b.mustLogin("vera", "vera-password-1")

	if a := b.get("/groups"); a.status != http.StatusOK || !strings.Contains(a.body, "g1") || strings.Contains(a.body, `action="/groups"`) {
		t.Fatalf("viewer's groups page: %d (want 200, g1, no create form)\n%s", a.status, a.body)
	}
	for _, path := range []string{"/access", "/security/audit", "/security/audit.jsonl"} {
		if a := b.get(path); a.status != http.StatusForbidden || !strings.Contains(a.body, "vera may not") {
			t.Errorf("viewer GET %s: %d, want 403 with the API's reason\n%s", path, a.status, a.body)
		}
	}
	csrf := b.csrf("/")
	deniedBefore := denials(s.api.Audit(t))
	for path, form := range map[string]url.Values{
		"/groups":                            {"name": {"rogue"}},
		"/groups/g1/delete":                  {"confirm": {"g1"}},
		"/access/invite":                     {"name": {"mallory"}},
		"/access/users/admin/disable":        {},
		"/access/grants":                     {"role": {"admin"}, "kind": {"user"}, "subject": {"vera"}, "scope_kind": {"global"}},
		"/groups/g1/share":                   {"role": {"viewer"}, "kind": {"user"}, "subject": {"admin"}},
		"/security/sideload":                 {"policy": {"allow"}},
		"/security/publishers":               {"name": {"evil"}, "key": {publicKeyPEM(t)}},
		"/access/roles":                      {"name": {"everything"}, "action": {"controller:manage-roles"}},
		"/access/users/admin/reset-password": {},
	} {
		form.Set("csrf", csrf)
		if a := b.post(path, form); a.status != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d, want 403\n%s", path, a.status, a.body)
		}
	}
	if n := denials(s.api.Audit(t)) - deniedBefore; n != 10 {
		t.Errorf("%d refusals audited as access.denied, want 10", n)
	}
	if st, err := c.Settings(ctx); err != nil || st.Sideload != "deny" {
		t.Errorf("sideload policy after the viewer's post: %+v %v", st, err)
	}
	if ps, err := c.ListPublishers(ctx); err != nil || len(ps) != 0 {
		t.Errorf("publishers after the viewer's post: %+v %v", ps, err)
	}
	if _, err := c.GetRole(ctx, "everything"); !client.IsStatus(err, http.StatusNotFound) {
		t.Errorf("the viewer's role exists: %v", err)
	}
	gs, err := c.ListGroups(ctx)
	if err != nil || len(gs) != 1 || gs[0].Name != "g1" {
		t.Errorf("groups after the viewer's posts: %+v %v", gs, err)
	}
	us, err := c.ListUsers(ctx)
	if err != nil || len(us) != 2 {
		t.Errorf("users after the viewer's posts: %+v %v", us, err)
	}
	for _, u := range us {
		if u.State != store.UserActive {
			t.Errorf("user %s is %s after the viewer's posts", u.Name, u.State)
		}
	}
	grants, err := c.ListGrants(ctx)
	if err != nil || len(grants) != 2 { // admin's and vera's
		t.Errorf("grants after the viewer's posts: %+v %v", grants, err)
	}
}

func denials(es []store.AuditEntry) int {
	n := 0
	for _, e := range es {
		if e.Action == "access.denied" {
			n++
		}
	}
	return n
}

// TestAdminFlows drives the group, app-less and access forms as an admin
// and checks the result through the API.
func TestAdminFlows(t *testing.T) {
	s := newSite(t)
	c := s.admin(t)
	b := s.browser(t)
	b.mustLogin(apitest.AdminUser, apitest.AdminPassword)
	csrf := b.csrf("/groups")
	if a := b.post("/groups", url.Values{"csrf": {csrf}, "name": {"line-1"}}); a.status != http.StatusSeeOther || a.header.Get("Location") != "/groups/line-1?ok=Group+line-1+created." {
		t.Fatalf("create group: %d %q\n%s", a.status, a.header.Get("Location"), a.body)
	}
	if a := b.post("/groups", url.Values{"csrf": {csrf}, "name": {"Bad Name"}}); a.status != http.StatusBadRequest {
		t.Fatalf("create a group with a bad name: %d, want the API's 400\n%s", a.status, a.body)
	}
	if a := b.post("/groups/line-1/delete", url.Values{"csrf": {csrf}, "confirm": {"line-2"}}); a.status != http.StatusBadRequest {
		t.Fatalf("delete with the wrong confirmation: %d, want 400", a.status)
	}
	if _, err := c.GetGroup(ctx, "line-1"); err != nil {
		t.Fatalf("the group went with a wrong confirmation: %v", err)
	}
	// The selector's live preview is the API's dry run: nothing changes
	// until it is saved.
	s.enroll(t, c, "d1", "d2")
	if _, err := c.SetDeviceLabels(ctx, "d1", map[string]string{"site": "north"}); err != nil {
		t.Fatal(err)
	}
	if a := b.do("GET", "/groups/line-1/selector?selector=site%3Dnorth", nil); a.status != http.StatusOK || !strings.Contains(a.body, `<span id="sel-added">d1</span>`) {
		t.Fatalf("selector preview: %d\n%s", a.status, a.body)
	}
	if a := b.get("/groups/line-1/selector?selector=site%3D%3D"); !strings.Contains(a.body, `class="error"`) {
		t.Errorf("a bad selector's preview shows no error:\n%s", a.body)
	}
	if g, _ := c.GetGroup(ctx, "line-1"); g.Selector != "" || len(g.Members) != 0 {
		t.Fatalf("the preview changed the group: %+v", g)
	}
	if a := b.post("/groups/line-1/selector", url.Values{"csrf": {csrf}, "selector": {"site=north"}}); a.status != http.StatusSeeOther {
		t.Fatalf("set selector: %d\n%s", a.status, a.body)
	}
	if g, _ := c.GetGroup(ctx, "line-1"); g.Selector != "site=north" || strings.Join(g.Members, ",") != "d1" {
		t.Fatalf("after saving the selector: %+v", g)
	}
	if a := b.post("/groups/line-1/rename", url.Values{"csrf": {csrf}, "to": {"line-9"}}); a.status != http.StatusSeeOther {
		t.Fatalf("rename: %d\n%s", a.status, a.body)
	}
	if a := b.post("/groups/line-9/rename", url.Values{"csrf": {csrf}, "to": {"line-1"}}); a.status != http.StatusSeeOther {
		t.Fatalf("rename back: %d\n%s", a.status, a.body)
	}
	if a := b.post("/access/invite", url.Values{"csrf": {csrf}, "name": {"olga"}}); a.status != http.StatusOK || !strings.Contains(a.body, `id="invitation"`) {
		t.Fatalf("invite: %d\n%s", a.status, a.body)
	}
	if a := b.get("/access/explain?user=olga&action=device:view&group=line-1"); a.status != http.StatusOK || !strings.Contains(a.body, "Denied") {
		t.Fatalf("explain: %d\n%s", a.status, a.body)
	}
	if a := b.post("/groups/line-1/delete", url.Values{"csrf": {csrf}, "confirm": {"line-1"}}); a.status != http.StatusSeeOther {
		t.Fatalf("delete: %d\n%s", a.status, a.body)
	}
	if _, err := c.GetGroup(ctx, "line-1"); !client.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	// The audit export is JSON lines of the API's entries.
	a := b.get("/security/audit.jsonl?kind=change")
	if a.status != http.StatusOK || !strings.HasPrefix(a.header.Get("Content-Type"), "application/jsonl") {
		t.Fatalf("export: %d %s", a.status, a.header.Get("Content-Type"))
	}
	lines := strings.Split(strings.TrimSpace(a.body), "\n")
	var kinds []string
	for _, l := range lines {
		var e apiv1.AuditEntry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("export line %q: %v", l, err)
		}
		kinds = append(kinds, e.Kind+" "+e.Action)
	}
	if !slices.Contains(kinds, "change group.create") || !slices.Contains(kinds, "change group.delete") || slices.ContainsFunc(kinds, func(k string) bool { return !strings.HasPrefix(k, "change ") }) {
		t.Errorf("exported kinds %v", kinds)
	}
}

// TestPageTable: every page is served by its own pattern, calls only
// routes of the API's table, and only the login page is public.
func TestPageTable(t *testing.T) {
	ops := map[string]bool{}
	for _, rt := range api.Routes() {
		ops[rt.Op] = true
	}
	for _, p := range console.Pages() {
		for _, op := range p.Calls {
			if !ops[op] {
				t.Errorf("%s calls %q, which is not a route of the API", p.Pattern(), op)
			}
		}
		if p.Access == console.Public && p.Path != "/login" {
			t.Errorf("%s is public; only the login page may be", p.Pattern())
		}
		if p.Summary == "" {
			t.Errorf("%s says no Summary", p.Pattern())
		}
	}
	s := newSite(t)
	b := s.browser(t)
	for _, p := range console.Pages() {
		if p.Access == console.Public {
			continue
		}
		path := pathValues.Replace(p.Path)
		if a := b.do(p.Method, path, url.Values{}); a.status != http.StatusSeeOther || !strings.HasPrefix(a.header.Get("Location"), "/login") {
			t.Errorf("%s %s without a session: %d %q, want 303 to /login", p.Method, path, a.status, a.header.Get("Location"))
		}
	}
	if a := b.get("/no/such/page"); a.status != http.StatusNotFound || a.header.Get("Content-Security-Policy") == "" {
		t.Errorf("unknown page: %d", a.status)
	}
}

// TestStaticIntegrity: the layout loads htmx with the integrity hash of
// the embedded file, and the console serves that file.
func TestStaticIntegrity(t *testing.T) {
	raw, err := os.ReadFile("static/htmx.min.js")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum384(raw)
	want := "sha384-" + base64.StdEncoding.EncodeToString(sum[:])
	layout, err := os.ReadFile("templates/layout.html")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(layout), `integrity="`+want+`"`) {
		t.Errorf("layout.html does not load htmx with integrity %s", want)
	}
	s := newSite(t)
	a := s.browser(t).get("/static/htmx.min.js")
	if a.status != http.StatusOK || a.body != string(raw) {
		t.Errorf("GET /static/htmx.min.js: %d, %d bytes", a.status, len(a.body))
	}
	if !strings.Contains(string(raw), `version:"2.0.11"`) {
		t.Errorf("htmx.min.js is not 2.0.11 (update static/README.md and the integrity)")
	}
}

// publicKeyPEM is a fresh ECDSA P-256 public key in PEM.
func publicKeyPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// TestSecurityAndRoleForms: trusting and removing a publisher key, the
// sideload policy and a group's override, a custom role from the action
// checklist, a team and its members; each checked through the API.
func TestSecurityAndRoleForms(t *testing.T) {
	s := newSite(t)
	c := s.admin(t)
	if _, err := c.CreateGroup(ctx, "g1", ""); err != nil {
		t.Fatal(err)
	}
	b := s.browser(t)
	b.mustLogin(apitest.AdminUser, apitest.AdminPassword)
	csrf := b.csrf("/security")
	post := func(path string, form url.Values) {
		t.Helper()
		form.Set("csrf", csrf)
		if a := b.post(path, form); a.status != http.StatusSeeOther {
			t.Fatalf("POST %s: %d\n%s", path, a.status, a.body)
		}
	}
	post("/security/publishers", url.Values{"name": {"acme"}, "key": {publicKeyPEM(t)}})
	ps, err := c.ListPublishers(ctx)
	if err != nil || len(ps) != 1 || len(ps[0].Keys) != 1 {
		t.Fatalf("publishers: %+v %v", ps, err)
	}
	if a := b.get("/security"); !strings.Contains(a.body, "/security/publishers/acme/keys/"+url.PathEscape(ps[0].Keys[0].ID)+"/remove") {
		t.Fatalf("the security page offers no removal of the key:\n%s", a.body)
	}
	post("/security/publishers/acme/keys/"+url.PathEscape(ps[0].Keys[0].ID)+"/remove", url.Values{})
	if ps, _ := c.ListPublishers(ctx); len(ps) != 1 || ps[0].Keys[0].State == "trusted" {
		t.Errorf("after removing the key: %+v", ps)
	}
	post("/security/sideload", url.Values{"policy": {"allow"}})
	post("/security/sideload", url.Values{"group": {"g1"}, "policy": {"deny"}})
	st, err := c.Settings(ctx)
	if err != nil || st.Sideload != "allow" || len(st.SideloadOverrides) != 1 || st.SideloadOverrides[0].Policy != "deny" {
		t.Fatalf("settings: %+v %v", st, err)
	}
	post("/security/sideload", url.Values{"group": {"g1"}, "policy": {"inherit"}})
	if st, _ := c.Settings(ctx); len(st.SideloadOverrides) != 0 {
		t.Errorf("override after inherit: %+v", st.SideloadOverrides)
	}
	if a := b.post("/security/sideload", url.Values{"csrf": {csrf}, "policy": {"maybe"}}); a.status != http.StatusBadRequest {
		t.Errorf("an unknown policy: %d, want the API's 400", a.status)
	}

	if a := b.get("/access/roles"); a.status != http.StatusOK || !strings.Contains(a.body, `<legend>device-group</legend>`) || !strings.Contains(a.body, `value="device:logs"`) {
		t.Fatalf("roles page: %d\n%s", a.status, a.body)
	}
	post("/access/roles", url.Values{"name": {"log-reader"}, "description": {"reads logs"}, "action": {"device:view", "device:logs"}, "shareable": {"on"}})
	r, err := c.GetRole(ctx, "log-reader")
	if err != nil || len(r.Actions) != 2 || !r.Shareable {
		t.Fatalf("role: %+v %v", r, err)
	}
	if a := b.get("/access/roles?edit=log-reader"); !strings.Contains(a.body, `value="device:logs" id="act-device:logs" checked`) {
		t.Errorf("the edit form does not tick the role's actions")
	}
	post("/access/roles/log-reader", url.Values{"description": {"reads logs"}, "action": {"device:view"}})
	if r, _ := c.GetRole(ctx, "log-reader"); len(r.Actions) != 1 || r.Shareable {
		t.Errorf("role after edit: %+v", r)
	}
	post("/access/teams", url.Values{"name": {"shift-a"}})
	post("/access/teams/shift-a/members", url.Values{"user": {"admin"}})
	if ts, _ := c.ListTeams(ctx); len(ts) != 1 || strings.Join(ts[0].Members, ",") != "admin" {
		t.Errorf("teams: %+v", ts)
	}
	post("/access/teams/shift-a/members", url.Values{"user": {"admin"}, "remove": {"on"}})
	post("/access/teams/shift-a/delete", url.Values{})
	post("/access/roles/log-reader/delete", url.Values{})
	if ts, _ := c.ListTeams(ctx); len(ts) != 0 {
		t.Errorf("teams after delete: %+v", ts)
	}
}

// TestPasswordAndAccounts: a user changes their own password on the Me
// page (a wrong old password or a mismatched confirmation changes
// nothing); the new session replaces the cookie and the old token is
// refused. An admin disables, enables and resets a user's password (the
// activation token shown once).
func TestPasswordAndAccounts(t *testing.T) {
	s := newSite(t)
	c := s.admin(t)
	s.api.AddUser(t, "olga", "olga-password-1", store.UserActive)
	b := s.browser(t)
	b.mustLogin("olga", "olga-password-1")
	if a := b.get("/me"); a.status != http.StatusOK || !strings.Contains(a.body, `id="me-name">olga`) {
		t.Fatalf("me: %d\n%s", a.status, a.body)
	}
	csrf := b.csrf("/me")
	if a := b.post("/me/password", url.Values{"csrf": {csrf}, "old": {"wrong-password-1"}, "new": {"a-much-better-one-9"}, "confirm": {"a-much-better-one-9"}}); a.status != http.StatusForbidden || !strings.Contains(a.body, `id="error"`) {
		t.Fatalf("wrong old password: %d\n%s", a.status, a.body)
	}
	if a := b.post("/me/password", url.Values{"csrf": {csrf}, "old": {"olga-password-1"}, "new": {"a-much-better-one-9"}, "confirm": {"a-much-better-one-8"}}); a.status != http.StatusBadRequest {
		t.Fatalf("mismatched confirmation: %d", a.status)
	}
	old := b.cookie()
	if a := b.post("/me/password", url.Values{"csrf": {csrf}, "old": {"olga-password-1"}, "new": {"a-much-better-one-9"}, "confirm": {"a-much-better-one-9"}}); a.status != http.StatusSeeOther {
		t.Fatalf("change password: %d\n%s", a.status, a.body)
	}
	if b.cookie() == old {
		t.Fatal("the session cookie was not replaced")
	}
	if a := b.get("/me"); a.status != http.StatusOK {
		t.Fatalf("after the change, with the new cookie: %d", a.status)
	}
	stale, _ := client.New(client.Options{BaseURL: s.api.URL, CAFile: s.api.CAFile, Token: old})
	if _, err := stale.ListDevices(ctx); !client.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("the old session after a password change: %v, want 401", err)
	}
	if b2 := s.browser(t); b2.login("olga", "a-much-better-one-9").status != http.StatusSeeOther {
		t.Error("the new password does not log in")
	}

	a := s.browser(t)
	a.mustLogin(apitest.AdminUser, apitest.AdminPassword)
	acsrf := a.csrf("/access")
	for _, step := range []struct{ path, want string }{{"/access/users/olga/disable", "disabled"}, {"/access/users/olga/enable", "active"}} {
		if r := a.post(step.path, url.Values{"csrf": {acsrf}}); r.status != http.StatusSeeOther {
			t.Fatalf("POST %s: %d\n%s", step.path, r.status, r.body)
		}
		us, _ := c.ListUsers(ctx)
		for _, u := range us {
			if u.Name == "olga" && u.State != step.want {
				t.Errorf("after %s olga is %s, want %s", step.path, u.State, step.want)
			}
		}
	}
	r := a.post("/access/users/olga/reset-password", url.Values{"csrf": {acsrf}})
	if r.status != http.StatusOK || !strings.Contains(r.body, "Reset the password of") || !strings.Contains(r.body, `class="secret"`) {
		t.Fatalf("reset password: %d\n%s", r.status, r.body)
	}
}

// cookie is the browser's session cookie.
func (b *browser) cookie() string {
	u, _ := url.Parse(b.s.URL)
	for _, c := range b.http.Jar.Cookies(u) {
		if c.Name == "__Host-edgewarden-session" {
			return c.Value
		}
	}
	return ""
}
