package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/edgewarden/edgewarden/controller/api"
	"github.com/edgewarden/edgewarden/controller/api/apitest"
	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol/access"
)

// publicRoutes are the routes that may be called without a session. A
// route declared Public that is not here fails TestEveryRouteAuthorizes:
// making a route public is a decision to take on purpose.
var publicRoutes = []string{
	"POST /api/v1/login",
	"GET /api/v1/banner",
	"POST /api/v1/enroll",
	"POST /api/v1/users/activate",
	"GET /api/v1/openapi.yaml",
	"GET /api/v1/openapi.json",
}

// pathValues fills a route's path parameters.
var pathValues = strings.NewReplacer(
	"{id}", "d1", "{name}", "g1", "{child}", "g2", "{version}", "1.0.0",
	"{group}", "g1", "{key}", "sha256:00", "{sha256}", strings.Repeat("0", 64),
)

// request sends method path with token (none when empty) and body, and
// returns the status, the Allow header and the body.
func request(t *testing.T, s *apitest.Server, method, path, token, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestEveryRouteAuthorizes walks the whole route table. Every route is
// public by declaration (and listed in publicRoutes), or it refuses a
// request without a session (401); an Authorized route also refuses a
// session whose user holds no grant (403, before its handler reads the
// body, and audited), or, for a listing, shows that user nothing.
func TestEveryRouteAuthorizes(t *testing.T) {
	s := apitest.NewServer(t, nil)
	c := admin(t, s)
	if _, err := c.CreateGroup(ctx, "g1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateGroup(ctx, "g2", ""); err != nil {
		t.Fatal(err)
	}
	enroll(t, s, c, "d1")
	if _, err := c.AddGroupDevices(ctx, "g1", []string{"d1"}); err != nil {
		t.Fatal(err)
	}
	s.AddUser(t, "nobody", "nobody-password", store.UserActive)
	nobody := loginToken(t, s, "nobody", "nobody-password")

	routes := api.Routes()
	if len(routes) < 60 {
		t.Fatalf("the route table has %d routes; it is broken", len(routes))
	}
	var public []string
	for _, rt := range routes {
		path := pathValues.Replace(rt.Path)
		name := rt.Pattern()
		switch rt.Auth {
		case api.Public:
			public = append(public, name)
			continue
		case api.Device:
			if status, _, _ := request(t, s, rt.Method, path, "", ""); status != http.StatusUnauthorized {
				t.Errorf("%s without a client certificate: %d, want 401", name, status)
			}
			continue
		}
		if status, _, body := request(t, s, rt.Method, path, "", "{}"); status != http.StatusUnauthorized {
			t.Errorf("%s without a session: %d %s, want 401", name, status, body)
		}
		switch {
		case rt.Auth == api.Authenticated:
			if rt.Rule == "" {
				t.Errorf("%s is open to every session but says no Rule", name)
			}
		case rt.Action == "":
			t.Errorf("%s is Authorized but declares no Action", name)
		case rt.List:
			status, _, body := request(t, s, rt.Method, path, nobody, "")
			if status != http.StatusOK || !showsNothing(body) {
				t.Errorf("%s for a user without grants: %d %s, want 200 showing nothing", name, status, body)
			}
		case rt.Body != "":
			// The resource is in the body: the handler checks once it has
			// read it (pushApp, tested with a real push in TestAppsNeedGrants).
		default:
			before := len(s.Audit(t))
			// A body the handler would refuse (400): the 403 proves the
			// middleware decided first.
			status, _, body := request(t, s, rt.Method, path, nobody, "{not json")
			if status != http.StatusForbidden || !strings.Contains(string(body), string(rt.Action)) {
				t.Errorf("%s for a user without grants: %d %s, want 403 naming %s", name, status, body, rt.Action)
			}
			if es := s.Audit(t); len(es) != before+1 || es[len(es)-1].Action != "access.denied" {
				t.Errorf("%s: the refusal was not audited as access.denied", name)
			}
		}
		if rt.Param != "" && !strings.Contains(rt.Path, "{"+rt.Param+"}") {
			t.Errorf("%s takes its resource from {%s}, which is not in its path", name, rt.Param)
		}
		for _, ck := range rt.Also {
			if ck.Action != "" {
				if _, ok := access.LookupAction(ck.Action); !ok {
					t.Errorf("%s: further check %q is not in the action catalogue", name, ck.Action)
				}
			}
		}
	}
	slices.Sort(public)
	want := slices.Sorted(slices.Values(publicRoutes))
	if !slices.Equal(public, want) {
		t.Errorf("public routes %v, want %v", public, want)
	}
	// Nothing changed for the grantless user's requests.
	if devs, groups, _ := s.Counts(t); devs != 1 || groups != 2 {
		t.Errorf("after refused requests: %d devices, %d groups; want 1 and 2", devs, groups)
	}
}

// showsNothing reports whether a listing's body is empty: [] or, for the
// fleet status, zero devices.
func showsNothing(body []byte) bool {
	var list []json.RawMessage
	if json.Unmarshal(body, &list) == nil {
		return len(list) == 0
	}
	var st apiv1.FleetStatus
	return json.Unmarshal(body, &st) == nil && st.Devices == 0
}

func loginToken(t *testing.T, s *apitest.Server, user, password string) string {
	t.Helper()
	resp, err := anon(t, s).Login(ctx, user, password)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Token
}

// TestWrongMethod: a known path with another method answers 405 with the
// allowed methods and a JSON error; an unknown path 404.
func TestWrongMethod(t *testing.T) {
	s := apitest.NewServer(t, nil)
	tok := adminToken(t, s)
	routes := api.Routes()
	for _, rt := range routes {
		path := pathValues.Replace(rt.Path)
		// The methods some route serves this concrete path with
		// (DELETE /users/activate is DELETE /users/{name}).
		var methods []string
		for _, other := range routes {
			if matches(other.Path, path) {
				methods = append(methods, other.Method)
			}
		}
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			if slices.Contains(methods, m) {
				continue
			}
			status, h, body := request(t, s, m, path, tok, "{}")
			var e apiv1.Error
			if status != http.StatusMethodNotAllowed || json.Unmarshal(body, &e) != nil || e.Error == "" {
				t.Errorf("%s %s: %d %s, want 405 with a JSON error", m, path, status, body)
				continue
			}
			allow := strings.Split(h.Get("Allow"), ", ")
			for _, want := range methods {
				if !slices.Contains(allow, want) {
					t.Errorf("%s %s: Allow %q lacks %s", m, path, h.Get("Allow"), want)
				}
			}
		}
	}
	if status, _, _ := request(t, s, http.MethodGet, "/api/v1/nothing-here", tok, ""); status != http.StatusNotFound {
		t.Errorf("unknown path: %d, want 404", status)
	}
}

// matches reports whether path matches pattern's segments ({x}: any).
func matches(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if !strings.HasPrefix(ps[i], "{") && ps[i] != xs[i] {
			return false
		}
	}
	return true
}

// TestDeletesAnswerAlike: every DELETE answers 204 No Content, with no
// body (the client reads the resource back when it needs it).
func TestDeletesAnswerAlike(t *testing.T) {
	for _, rt := range api.Routes() {
		if rt.Method == http.MethodDelete && (rt.Status != http.StatusNoContent || rt.Response != nil || rt.ResponseMedia != "") {
			t.Errorf("%s answers %d with %v: every DELETE answers 204 with no body", rt.Pattern(), rt.Status, rt.Response)
		}
	}
	s := apitest.NewServer(t, nil)
	c := admin(t, s)
	for _, g := range []string{"p", "q"} {
		if _, err := c.CreateGroup(ctx, g, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.IncludeGroup(ctx, "p", "q"); err != nil {
		t.Fatal(err)
	}
	tok := adminToken(t, s)
	for _, path := range []string{"/api/v1/groups/p/includes/q", "/api/v1/groups/q"} {
		status, _, body := request(t, s, http.MethodDelete, path, tok, "")
		if status != http.StatusNoContent || len(body) != 0 {
			t.Errorf("DELETE %s: %d %q, want 204 and no body", path, status, body)
		}
	}
}
