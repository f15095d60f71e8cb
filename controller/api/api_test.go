package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/controller/api"
	"github.com/edgewarden/edgewarden/controller/api/apitest"
	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/auth"
	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/golang-jwt/jwt/v5"
)

var ctx = context.Background()

// anon returns a client without a session.
func anon(t *testing.T, s *apitest.Server) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{BaseURL: s.URL, CAFile: s.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// admin returns a client logged in as the admin.
func admin(t *testing.T, s *apitest.Server) *client.Client {
	t.Helper()
	return loginAs(t, s, apitest.AdminUser, apitest.AdminPassword)
}

func loginAs(t *testing.T, s *apitest.Server, user, password string) *client.Client {
	t.Helper()
	resp, err := anon(t, s).Login(ctx, user, password)
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	c, err := client.New(client.Options{BaseURL: s.URL, CAFile: s.CAFile, Token: resp.Token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wantStatus fails unless err is a client error with status whose message
// contains every one of parts.
func wantStatus(t *testing.T, err error, status int, parts ...string) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v (%T), want HTTP %d", err, err, status)
	}
	if e.Status != status {
		t.Fatalf("got HTTP %d %q, want %d", e.Status, e.Message, status)
	}
	for _, p := range parts {
		if !strings.Contains(e.Message, p) {
			t.Errorf("message %q does not contain %q", e.Message, p)
		}
	}
}

// raw sends a request with a raw body and returns status and decoded error.
func raw(t *testing.T, s *apitest.Server, method, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e apiv1.Error
	_ = json.Unmarshal(b, &e)
	if resp.StatusCode >= 400 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("%s %s: error response has Content-Type %q", method, path, resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, e.Error
}

func adminToken(t *testing.T, s *apitest.Server) string {
	t.Helper()
	resp, err := anon(t, s).Login(ctx, apitest.AdminUser, apitest.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Token
}

func auditActions(t *testing.T, s *apitest.Server) []string {
	var out []string
	for _, e := range s.Audit(t) {
		out = append(out, e.Action)
	}
	return out
}

func TestLogin(t *testing.T) {
	s := apitest.NewServer(t, nil)
	if err := s.Store.SetSetting(ctx, api.SettingBanner, "Authorized use only."); err != nil {
		t.Fatal(err)
	}
	resp, err := anon(t, s).Login(ctx, apitest.AdminUser, apitest.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Token == "" || resp.Banner != "Authorized use only." || !resp.ExpiresAt.After(time.Now()) {
		t.Fatalf("login response %+v", resp)
	}
	b, err := anon(t, s).Banner(ctx)
	if err != nil || b.Banner != "Authorized use only." {
		t.Fatalf("banner: %+v, %v", b, err)
	}
	last := s.Audit(t)[len(s.Audit(t))-1]
	if last.Action != "user.login" || last.Actor != apitest.AdminUser || last.Source == "" {
		t.Errorf("login audit entry %+v", last)
	}

	_, err = anon(t, s).Login(ctx, apitest.AdminUser, "wrong-password")
	wantStatus(t, err, http.StatusUnauthorized, "wrong user name or password")
	_, err = anon(t, s).Login(ctx, "nobody", "whatever-password")
	wantStatus(t, err, http.StatusUnauthorized, "wrong user name or password")
	_, err = anon(t, s).Login(ctx, "", "")
	wantStatus(t, err, http.StatusBadRequest, "required")

	s.AddUser(t, "dora", "dora-password", store.UserDisabled)
	_, err = anon(t, s).Login(ctx, "dora", "dora-password")
	wantStatus(t, err, http.StatusUnauthorized, "disabled")

	failed := 0
	for _, e := range s.Audit(t) {
		if e.Action == "user.login-failed" {
			failed++
			if e.Kind != "security" {
				t.Errorf("failed login audited as %q", e.Kind)
			}
		}
	}
	if failed != 3 {
		t.Errorf("%d failed logins audited, want 3", failed)
	}
}

func TestBadRequestBodies(t *testing.T) {
	s := apitest.NewServer(t, nil)
	tok := adminToken(t, s)
	cases := []struct {
		name, body string
		status     int
		want       string
	}{
		{"not json", "{nope", 400, "not valid JSON"},
		{"empty", "", 400, "empty"},
		{"unknown field", `{"name":"g1","colour":"red"}`, 400, `unknown field "colour"`},
		{"wrong type", `{"name":5}`, 400, `"name" must be a JSON string`},
		{"two values", `{"name":"g1"}{"name":"g2"}`, 400, "more than one JSON value"},
		{"too large", `{"name":"` + strings.Repeat("a", 2<<20) + `"}`, 413, "larger than the limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, msg := raw(t, s, "POST", "/api/v1/groups", tok, c.body)
			if status != c.status || !strings.Contains(msg, c.want) {
				t.Errorf("got %d %q, want %d containing %q", status, msg, c.status, c.want)
			}
		})
	}
	if _, groups, _ := s.Counts(t); groups != 0 {
		t.Errorf("bad requests stored %d groups", groups)
	}
	if status, msg := raw(t, s, "GET", "/api/v1/nothing-here", tok, ""); status != 404 || !strings.Contains(msg, "no such endpoint") {
		t.Errorf("unknown endpoint: %d %q", status, msg)
	}
}

func TestEndpointsNeedSession(t *testing.T) {
	s := apitest.NewServer(t, nil)
	// Every route that takes a session, from the route table.
	var endpoints [][2]string
	for _, rt := range api.Routes() {
		if rt.Auth == api.Authorized || rt.Auth == api.Authenticated {
			endpoints = append(endpoints, [2]string{rt.Method, pathValues.Replace(rt.Path)})
		}
	}
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	forged := map[string]string{
		"none": "",
		"junk": "junk",
		"alg none": func() string {
			tok, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
				"sub": apitest.AdminUser, "aud": "edgewarden-controller", "iss": "edgewarden-controller",
				"exp": time.Now().Add(time.Hour).Unix(), "jti": "x",
			}).SignedString(jwt.UnsafeAllowNoneSignatureType)
			return tok
		}(),
		"other key": func() string {
			tok, _ := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
				"sub": apitest.AdminUser, "aud": "edgewarden-controller", "iss": "edgewarden-controller",
				"exp": time.Now().Add(time.Hour).Unix(), "jti": "x",
			}).SignedString(otherKey)
			return tok
		}(),
	}
	for name, tok := range forged {
		for _, ep := range endpoints {
			status, msg := raw(t, s, ep[0], ep[1], tok, "{}")
			if status != http.StatusUnauthorized || !strings.Contains(msg, "edgewarden login") {
				t.Errorf("%s %s with %s token: %d %q, want 401 telling to log in", ep[0], ep[1], name, status, msg)
			}
		}
	}
	if n := len(s.Audit(t)); n != 0 {
		t.Errorf("unauthenticated requests wrote %d audit entries: %v", n, auditActions(t, s))
	}

	// A valid session stops working when its user is disabled.
	s.AddUser(t, "eve", "eve-password", store.UserActive)
	c := loginAs(t, s, "eve", "eve-password")
	if _, err := c.ListDevices(ctx); err != nil {
		t.Fatal(err)
	}
	s.SetUserState(t, "eve", store.UserDisabled)
	_, err := c.ListDevices(ctx)
	wantStatus(t, err, http.StatusUnauthorized, `"eve" is disabled`)
}

func TestSessionExpiredAndTampered(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	sessions, _ := auth.NewSessions(auth.SessionOptions{Key: key})
	past, _ := auth.NewSessions(auth.SessionOptions{Key: key, TTL: time.Hour, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	s := apitest.NewServer(t, func(o *api.Options) { o.Sessions = sessions })

	admin, err := s.Store.GetUser(context.Background(), apitest.AdminUser)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := sessions.Issue(admin.ID, admin.SessionGen)
	if err != nil {
		t.Fatal(err)
	}
	if status, msg := raw(t, s, "GET", "/api/v1/devices", tok, ""); status != 200 {
		t.Fatalf("fresh token: %d %q", status, msg)
	}
	old, _, _ := past.Issue(admin.ID, admin.SessionGen)
	if status, msg := raw(t, s, "GET", "/api/v1/devices", old, ""); status != 401 || !strings.Contains(msg, "session expired") {
		t.Errorf("expired token: %d %q", status, msg)
	}
	// Tampered: change the payload to name another user.
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	// The last character is changed to one it is not, so the payload
	// really names another id whatever the id ends in.
	last := "0"
	if strings.HasSuffix(admin.ID, "0") {
		last = "1"
	}
	payload = []byte(strings.Replace(string(payload), admin.ID, admin.ID[:len(admin.ID)-1]+last, 1))
	if orig, _ := base64.RawURLEncoding.DecodeString(parts[1]); string(payload) == string(orig) {
		t.Fatal("the tampered payload equals the original")
	}
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
	if status, msg := raw(t, s, "GET", "/api/v1/devices", forged, ""); status != 401 || !strings.Contains(msg, "invalid session token") {
		t.Errorf("tampered token: %d %q", status, msg)
	}
	// Scheme other than Bearer.
	if status, _ := raw(t, s, "GET", "/api/v1/devices", "", ""); status != 401 {
		t.Errorf("no token: %d", status)
	}
}

func TestEnrollmentFlow(t *testing.T) {
	s := apitest.NewServer(t, nil)
	c := admin(t, s)
	if _, err := c.CreateGroup(ctx, "line-1", ""); err != nil {
		t.Fatal(err)
	}
	tok, err := c.CreateEnrollToken(ctx, apiv1.CreateEnrollTokenRequest{
		Groups: []string{"line-1"}, Labels: map[string]string{"site": "plant-a"}, LabelKeys: []string{"line"}, Uses: 2, TTLSeconds: 3600, Approval: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.Token, api.EnrollTokenPrefix) || len(tok.Token) < 40 || tok.MaxUses != 2 || !tok.Approval || tok.CreatedBy != apitest.AdminUser {
		t.Fatalf("token %+v", tok)
	}
	// The store keeps only the hash.
	stored, _ := s.Store.ListEnrollTokens(ctx)
	if len(stored) != 1 || stored[0].Hash != api.HashEnrollToken(tok.Token) || strings.Contains(stored[0].Hash, tok.Token) {
		t.Fatalf("stored token %+v", stored)
	}
	list, err := c.ListEnrollTokens(ctx)
	if err != nil || len(list) != 1 || list[0].Token != "" {
		t.Fatalf("list tokens: %+v %v (the secret must not be listed)", list, err)
	}

	changes := s.Changes.Load()
	resp, err := anon(t, s).Enroll(ctx, apiv1.EnrollRequest{Token: tok.Token, CSRPEM: apitest.NewCSR(t, "press-01"), Labels: map[string]string{"site": "other", "line": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.DeviceID != "press-01" || !resp.PendingApproval || resp.MQTTURL != "tls://127.0.0.1:8883" ||
		resp.CAPEM != string(s.PKI.CAPEM()) || len(resp.ControllerKeys) != 1 {
		t.Fatalf("enroll response %+v", resp)
	}
	block, _ := pem.Decode([]byte(resp.CertificatePEM))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "press-01" || cert.CheckSignatureFrom(s.PKI.CACert()) != nil {
		t.Fatalf("certificate CN %q not signed by the CA", cert.Subject.CommonName)
	}
	if s.Changes.Load() == changes {
		t.Error("enroll did not call Changed")
	}

	d, err := c.GetDevice(ctx, "press-01")
	if err != nil {
		t.Fatal(err)
	}
	if d.State != apiv1.DevicePending || d.Labels["site"] != "plant-a" || d.Labels["line"] != "1" || !slices.Equal(d.Groups, []string{"line-1"}) {
		t.Fatalf("device %+v", d)
	}
	// Only the token's label keys ("line") are taken from the device; its
	// "site" is kept as requested, and the token's own "site" applies.
	if d.RequestedLabels["site"] != "other" || len(d.RequestedLabels) != 1 {
		t.Fatalf("requested labels %v, want site=other only", d.RequestedLabels)
	}
	st, _ := c.FleetStatus(ctx)
	if st.Pending != 1 || st.Devices != 1 {
		t.Errorf("status %+v", st)
	}
	d, err = c.ApproveDevice(ctx, "press-01")
	if err != nil || d.State != apiv1.DeviceActive {
		t.Fatalf("approve: %+v %v", d, err)
	}

	// Second use works, third is refused: used up; nothing is signed.
	if _, err := anon(t, s).Enroll(ctx, apiv1.EnrollRequest{Token: tok.Token, CSRPEM: apitest.NewCSR(t, "press-02")}); err != nil {
		t.Fatal(err)
	}
	signed := s.PKI.Signed.Load()
	_, err = anon(t, s).Enroll(ctx, apiv1.EnrollRequest{Token: tok.Token, CSRPEM: apitest.NewCSR(t, "press-03")})
	wantStatus(t, err, http.StatusForbidden, "used up", "ask an admin for a new one")
	if s.PKI.Signed.Load() != signed {
		t.Error("a certificate was signed for a refused token")
	}
	if n, _, _ := s.Counts(t); n != 2 {
		t.Errorf("%d devices, want 2", n)
	}
	for _, want := range []string{"group.create", "enroll-token.create", "device.enroll", "device.approve", "device.enroll-refused"} {
		if !slices.Contains(auditActions(t, s), want) {
			t.Errorf("audit log lacks %q: %v", want, auditActions(t, s))
		}
	}
}

func TestEnrollRefusals(t *testing.T) {
	now := time.Now()
	clock := &now
	var mu sync.Mutex
	s := apitest.NewServer(t, func(o *api.Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return *clock }
	})
	setClock := func(t time.Time) { mu.Lock(); defer mu.Unlock(); *clock = t }
	c := admin(t, s)
	mk := func(req apiv1.CreateEnrollTokenRequest) string {
		tok, err := c.CreateEnrollToken(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return tok.Token
	}
	good := mk(apiv1.CreateEnrollTokenRequest{Uses: 10})
	if _, err := anon(t, s).Enroll(ctx, apiv1.EnrollRequest{Token: good, CSRPEM: apitest.NewCSR(t, "dev-1")}); err != nil {
		t.Fatal(err)
	}

	expiring := mk(apiv1.CreateEnrollTokenRequest{TTLSeconds: 60})
	revoked := mk(apiv1.CreateEnrollTokenRequest{})
	list, _ := c.ListEnrollTokens(ctx)
	for _, tk := range list {
		if api.HashEnrollToken(revoked) == storedHash(t, s, tk.ID) {
			if err := c.RevokeEnrollToken(ctx, tk.ID); err != nil {
				t.Fatal(err)
			}
		}
	}

	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	csrWith := func(cn string, key any) string {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	}
	badSig := func() string {
		der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-9"}}, ecKey)
		der[len(der)-3] ^= 0xff
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	}()

	signed := s.PKI.Signed.Load()
	changes := s.Changes.Load()
	cases := []struct {
		name   string
		req    apiv1.EnrollRequest
		at     time.Time
		status int
		want   []string
	}{
		{"unknown token", apiv1.EnrollRequest{Token: "ewt_guess", CSRPEM: apitest.NewCSR(t, "dev-2")}, now, 401, []string{"not valid", "ask an admin"}},
		{"no token", apiv1.EnrollRequest{CSRPEM: apitest.NewCSR(t, "dev-2")}, now, 400, []string{"token is required"}},
		{"expired", apiv1.EnrollRequest{Token: expiring, CSRPEM: apitest.NewCSR(t, "dev-2")}, now.Add(2 * time.Minute), 403, []string{"is expired (expired at", "ask an admin for a new one"}},
		{"revoked", apiv1.EnrollRequest{Token: revoked, CSRPEM: apitest.NewCSR(t, "dev-2")}, now, 403, []string{"revoked"}},
		{"no csr", apiv1.EnrollRequest{Token: good}, now, 400, []string{"csr_pem is required"}},
		{"csr not pem", apiv1.EnrollRequest{Token: good, CSRPEM: "hello"}, now, 400, []string{"not a PEM"}},
		{"csr bad signature", apiv1.EnrollRequest{Token: good, CSRPEM: badSig}, now, 400, []string{"signature"}},
		{"csr bad device id", apiv1.EnrollRequest{Token: good, CSRPEM: csrWith("Dev/../x", ecKey)}, now, 400, []string{"invalid device id"}},
		{"csr wildcard id", apiv1.EnrollRequest{Token: good, CSRPEM: csrWith("dev+#", ecKey)}, now, 400, []string{"invalid device id"}},
		{"csr rsa", apiv1.EnrollRequest{Token: good, CSRPEM: csrWith("dev-2", rsaKey)}, now, 400, []string{"P-256 or Ed25519"}},
		{"csr p384", apiv1.EnrollRequest{Token: good, CSRPEM: csrWith("dev-2", p384)}, now, 400, []string{"P-256"}},
		{"device exists", apiv1.EnrollRequest{Token: good, CSRPEM: apitest.NewCSR(t, "dev-1")}, now, 409, []string{"already enrolled"}},
		{"bad labels", apiv1.EnrollRequest{Token: good, CSRPEM: apitest.NewCSR(t, "dev-3"), Labels: map[string]string{"a b": "c"}}, now, 400, []string{"label"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			setClock(tc.at)
			_, err := anon(t, s).Enroll(ctx, tc.req)
			wantStatus(t, err, tc.status, tc.want...)
		})
	}
	setClock(now)
	if n, _, _ := s.Counts(t); n != 1 {
		t.Errorf("refused enrollments stored devices: %d, want 1", n)
	}
	if s.Changes.Load() != changes {
		t.Error("a refused enrollment called Changed")
	}
	// Only the two that reached the store (device exists, bad labels) were signed.
	if got := s.PKI.Signed.Load() - signed; got != 2 {
		t.Errorf("%d certificates signed for refused requests, want 2 (those the store refused)", got)
	}
	list, _ = c.ListEnrollTokens(ctx)
	for _, tk := range list {
		if storedHash(t, s, tk.ID) == api.HashEnrollToken(good) && tk.Used != 1 {
			t.Errorf("good token used %d times, want 1: refusals must not count", tk.Used)
		}
	}
}

func storedHash(t *testing.T, s *apitest.Server, id string) string {
	toks, _ := s.Store.ListEnrollTokens(ctx)
	for _, tk := range toks {
		if tk.ID == id {
			return tk.Hash
		}
	}
	t.Fatalf("token %s not stored", id)
	return ""
}

func TestEnrollStoreFailureLeavesNothing(t *testing.T) {
	s := apitest.NewServer(t, nil)
	c := admin(t, s)
	tok, err := c.CreateEnrollToken(ctx, apiv1.CreateEnrollTokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	s.Fail("Enroll", errors.New("disk I/O error: /var/lib/secret/path"))
	changes := s.Changes.Load()
	_, err = anon(t, s).Enroll(ctx, apiv1.EnrollRequest{Token: tok.Token, CSRPEM: apitest.NewCSR(t, "dev-1")})
	wantStatus(t, err, http.StatusInternalServerError, "internal error", "request id")
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("internal detail leaked: %q", err)
	}
	if n, _, _ := s.Counts(t); n != 0 || s.Changes.Load() != changes {
		t.Error("a failed enrollment left a device or called Changed")
	}
	s.Fail("Enroll", nil)
	if _, err := anon(t, s).Enroll(ctx, apiv1.EnrollRequest{Token: tok.Token, CSRPEM: apitest.NewCSR(t, "dev-1")}); err != nil {
		t.Fatalf("enroll after the failure: %v (the token must still be usable)", err)
	}
}

func TestEnrollTokenValidation(t *testing.T) {
	s := apitest.NewServer(t, nil)
	c := admin(t, s)
	for _, req := range []apiv1.CreateEnrollTokenRequest{
		{Uses: -1}, {Uses: api.MaxEnrollTokenUses + 1}, {TTLSeconds: -5}, {TTLSeconds: int64(api.MaxEnrollTokenTTL/time.Second) + 1},
	} {
		_, err := c.CreateEnrollToken(ctx, req)
		wantStatus(t, err, http.StatusBadRequest)
	}
	_, err := c.CreateEnrollToken(ctx, apiv1.CreateEnrollTokenRequest{Groups: []string{"missing"}})
	wantStatus(t, err, http.StatusNotFound, "missing")
	if _, _, n := s.Counts(t); n != 0 {
		t.Errorf("%d tokens stored from bad requests", n)
	}
	tok, err := c.CreateEnrollToken(ctx, apiv1.CreateEnrollTokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if tok.MaxUses != 1 || tok.ExpiresAt.Sub(tok.CreatedAt) != 24*time.Hour {
		t.Errorf("defaults: %+v", tok)
	}
	wantStatus(t, c.RevokeEnrollToken(ctx, "et_nope"), http.StatusNotFound)
}

func enroll(t *testing.T, s *apitest.Server, c *client.Client, ids ...string) {
	t.Helper()
	tok, err := c.CreateEnrollToken(ctx, apiv1.CreateEnrollTokenRequest{Uses: len(ids)})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if _, err := anon(t, s).Enroll(ctx, apiv1.EnrollRequest{Token: tok.Token, CSRPEM: apitest.NewCSR(t, id)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDevices(t *testing.T) {
	s := apitest.NewServer(t, nil)
	c := admin(t, s)
	enroll(t, s, c, "a-1", "a-2")

	changes := s.Changes.Load()
	d, err := c.SetDeviceLabels(ctx, "a-1", map[string]string{"site": "x", "role": "press"})
	if err != nil || d.Labels["site"] != "x" || d.Labels["role"] != "press" {
		t.Fatalf("labels: %+v %v", d, err)
	}
	d, err = c.SetDeviceLabels(ctx, "a-1", map[string]string{"site": "", "zone": "3"})
	if err != nil || len(d.Labels) != 2 || d.Labels["zone"] != "3" || d.Labels["role"] != "press" {
		t.Fatalf("merge labels: %+v %v", d.Labels, err)
	}
	if s.Changes.Load() != changes+2 {
		t.Error("label changes did not call Changed")
	}
	_, err = c.SetDeviceLabels(ctx, "a-1", map[string]string{"bad key": "v"})
	wantStatus(t, err, http.StatusBadRequest)
	_, err = c.SetDeviceLabels(ctx, "a-1", nil)
	wantStatus(t, err, http.StatusBadRequest, "labels is required")
	_, err = c.SetDeviceLabels(ctx, "nope", map[string]string{"k": "v"})
	wantStatus(t, err, http.StatusNotFound, "nope")

	s.SetDesired(t, "a-1", 7)
	s.Report(t, "a-1", true, protocol.StatusReport{AppliedRevision: 7, Apps: []protocol.AppStatus{{Name: "opcua", Version: "1.2.0", State: protocol.AppRunning}}})
	d, err = c.GetDevice(ctx, "a-1")
	if err != nil || !d.InSync || d.DesiredRevision != 7 || !d.Online || len(d.Apps) != 1 {
		t.Fatalf("device: %+v %v", d, err)
	}

	devs, err := c.ListDevices(ctx)
	if err != nil || len(devs) != 2 || devs[0].ID != "a-1" || devs[1].ID != "a-2" {
		t.Fatalf("list: %+v %v", devs, err)
	}
	// A device without anything reported still has [] and {} in JSON, not null.
	tok := adminToken(t, s)
	req, _ := http.NewRequest("GET", s.URL+"/api/v1/devices/a-2", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "online", "groups", "labels", "desired_revision", "applied_revision", "apps"} {
		if v, ok := m[k]; !ok || v == nil {
			t.Errorf("device JSON lacks %q (or it is null): %s", k, body)
		}
	}

	if err := c.DeleteDevice(ctx, "a-2"); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetDevice(ctx, "a-2")
	wantStatus(t, err, http.StatusNotFound)
	wantStatus(t, c.DeleteDevice(ctx, "a-2"), http.StatusNotFound)
	_, err = c.ApproveDevice(ctx, "a-2")
	wantStatus(t, err, http.StatusNotFound)
}

func TestGroups(t *testing.T) {
	s := apitest.NewServer(t, nil)
	c := admin(t, s)
	enroll(t, s, c, "d1", "d2", "d3")
	if _, err := c.SetDeviceLabels(ctx, "d3", map[string]string{"site": "b"}); err != nil {
		t.Fatal(err)
	}
	changes := s.Changes.Load()
	g, err := c.CreateGroup(ctx, "site-b", "site=b")
	if err != nil || !slices.Equal(g.Members, []string{"d3"}) || g.Selector != "site=b" {
		t.Fatalf("create: %+v %v", g, err)
	}
	_, err = c.CreateGroup(ctx, "site-b", "")
	wantStatus(t, err, http.StatusConflict, "already exists")
	_, err = c.CreateGroup(ctx, "Bad Name", "")
	wantStatus(t, err, http.StatusBadRequest, "group name")
	_, err = c.CreateGroup(ctx, "", "")
	wantStatus(t, err, http.StatusBadRequest, "name is required")

	if _, err := c.CreateGroup(ctx, "all", ""); err != nil {
		t.Fatal(err)
	}
	g, err = c.AddGroupDevices(ctx, "all", []string{"d1", "d2"})
	if err != nil || !slices.Equal(g.Devices, []string{"d1", "d2"}) {
		t.Fatalf("add: %+v %v", g, err)
	}
	_, err = c.AddGroupDevices(ctx, "all", []string{"ghost"})
	wantStatus(t, err, http.StatusNotFound, "ghost")
	_, err = c.AddGroupDevices(ctx, "all", nil)
	wantStatus(t, err, http.StatusBadRequest, "devices is required")

	g, err = c.IncludeGroup(ctx, "all", "site-b")
	if err != nil || !slices.Equal(g.Members, []string{"d1", "d2", "d3"}) || !slices.Equal(g.Includes, []string{"site-b"}) {
		t.Fatalf("include: %+v %v", g, err)
	}
	_, err = c.IncludeGroup(ctx, "site-b", "all")
	wantStatus(t, err, http.StatusConflict, "cycle")
	_, err = c.IncludeGroup(ctx, "all", "all")
	wantStatus(t, err, http.StatusBadRequest, "itself")

	d, _ := c.GetDevice(ctx, "d3")
	if !slices.Equal(d.Groups, []string{"all", "site-b"}) {
		t.Errorf("d3 groups %v", d.Groups)
	}

	g, err = c.RemoveGroupDevices(ctx, "all", []string{"d2"})
	if err != nil || !slices.Equal(g.Devices, []string{"d1"}) {
		t.Fatalf("remove: %+v %v", g, err)
	}
	if err := c.ExcludeGroup(ctx, "all", "site-b"); err != nil {
		t.Fatal(err)
	}
	g, err = c.GetGroup(ctx, "all")
	if err != nil || !slices.Equal(g.Members, []string{"d1"}) || len(g.Includes) != 0 {
		t.Fatalf("exclude: %+v %v", g, err)
	}
	gs, err := c.ListGroups(ctx)
	if err != nil || len(gs) != 2 {
		t.Fatalf("list: %+v %v", gs, err)
	}
	if err := c.DeleteGroup(ctx, "site-b", false); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetGroup(ctx, "site-b")
	wantStatus(t, err, http.StatusNotFound)
	// create, create, add, include, remove, exclude, delete
	if got := s.Changes.Load() - changes; got != 7 {
		t.Errorf("Changed called %d times, want 7 (once per successful change)", got)
	}
	var actions []string
	for _, e := range s.Audit(t) {
		if strings.HasPrefix(e.Action, "group.") {
			actions = append(actions, e.Action)
			if e.Actor != apitest.AdminUser || e.Source == "" {
				t.Errorf("audit entry %+v lacks actor or source", e)
			}
		}
	}
	want := []string{"group.create", "group.create", "group.add-devices", "group.include", "group.remove-devices", "group.exclude", "group.delete"}
	if !slices.Equal(actions, want) {
		t.Errorf("audited %v, want %v", actions, want)
	}
}

func TestFleetStatus(t *testing.T) {
	s := apitest.NewServer(t, nil)
	c := admin(t, s)
	enroll(t, s, c, "insync", "drift", "fail")
	for id, rev := range map[string]uint64{"insync": 3, "drift": 3, "fail": 3} {
		s.SetDesired(t, id, rev)
	}
	s.Report(t, "insync", true, protocol.StatusReport{AppliedRevision: 3})
	s.Report(t, "drift", true, protocol.StatusReport{AppliedRevision: 2})
	s.Report(t, "fail", false, protocol.StatusReport{AppliedRevision: 2, LastRejected: &protocol.Rejection{Revision: 3, Reason: "bad_signature"}})
	pending, err := c.CreateEnrollToken(ctx, apiv1.CreateEnrollTokenRequest{Approval: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anon(t, s).Enroll(ctx, apiv1.EnrollRequest{Token: pending.Token, CSRPEM: apitest.NewCSR(t, "new")}); err != nil {
		t.Fatal(err)
	}
	st, err := c.FleetStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// "fail" said it went offline after its report; "new" is pending, so
	// not listed as offline.
	if len(st.Offline) != 1 || st.Offline[0].Device != "fail" || st.Offline[0].SilentSeconds == nil {
		t.Errorf("offline %+v, want fail with its silence", st.Offline)
	}
	st.Offline = nil
	want := apiv1.FleetStatus{Devices: 4, Online: 2, InSync: 1, Drifting: 1, Failing: 1, Pending: 1, RecentSecurityEvents: []apiv1.Event{}}
	if !reflect.DeepEqual(*st, want) {
		t.Errorf("status %+v, want %+v", *st, want)
	}
}

func TestInternalErrorsAreGeneric(t *testing.T) {
	s := apitest.NewServer(t, nil)
	c := admin(t, s)
	s.Fail("ListDevices", errors.New("sqlite: database disk image is malformed at /data/x.db"))
	_, err := c.ListDevices(ctx)
	wantStatus(t, err, http.StatusInternalServerError, "internal error")
	if strings.Contains(err.Error(), "sqlite") {
		t.Errorf("detail leaked: %v", err)
	}
}

func TestLoginThrottle(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	s := apitest.NewServer(t, func(o *api.Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	c := anon(t, s)
	for range 5 {
		_, err := c.Login(ctx, apitest.AdminUser, "guess-guess")
		wantStatus(t, err, http.StatusUnauthorized)
	}
	// This source is slowed: even the right password is refused, without
	// checking it, and so is any other account from here. (Other sources
	// are unaffected: see TestLoginThrottleSlowsGuessingWithoutLockout.)
	_, err := c.Login(ctx, apitest.AdminUser, apitest.AdminPassword)
	wantStatus(t, err, http.StatusTooManyRequests, "too many failed logins", "try again after")
	s.AddUser(t, "fred", "fred-password", store.UserActive)
	_, err = c.Login(ctx, "fred", "fred-password")
	wantStatus(t, err, http.StatusTooManyRequests)
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	if _, err := c.Login(ctx, apitest.AdminUser, apitest.AdminPassword); err != nil {
		t.Fatalf("after the delay: %v", err)
	}
	// Success forgot the failures: fred logs in at once.
	if _, err := c.Login(ctx, "fred", "fred-password"); err != nil {
		t.Fatalf("after a success from this source: %v", err)
	}
}
