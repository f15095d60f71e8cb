package localapi_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/edgewarden/edgewarden/agent/apply"
	"github.com/edgewarden/edgewarden/agent/localapi"
	"github.com/edgewarden/edgewarden/agent/localapi/localwire"
	"github.com/edgewarden/edgewarden/agent/state"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/access"
	"github.com/edgewarden/edgewarden/protocol/optoken"
)

const deviceID = "press-01"

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// The plant: line-1 ⊃ cell-3 ∋ press-01.
var hier = access.NewHierarchy(map[string][]string{"line-1": {"cell-3"}})

// baseInput: team ops (alice, dave) operates line-1; bob views the device;
// erin may sideload on cell-3; carol is an operator on the device.
func baseInput() access.Input {
	return access.Input{
		Roles: append(access.BuiltinRoles(), access.Role{Name: "sideloader", Actions: []access.Action{access.DeviceView, access.DeviceSideload}}),
		Users: []access.User{
			{Name: "alice", Teams: []string{"ops"}}, {Name: "bob"}, {Name: "carol"},
			{Name: "dave", Teams: []string{"ops"}}, {Name: "erin"}, {Name: "mallory"},
		},
		Grants: []access.Grant{
			{ID: "g-1", Subject: access.TeamSubject("ops"), Role: access.RoleOperator, Scope: access.GroupScope("line-1")},
			{ID: "g-2", Subject: access.UserSubject("bob"), Role: access.RoleViewer, Scope: access.DeviceScope(deviceID)},
			{ID: "g-3", Subject: access.UserSubject("carol"), Role: access.RoleOperator, Scope: access.DeviceScope(deviceID)},
			{ID: "g-4", Subject: access.UserSubject("erin"), Role: "sideloader", Scope: access.GroupScope("cell-3")},
		},
	}
}

// fixture is a device with a real applier fed signed documents, and its
// local API on a real unix socket.
type fixture struct {
	t        testing.TB
	ctlKey   ed25519.PrivateKey
	ctlPub   protocol.PublicKey
	tokenKey ed25519.PrivateKey
	signer   *optoken.Signer
	store    *state.Store
	applier  *apply.Applier
	srv      *localapi.Server
	socket   string
	client   *http.Client
	now      atomic.Int64 // unix nanoseconds
	rev      uint64
	apps     *fakeApps
}

type option func(*localapi.Options)

func newFixture(t testing.TB, opts ...option) *fixture {
	t.Helper()
	f := &fixture{t: t, apps: &fakeApps{}}
	f.now.Store(t0.UnixNano())
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.ctlKey, f.ctlPub = key, publicKey(t, pub)
	_, f.tokenKey, _ = ed25519.GenerateKey(rand.Reader)
	if f.signer, err = optoken.NewSigner(f.tokenKey); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f.store, err = state.Open(context.Background(), filepath.Join(dir, "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close() })
	f.applier, err = apply.New(context.Background(), apply.Options{
		DeviceID: deviceID, Keys: []protocol.PublicKey{f.ctlPub}, Store: f.store, Now: f.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.socket = filepath.Join(dir, "agent.sock")
	o := localapi.Options{
		Socket:       f.socket,
		DeviceID:     deviceID,
		Policy:       f.applier.Current,
		Apps:         f.apps,
		Events:       f.store,
		AgentVersion: "test",
		Now:          f.clock,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, opt := range opts {
		opt(&o)
	}
	f.srv, err = localapi.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.srv.Close() })
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", f.socket)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	f.client = &http.Client{Transport: tr}
	return f
}

func (f *fixture) clock() time.Time { return time.Unix(0, f.now.Load()).UTC() }

func (f *fixture) advance(d time.Duration) { f.now.Add(int64(d)) }

func publicKey(t testing.TB, pub ed25519.PublicKey) protocol.PublicKey {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return protocol.PublicKey{KeyID: protocol.KeyID(pub), Algorithm: "Ed25519",
		PEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}
}

// doc is a document for the next revision with the access policy of in.
func (f *fixture) doc(in access.Input) *protocol.DesiredState {
	f.t.Helper()
	pol, err := access.CompileForDevice(in, hier.Device(deviceID, []string{"cell-3"}))
	if err != nil {
		f.t.Fatal(err)
	}
	f.rev++
	now := f.clock()
	return &protocol.DesiredState{
		Schema: protocol.Schema, DeviceID: deviceID, Revision: f.rev,
		IssuedAt: now, ExpiresAt: now.Add(time.Hour),
		Groups:    []string{"cell-3", "line-1"},
		Access:    pol,
		TokenKeys: []protocol.PublicKey{f.signer.PublicKey()},
		Banner:    "Authorized use only. Activity is logged.",
	}
}

// publish signs d and applies it as if it arrived from the broker.
func (f *fixture) publish(d *protocol.DesiredState) {
	f.t.Helper()
	raw, err := protocol.SignDesired(d, f.ctlKey)
	if err != nil {
		f.t.Fatal(err)
	}
	if res := f.applier.Handle(context.Background(), raw); res.Outcome != apply.Applied {
		f.t.Fatalf("document revision %d: %v (%v)", d.Revision, res.Outcome, res.Err)
	}
}

func (f *fixture) token(user string, ttl time.Duration) string {
	f.t.Helper()
	tok, _, err := f.signer.Issue(optoken.IssueOptions{Subject: user, Now: f.clock(), TTL: ttl, ID: "tok-" + user})
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r response) errMsg(t testing.TB) string {
	t.Helper()
	var e localwire.Error
	r.decode(t, &e)
	if e.Error == "" {
		t.Fatalf("error response without an error message: %d %s", r.status, r.body)
	}
	return e.Error
}

func (f *fixture) do(method, path, token string, body io.Reader) response {
	f.t.Helper()
	req, err := http.NewRequest(method, "http://agent"+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		f.t.Errorf("%s %s: content type %q", method, path, ct)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func (f *fixture) authorize(token string, action access.Action) response {
	f.t.Helper()
	return f.do("GET", localwire.PathAuthorize+"?action="+string(action), token, nil)
}

// events returns the queued events of a kind.
func (f *fixture) events(kind string) []protocol.Event {
	f.t.Helper()
	evs, err := f.store.PendingEvents(context.Background(), 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []protocol.Event
	for _, e := range evs {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func (f *fixture) lastDenied() protocol.Event {
	f.t.Helper()
	evs := f.events(protocol.EventLocalAccessDenied)
	if len(evs) == 0 {
		f.t.Fatal("no local_access_denied event was queued")
	}
	return evs[len(evs)-1]
}

func wantStatus(t testing.TB, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
}

func TestNoDocumentDeniesEverything(t *testing.T) {
	f := newFixture(t)
	tok := f.token("alice", time.Hour)
	for _, tc := range []struct{ method, path string }{
		{"GET", localwire.PathStatus},
		{"GET", localwire.PathApps},
		{"POST", localwire.PathApps + "/historian/start"},
		{"GET", localwire.PathApps + "/historian/logs"},
		{"POST", localwire.PathInstall},
		{"GET", localwire.PathAuthorize + "?action=device:view"},
	} {
		r := f.do(tc.method, tc.path, tok, nil)
		wantStatus(t, r, http.StatusForbidden)
		if msg := r.errMsg(t); !strings.Contains(msg, "has not received a policy") {
			t.Errorf("%s %s: %q does not say no policy has been received", tc.method, tc.path, msg)
		}
	}
	if f.apps.calls.Load() != 0 {
		t.Error("the app runtime was called without a policy")
	}
	ev := f.lastDenied()
	if ev.Severity != "security" || ev.Details["reason"] != "no_policy" || ev.Details["action"] != "device:view" {
		t.Errorf("denied event = %+v", ev)
	}
	if ev.Details["peer_uid"] != fmt.Sprint(os.Getuid()) {
		t.Errorf("event does not name the peer uid: %v", ev.Details)
	}
	// The banner needs no token and is empty before any document.
	r := f.do("GET", localwire.PathBanner, "", nil)
	wantStatus(t, r, http.StatusOK)
	var b localwire.Banner
	r.decode(t, &b)
	if b.Banner != "" {
		t.Errorf("banner before any document: %q", b.Banner)
	}
}

func TestAuthorize(t *testing.T) {
	f := newFixture(t)
	f.publish(f.doc(baseInput()))
	alice := f.token("alice", time.Hour)

	r := f.authorize(alice, access.DeviceAppOperate)
	wantStatus(t, r, http.StatusOK)
	var a localwire.Authorization
	r.decode(t, &a)
	if !a.Allowed || a.User != "alice" || a.Device != deviceID || !strings.Contains(a.Explanation, "grant g-1 to team ops") {
		t.Errorf("authorization = %+v", a)
	}
	if got := r.header.Get(localwire.HeaderUser); got != "alice" {
		t.Errorf("%s header = %q", localwire.HeaderUser, got)
	}

	// POST with a JSON body, and any method with ?action= (nginx).
	body, _ := json.Marshal(localwire.AuthorizeRequest{Action: "device:logs"})
	wantStatus(t, f.do("POST", localwire.PathAuthorize, alice, bytes.NewReader(body)), http.StatusOK)
	wantStatus(t, f.do("PUT", localwire.PathAuthorize+"?action=device:logs", alice, nil), http.StatusOK)

	// Denied: 403 with the decision, and an audit event.
	r = f.authorize(alice, access.DeviceSideload)
	wantStatus(t, r, http.StatusForbidden)
	r.decode(t, &a)
	if a.Allowed || a.User != "alice" || !strings.Contains(a.Error, "no grant gives device:sideload") || a.Decision.Reason == "" {
		t.Errorf("denied authorization = %+v", a)
	}
	ev := f.lastDenied()
	if ev.Details["user"] != "alice" || ev.Details["action"] != "device:sideload" || ev.Details["reason"] != "no_grant" ||
		ev.Details["token_id"] != "tok-alice" || ev.Severity != "security" {
		t.Errorf("denied event = %+v", ev)
	}

	// Bad requests change nothing and are not mistaken for allowed.
	before := len(f.events(protocol.EventLocalAccessDenied))
	for _, tc := range []struct {
		method, path, body, want string
	}{
		{"GET", localwire.PathAuthorize, "", "no action"},
		{"GET", localwire.PathAuthorize + "?action=device:format", "", "not in the action catalogue"},
		{"POST", localwire.PathAuthorize, `{"action": "device:view", "user": "root"}`, "unknown field"},
		{"POST", localwire.PathAuthorize, `{"action":`, "request body"},
	} {
		r := f.do(tc.method, tc.path, alice, strings.NewReader(tc.body))
		wantStatus(t, r, http.StatusBadRequest)
		if msg := r.errMsg(t); !strings.Contains(msg, tc.want) {
			t.Errorf("%s %s %s: %q does not contain %q", tc.method, tc.path, tc.body, msg, tc.want)
		}
	}
	if n := len(f.events(protocol.EventLocalAccessDenied)); n != before {
		t.Errorf("bad requests queued %d denied events", n-before)
	}
}

// forge signs claims with a method and key, with the given kid.
func forge(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenAttacks(t *testing.T) {
	f := newFixture(t)
	f.publish(f.doc(baseInput()))
	kid := f.signer.PublicKey().KeyID
	now := f.clock()
	claims := func(change func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": optoken.Issuer, "aud": optoken.Audience, "sub": "alice", "jti": "forged",
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		if change != nil {
			change(c)
		}
		return c
	}
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	otherKid := protocol.KeyID(otherKey.Public().(ed25519.PublicKey))

	// The control: the same forging path with the right key and claims works.
	good := forge(t, jwt.SigningMethodEdDSA, f.tokenKey, kid, claims(nil))
	wantStatus(t, f.authorize(good, access.DeviceView), http.StatusOK)

	tests := []struct {
		name  string
		token string
		want  string // in the error
	}{
		{"no token", "", "no operator token"},
		{"garbage", "not-a-jwt", "malformed"},
		{"alg none", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, claims(nil)), "algorithm"},
		{"HS256 keyed with the public key", forge(t, jwt.SigningMethodHS256, []byte(f.signer.PublicKey().PEM), kid, claims(nil)), "algorithm"},
		{"wrong audience", forge(t, jwt.SigningMethodEdDSA, f.tokenKey, kid, claims(func(c jwt.MapClaims) { c["aud"] = "edgewarden-controller" })), "audience"},
		{"missing exp", forge(t, jwt.SigningMethodEdDSA, f.tokenKey, kid, claims(func(c jwt.MapClaims) { delete(c, "exp") })), "exp"},
		{"expired", forge(t, jwt.SigningMethodEdDSA, f.tokenKey, kid, claims(func(c jwt.MapClaims) {
			c["iat"], c["nbf"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		})), "expired"},
		{"unknown kid", forge(t, jwt.SigningMethodEdDSA, otherKey, otherKid, claims(nil)), "not a token key of this device"},
		{"kid with path characters", forge(t, jwt.SigningMethodEdDSA, f.tokenKey, "../../../etc/passwd", claims(nil)), "kid must be"},
		{"no kid", forge(t, jwt.SigningMethodEdDSA, f.tokenKey, "", claims(nil)), "no kid"},
		{"signed by another key under our kid", forge(t, jwt.SigningMethodEdDSA, otherKey, kid, claims(nil)), "signature"},
		{"wrong issuer", forge(t, jwt.SigningMethodEdDSA, f.tokenKey, kid, claims(func(c jwt.MapClaims) { c["iss"] = "someone" })), "issuer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, r := range []response{
				f.authorize(tt.token, access.DeviceView),
				f.do("GET", localwire.PathStatus, tt.token, nil),
			} {
				wantStatus(t, r, http.StatusUnauthorized)
				if msg := r.errMsg(t); !strings.Contains(msg, tt.want) {
					t.Errorf("error %q does not contain %q", msg, tt.want)
				}
				if r.header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			}
			ev := f.lastDenied()
			if ev.Details["user"] != "" || ev.Details["reason"] == "" || ev.Details["action"] != "device:view" {
				t.Errorf("denied event = %+v", ev.Details)
			}
		})
	}
}

func TestUsersNotInPolicy(t *testing.T) {
	f := newFixture(t)
	f.publish(f.doc(baseInput()))
	// zed has a valid token but no grant and is in no policy.
	r := f.authorize(f.token("zed", time.Hour), access.DeviceView)
	wantStatus(t, r, http.StatusForbidden)
	// The device's policy lists only the users its grants reach: for zed the
	// reason is the missing grant, and the answer says which action.
	if msg := r.errMsg(t); !strings.Contains(msg, "no grant gives device:view") || strings.Contains(msg, "not an active user") {
		t.Errorf("user with no grant here: %q; want it to name the missing grant", msg)
	}

	carol := f.token("carol", time.Hour)
	wantStatus(t, f.authorize(carol, access.DeviceAppOperate), http.StatusOK)
	// carol disabled, then removed: her valid, cached token stops working
	// with the next document.
	in := baseInput()
	in.Users[2].Disabled = true
	f.publish(f.doc(in))
	r = f.authorize(carol, access.DeviceAppOperate)
	wantStatus(t, r, http.StatusForbidden)
	if ev := f.lastDenied(); ev.Details["user"] != "carol" || ev.Details["reason"] != "no_grant" {
		t.Errorf("denied event = %+v", ev.Details)
	}
	in.Users = append(in.Users[:2], in.Users[3:]...)
	f.publish(f.doc(in))
	wantStatus(t, f.authorize(carol, access.DeviceAppOperate), http.StatusForbidden)
}

func TestRevocationTakesEffectWithNextDocument(t *testing.T) {
	f := newFixture(t)
	f.publish(f.doc(baseInput()))
	alice := f.token("alice", time.Hour)
	for range 3 { // verified once, then from the cache
		wantStatus(t, f.authorize(alice, access.DeviceView), http.StatusOK)
	}
	d := f.doc(baseInput())
	d.RevokedTokens = []string{"tok-alice"}
	f.publish(d)
	r := f.authorize(alice, access.DeviceView)
	wantStatus(t, r, http.StatusUnauthorized)
	if msg := r.errMsg(t); !strings.Contains(msg, "revoked") {
		t.Errorf("revoked token: %q", msg)
	}
	if ev := f.lastDenied(); ev.Details["reason"] != "token_revoked" {
		t.Errorf("denied event = %+v", ev.Details)
	}
	// dave's token is unaffected.
	wantStatus(t, f.authorize(f.token("dave", time.Hour), access.DeviceView), http.StatusOK)
}

func TestGrantRemovedTakesEffectAtOnce(t *testing.T) {
	f := newFixture(t)
	f.publish(f.doc(baseInput()))
	alice := f.token("alice", time.Hour)
	wantStatus(t, f.authorize(alice, access.DeviceAppOperate), http.StatusOK)
	in := baseInput()
	in.Grants = in.Grants[1:] // g-1 (ops operator on line-1) removed
	f.publish(f.doc(in))
	r := f.authorize(alice, access.DeviceAppOperate)
	wantStatus(t, r, http.StatusForbidden)
	var a localwire.Authorization
	r.decode(t, &a)
	// alice is in no remaining grant, so the minimal policy no longer lists her.
	if a.Allowed || !strings.Contains(a.Error, `no grant gives device:app-operate on device press-01 (user alice`) {
		t.Errorf("after the grant was removed: %+v", a)
	}
	// carol's own device grant still works.
	wantStatus(t, f.authorize(f.token("carol", time.Hour), access.DeviceAppOperate), http.StatusOK)
}

func TestExpiredPolicyDeniesEverything(t *testing.T) {
	f := newFixture(t)
	f.publish(f.doc(baseInput()))
	alice := f.token("alice", 3*time.Hour)
	wantStatus(t, f.authorize(alice, access.DeviceView), http.StatusOK)
	f.advance(time.Hour) // the document lived an hour
	r := f.authorize(alice, access.DeviceView)
	wantStatus(t, r, http.StatusForbidden)
	if msg := r.errMsg(t); !strings.Contains(msg, "expired") || !strings.Contains(msg, "revision 1") {
		t.Errorf("expired policy: %q", msg)
	}
	if ev := f.lastDenied(); ev.Details["reason"] != "policy_expired" {
		t.Errorf("denied event = %+v", ev.Details)
	}
}

func TestStatusAndBanner(t *testing.T) {
	f := newFixture(t)
	f.publish(f.doc(baseInput()))
	var b localwire.Banner
	f.do("GET", localwire.PathBanner, "", nil).decode(t, &b)
	if b.Banner != "Authorized use only. Activity is logged." {
		t.Errorf("banner = %q", b.Banner)
	}
	r := f.do("GET", localwire.PathStatus, f.token("bob", time.Hour), nil)
	wantStatus(t, r, http.StatusOK)
	var st localwire.Status
	r.decode(t, &st)
	if st.DeviceID != deviceID || st.AppliedRevision != 1 || st.User != "bob" || st.SideloadAllowed ||
		fmt.Sprint(st.Permissions) != "[device:view]" || fmt.Sprint(st.Groups) != "[cell-3 line-1]" {
		t.Errorf("status = %+v", st)
	}
	// Without device:view (erin has it; mallory has nothing).
	wantStatus(t, f.do("GET", localwire.PathStatus, f.token("mallory", time.Hour), nil), http.StatusForbidden)
}

func TestSocket(t *testing.T) {
	f := newFixture(t)
	fi, err := os.Stat(f.socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v, want a socket with 0660", fi.Mode())
	}

	newServer := func(socket string) *localapi.Server {
		s, err := localapi.New(localapi.Options{Socket: socket, DeviceID: deviceID, Policy: f.applier.Current})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	// A live socket is not taken over.
	err = newServer(f.socket).Start()
	if err == nil || !strings.Contains(err.Error(), "another process is serving it") {
		t.Errorf("second server on a live socket: %v", err)
	}
	wantStatus(t, f.do("GET", localwire.PathBanner, "", nil), http.StatusOK)

	// A stale socket (its server died without removing it) is replaced.
	stale := filepath.Join(t.TempDir(), "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Lstat(stale); err != nil {
		t.Fatalf("precondition: stale socket file: %v", err)
	}
	s := newServer(stale)
	if err := s.Start(); err != nil {
		t.Fatalf("start over a stale socket: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Lstat(stale); !os.IsNotExist(err) {
		t.Errorf("socket left behind after Close: %v", err)
	}

	// A regular file at the path is neither removed nor used.
	file := filepath.Join(t.TempDir(), "file.sock")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = newServer(file).Start()
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("start over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Error("the regular file was changed")
	}
}

func TestUnknownEndpoint(t *testing.T) {
	f := newFixture(t)
	r := f.do("GET", "/v1/nope", "", nil)
	wantStatus(t, r, http.StatusNotFound)
	if msg := r.errMsg(t); !strings.Contains(msg, "no such endpoint") {
		t.Errorf("unknown endpoint: %q", msg)
	}
}

func TestDeniedEventsAreRateLimited(t *testing.T) {
	f := newFixture(t, func(o *localapi.Options) { o.EventsPerMinute = 3 })
	for range 5 {
		wantStatus(t, f.authorize("", access.DeviceView), http.StatusForbidden) // no policy
	}
	if n := len(f.events(protocol.EventLocalAccessDenied)); n != 3 {
		t.Fatalf("%d events queued, want 3 (the limit)", n)
	}
	f.advance(time.Minute)
	f.authorize("", access.DeviceView)
	evs := f.events(protocol.EventLocalAccessDenied)
	if len(evs) != 4 || evs[3].Details["suppressed_before"] != "2" {
		t.Errorf("after the window: %d events, last %+v", len(evs), evs[len(evs)-1].Details)
	}
}

func TestEventsReachTheSink(t *testing.T) {
	var kicks atomic.Int32
	f := newFixture(t, func(o *localapi.Options) { o.OnEvent = func() { kicks.Add(1) } })
	f.authorize("", access.DeviceView)
	if kicks.Load() != 1 {
		t.Errorf("OnEvent called %d times, want 1", kicks.Load())
	}
}

// fakeApps records calls.
type fakeApps struct {
	calls   atomic.Int32
	mu      sync.Mutex
	last    string
	pkg     []byte
	pkgUser string
}

func (a *fakeApps) note(s string) {
	a.calls.Add(1)
	a.mu.Lock()
	a.last = s
	a.mu.Unlock()
}

func (a *fakeApps) List(context.Context) ([]protocol.AppStatus, error) {
	a.note("list")
	return []protocol.AppStatus{{Name: "historian", Version: "1.0.0", State: "running"}}, nil
}

func (a *fakeApps) Start(_ context.Context, name string) (protocol.AppStatus, error) {
	a.note("start " + name)
	if name != "historian" {
		return protocol.AppStatus{}, fmt.Errorf("%w: %s is not installed", localapi.ErrNoApp, name)
	}
	return protocol.AppStatus{Name: name, Version: "1.0.0", State: "running"}, nil
}

func (a *fakeApps) Stop(_ context.Context, name string) (protocol.AppStatus, error) {
	a.note("stop " + name)
	return protocol.AppStatus{Name: name, Version: "1.0.0", State: "stopped"}, nil
}

func (a *fakeApps) Logs(_ context.Context, name string, lines int) ([]string, error) {
	a.note(fmt.Sprintf("logs %s %d", name, lines))
	return []string{"line 1", "line 2"}, nil
}

func (a *fakeApps) Install(_ context.Context, req localapi.InstallRequest) (protocol.AppStatus, error) {
	b, err := io.ReadAll(req.Package)
	if err != nil {
		return protocol.AppStatus{}, err
	}
	a.note("install " + req.Filename)
	a.mu.Lock()
	a.pkg, a.pkgUser = b, req.User
	a.mu.Unlock()
	return protocol.AppStatus{Name: "tool", Version: "0.1.0", State: "running", Sideloaded: true}, nil
}

func (a *fakeApps) lastCall() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

func TestAppOperations(t *testing.T) {
	f := newFixture(t)
	f.publish(f.doc(baseInput()))
	alice, bob := f.token("alice", time.Hour), f.token("bob", time.Hour)

	var apps localwire.Apps
	f.do("GET", localwire.PathApps, bob, nil).decode(t, &apps)
	if len(apps.Apps) != 1 || apps.Apps[0].Name != "historian" {
		t.Errorf("apps = %+v", apps)
	}

	// bob only views: no start, no logs; the runtime is never called.
	calls := f.apps.calls.Load()
	wantStatus(t, f.do("POST", localwire.PathApps+"/historian/start", bob, nil), http.StatusForbidden)
	wantStatus(t, f.do("GET", localwire.PathApps+"/historian/logs", bob, nil), http.StatusForbidden)
	if f.apps.calls.Load() != calls {
		t.Error("the app runtime was called for a denied request")
	}
	if ev := f.lastDenied(); ev.Details["action"] != "device:logs" || ev.Details["user"] != "bob" {
		t.Errorf("denied event = %+v", ev.Details)
	}

	var res localwire.AppResult
	r := f.do("POST", localwire.PathApps+"/historian/stop", alice, nil)
	wantStatus(t, r, http.StatusOK)
	r.decode(t, &res)
	if res.App.State != "stopped" || f.apps.lastCall() != "stop historian" {
		t.Errorf("stop: %+v, runtime saw %q", res, f.apps.lastCall())
	}
	if evs := f.events(protocol.EventLocalAction); len(evs) != 1 || evs[0].Details["user"] != "alice" || evs[0].Details["app"] != "historian" {
		t.Errorf("action events = %+v", evs)
	}
	r = f.do("POST", localwire.PathApps+"/ghost/start", alice, nil)
	wantStatus(t, r, http.StatusNotFound)
	if msg := r.errMsg(t); !strings.Contains(msg, "ghost is not installed") {
		t.Errorf("missing app: %q", msg)
	}
	var logs localwire.Logs
	f.do("GET", localwire.PathApps+"/historian/logs?lines=20", alice, nil).decode(t, &logs)
	if len(logs.Lines) != 2 || f.apps.lastCall() != "logs historian 20" {
		t.Errorf("logs = %+v, runtime saw %q", logs, f.apps.lastCall())
	}
	wantStatus(t, f.do("GET", localwire.PathApps+"/historian/logs?lines=0", alice, nil), http.StatusBadRequest)
	r = f.do("POST", localwire.PathApps+"/..%2F..%2Fetc/start", alice, nil)
	if r.status != http.StatusBadRequest && r.status != http.StatusNotFound {
		t.Errorf("path-like app name: %d %s", r.status, r.body)
	}
	wantStatus(t, f.do("POST", localwire.PathApps+"/Bad%20Name/start", alice, nil), http.StatusBadRequest)
}

func TestSideloadInstall(t *testing.T) {
	f := newFixture(t)
	f.publish(f.doc(baseInput()))
	alice, erin := f.token("alice", time.Hour), f.token("erin", time.Hour)
	install := func(tok string) response {
		return f.do("POST", localwire.PathInstall+"?filename=/tmp/tool.tar.gz", tok, strings.NewReader("package bytes"))
	}
	// An operator has no device:sideload.
	r := install(alice)
	wantStatus(t, r, http.StatusForbidden)
	if msg := r.errMsg(t); !strings.Contains(msg, "device:sideload") {
		t.Errorf("operator install: %q", msg)
	}
	// erin may sideload, but the ban is on.
	r = install(erin)
	wantStatus(t, r, http.StatusForbidden)
	msg := r.errMsg(t)
	for _, want := range []string{"ban is on", "device:sideload", "edgewarden settings sideload allow --group", "cell-3"} {
		if !strings.Contains(msg, want) {
			t.Errorf("ban message %q does not contain %q", msg, want)
		}
	}
	if ev := f.lastDenied(); ev.Details["reason"] != "sideload_banned" || ev.Details["user"] != "erin" {
		t.Errorf("denied event = %+v", ev.Details)
	}
	if f.apps.calls.Load() != 0 {
		t.Fatal("the runtime was asked to install while banned")
	}
	// Ban lifted for the device.
	d := f.doc(baseInput())
	d.Sideload.Allowed = true
	f.publish(d)
	wantStatus(t, install(alice), http.StatusForbidden)
	r = install(erin)
	wantStatus(t, r, http.StatusOK)
	var res localwire.AppResult
	r.decode(t, &res)
	f.apps.mu.Lock()
	pkg, user := string(f.apps.pkg), f.apps.pkgUser
	f.apps.mu.Unlock()
	if !res.App.Sideloaded || pkg != "package bytes" || user != "erin" || f.apps.lastCall() != "install tool.tar.gz" {
		t.Errorf("install: %+v, package %q by %q, runtime saw %q", res, pkg, user, f.apps.lastCall())
	}
	evs := f.events(protocol.EventSideloadInstalled)
	if len(evs) != 1 || evs[0].Severity != "security" || evs[0].Details["action"] != "install" || evs[0].Details["user"] != "erin" {
		t.Errorf("install events = %+v", evs)
	}

	// Banned again by a group override: the message names that group's
	// command.
	d = f.doc(baseInput())
	d.Sideload = protocol.SideloadPolicy{Allowed: false, Groups: []string{"cell-3"}}
	f.publish(d)
	r = install(erin)
	wantStatus(t, r, http.StatusForbidden)
	if msg := r.errMsg(t); !strings.Contains(msg, "override of group cell-3") || !strings.Contains(msg, "`edgewarden settings sideload allow --group cell-3`") {
		t.Errorf("ban by an override: %q", msg)
	}
}

func TestNoAppsRuntime(t *testing.T) {
	f := newFixture(t, func(o *localapi.Options) { o.Apps = nil })
	f.publish(f.doc(baseInput()))
	r := f.do("GET", localwire.PathApps, f.token("alice", time.Hour), nil)
	wantStatus(t, r, http.StatusNotImplemented)
	if msg := r.errMsg(t); !strings.Contains(msg, "no apps runtime yet") {
		t.Errorf("stub: %q", msg)
	}
}
