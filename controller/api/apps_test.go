package api_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/controller/api/apitest"
	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/auth"
	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/manifest"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// appsEnv is the API test server (apitest: the real API on the SQLite
// store with the real catalogue, served over TLS that requests, not
// requires, client certificates from the apitest CA, as the controller's
// HTTPS listener does), with an admin client and an anonymous one.
type appsEnv struct {
	t      *testing.T
	db     *store.DB
	artDir string
	srv    *httptest.Server
	pki    *apitest.PKI
	admin  *client.Client
	anon   *client.Client
}

func newAppsEnv(t *testing.T) *appsEnv {
	t.Helper()
	s := apitest.Start(t, apitest.Options{})
	e := &appsEnv{t: t, db: s.SQLite(t), artDir: s.ArtifactDir, srv: s.Server, pki: s.PKI}
	e.anon = e.newClient("", nil)
	login, err := e.anon.Login(context.Background(), apitest.AdminUser, apitest.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	e.admin = e.newClient(login.Token, nil)
	return e
}

func (e *appsEnv) serverPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(e.srv.Certificate())
	return pool
}

func (e *appsEnv) newClient(token string, cert *tls.Certificate) *client.Client {
	e.t.Helper()
	opts := client.Options{BaseURL: e.srv.URL, CAPool: e.serverPool(), Token: token}
	if cert != nil {
		opts.HTTPClient = e.deviceHTTP(cert)
	}
	c, err := client.New(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *appsEnv) deviceHTTP(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: e.serverPool()}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
}

// enroll enrolls a device through the API and returns its TLS certificate.
func (e *appsEnv) enroll(id string, groups ...string) *tls.Certificate {
	e.t.Helper()
	ctx := context.Background()
	tok, err := e.admin.CreateEnrollToken(ctx, apiv1.CreateEnrollTokenRequest{Groups: groups})
	if err != nil {
		e.t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	resp, err := e.anon.Enroll(ctx, apiv1.EnrollRequest{Token: tok.Token, CSRPEM: string(csr)})
	if err != nil {
		e.t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	cert, err := tls.X509KeyPair([]byte(resp.CertificatePEM), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		e.t.Fatal(err)
	}
	return &cert
}

// objects returns the digests in the artifact store.
func (e *appsEnv) objects() []string {
	e.t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(e.artDir, "objects"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, d.Name())
		}
		return nil
	})
	tmp, _ := filepath.Glob(filepath.Join(e.artDir, "tmp", "*"))
	out = append(out, tmp...)
	slices.Sort(out)
	return out
}

// signer is a publisher key pair in cosign's format.
type signer struct {
	key *ecdsa.PrivateKey
	pub string
}

func newSigner(t *testing.T) signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return signer{k, string(pub)}
}

// sign returns what `cosign sign-blob --key` writes: base64 of the ASN.1
// ECDSA signature over the SHA-256 of the blob.
func (s signer) sign(blob []byte) []byte {
	sum := sha256.Sum256(blob)
	sig, err := ecdsa.SignASN1(rand.Reader, s.key, sum[:])
	if err != nil {
		panic(err)
	}
	return []byte(base64.StdEncoding.EncodeToString(sig))
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

type testArtifact struct {
	path string
	data []byte
}

func makeManifest(t *testing.T, name, version, publisher string, arts ...testArtifact) []byte {
	t.Helper()
	m := manifest.Manifest{Name: name, Version: version, Publisher: publisher, Runtime: manifest.RuntimeProcess,
		Exec: manifest.Exec{Command: arts[0].path}}
	for _, a := range arts {
		m.Artifacts = append(m.Artifacts, manifest.Artifact{Path: a.path, SHA256: digest(a.data), Size: int64(len(a.data)), Mode: 0o755})
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func push(ctx context.Context, c *client.Client, raw, sig []byte, arts ...testArtifact) (*apiv1.AppVersion, error) {
	req := client.PushRequest{Manifest: raw, Signature: sig}
	for _, a := range arts {
		req.Artifacts = append(req.Artifacts, client.PushArtifact{Path: a.path, Open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(a.data)), nil
		}})
	}
	return c.PushApp(ctx, req)
}

// TestPushCheckpoint1 tries every way to get an unverified app version
// stored; each must be refused with a clear message, leaving no version and
// no artifact behind.
func TestPushCheckpoint1(t *testing.T) {
	ctx := context.Background()
	e := newAppsEnv(t)
	acme, evil, stranger := newSigner(t), newSigner(t), newSigner(t)
	if _, err := e.admin.AddPublisherKey(ctx, "acme", acme.pub); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.AddPublisherKey(ctx, "acme", newSigner(t).pub); err != nil { // a second, unused key
		t.Fatal(err)
	}
	if _, err := e.admin.AddPublisherKey(ctx, "evil", evil.pub); err != nil {
		t.Fatal(err)
	}

	run := []byte("#!/bin/sh\nexec sleep 1000\n")
	data := []byte("some data file\n")
	good := []testArtifact{{"run.sh", run}, {"data.txt", data}}
	raw := makeManifest(t, "web", "1.0.0", "acme", good...)
	other := makeManifest(t, "web", "1.0.1", "acme", good...)
	flip := bytes.Clone(data)
	flip[3] ^= 1
	dotdot := bytes.Replace(raw, []byte(`"data.txt"`), []byte(`"../data.txt"`), 1)
	abs := bytes.Replace(raw, []byte(`"data.txt"`), []byte(`"/etc/data.txt"`), 1)
	unknownPub := makeManifest(t, "web", "1.0.0", "nobody", good...)

	for _, tc := range []struct {
		name string
		raw  []byte
		sig  []byte
		arts []testArtifact
		want string
	}{
		{"unsigned", raw, nil, good, "not signed"},
		{"untrusted key", raw, stranger.sign(raw), good, "signature does not verify against any trusted key of publisher acme (2 keys configured)"},
		{"other publisher's key", raw, evil.sign(raw), good, "publisher acme"},
		{"signature over another manifest", raw, acme.sign(other), good, "does not verify"},
		{"garbage signature", raw, []byte("%%% not base64"), good, "not in a cosign format"},
		{"unknown publisher", unknownPub, acme.sign(unknownPub), good, "no trusted key of publisher nobody"},
		{"one byte changed", raw, acme.sign(raw), []testArtifact{{"run.sh", run}, {"data.txt", flip}}, "digest does not match"},
		{"longer artifact", raw, acme.sign(raw), []testArtifact{{"run.sh", run}, {"data.txt", append(bytes.Clone(data), 'x')}}, "longer than"},
		{"shorter artifact", raw, acme.sign(raw), []testArtifact{{"run.sh", run}, {"data.txt", data[:5]}}, "truncated"},
		{"missing artifact", raw, acme.sign(raw), good[:1], "missing"},
		{"artifact not in the manifest", raw, acme.sign(raw), append(slices.Clone(good), testArtifact{"extra", data}), "not in the manifest"},
		{"artifact sent twice", raw, acme.sign(raw), append(slices.Clone(good), good[0]), "sent twice"},
		{"path with ..", dotdot, acme.sign(dotdot), good, `contains ".."`},
		{"absolute path", abs, acme.sign(abs), good, "absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := push(ctx, e.admin, tc.raw, tc.sig, tc.arts...)
			if !client.IsStatus(err, http.StatusBadRequest) {
				t.Fatalf("push: %v, want 400", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if ok, _ := e.db.HasAppVersion(ctx, "web", "1.0.0"); ok {
				t.Fatal("a refused push stored a version")
			}
			if objs := e.objects(); len(objs) != 0 {
				t.Fatalf("a refused push left objects: %v", objs)
			}
		})
	}
	audit, _ := e.db.ListAudit(ctx, store.AuditFilter{Kind: store.AuditSecurity})
	refused := 0
	for _, a := range audit {
		if a.Action == "app.push-refused" {
			refused++
		}
	}
	if refused < 10 {
		t.Errorf("%d refused pushes audited", refused)
	}

	// The good push is stored; the same artifacts in another version are
	// stored once.
	v, err := push(ctx, e.admin, raw, acme.sign(raw), good...)
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "web" || v.Version != "1.0.0" || len(v.Artifacts) != 2 || !strings.HasPrefix(v.KeyID, "sha256:") || v.PushedBy != "admin" {
		t.Errorf("pushed version: %+v", v)
	}
	if _, err := push(ctx, e.admin, other, acme.sign(other), good...); err != nil {
		t.Fatal(err)
	}
	if objs := e.objects(); !slices.Equal(objs, slices.Sorted(slices.Values([]string{digest(run), digest(data)}))) {
		t.Errorf("objects after two pushes of the same files: %v", objs)
	}
	_, err = push(ctx, e.admin, raw, acme.sign(raw), good...)
	if !client.IsStatus(err, http.StatusConflict) || !strings.Contains(err.Error(), "already pushed") {
		t.Errorf("pushing a version twice: %v", err)
	}
	// A push refused after one of its artifacts matched an existing object
	// does not delete that object.
	v3 := makeManifest(t, "web", "1.0.2", "acme", good...)
	if _, err := push(ctx, e.admin, v3, acme.sign(v3), testArtifact{"run.sh", run}, testArtifact{"data.txt", flip}); err == nil {
		t.Fatal("bad push accepted")
	}
	if objs := e.objects(); len(objs) != 2 {
		t.Errorf("objects after a refused push that shared an artifact: %v", objs)
	}
}

func TestAppsAssignDeleteDownload(t *testing.T) {
	ctx := context.Background()
	e := newAppsEnv(t)
	acme := newSigner(t)
	if _, err := e.admin.AddPublisherKey(ctx, "acme", acme.pub); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"line-1", "line-2"} {
		if _, err := e.admin.CreateGroup(ctx, g, ""); err != nil {
			t.Fatal(err)
		}
	}
	run := bytes.Repeat([]byte("0123456789"), 100)
	arts := []testArtifact{{"run.sh", run}}
	raw := makeManifest(t, "web", "1.0.0", "acme", arts...)
	if _, err := push(ctx, e.admin, raw, acme.sign(raw), arts...); err != nil {
		t.Fatal(err)
	}
	raw2 := makeManifest(t, "web", "2.0.0", "acme", testArtifact{"run.sh", []byte("v2")})
	if _, err := push(ctx, e.admin, raw2, acme.sign(raw2), testArtifact{"run.sh", []byte("v2")}); err != nil {
		t.Fatal(err)
	}
	press1 := e.enroll("press-01", "line-1")
	press2 := e.enroll("press-02", "line-2")

	// press-01 has not reported yet: Warn, so assign needs --force.
	res, err := e.admin.CheckApp(ctx, "web", "1.0.0", "line-1", false)
	if err != nil || res.Verdict != apiv1.VerdictWarn || len(res.Devices) != 1 {
		t.Fatalf("check: %+v %v", res, err)
	}
	_, err = e.admin.AssignApp(ctx, "web", apiv1.AssignRequest{Version: "1.0.0", Group: "line-1"})
	if !client.IsStatus(err, http.StatusConflict) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("assign on Warn without force: %v", err)
	}
	if _, err := e.admin.AssignApp(ctx, "web", apiv1.AssignRequest{Version: "1.0.0", Group: "line-1", Force: true}); err != nil {
		t.Fatal(err)
	}
	// press-02 reports web 2.0.0 running: 1.0.0 is a downgrade (Block),
	// Warn with --allow-downgrade.
	err = e.db.RecordStatus(ctx, []store.StatusUpdate{{DeviceID: "press-02", At: time.Now(), Report: protocol.StatusReport{
		Seq: 1, Apps: []protocol.AppStatus{{Name: "web", Version: "2.0.0", State: protocol.AppRunning}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := e.admin.CheckApp(ctx, "web", "1.0.0", "line-2", false); res == nil || res.Verdict != apiv1.VerdictBlock {
		t.Fatalf("downgrade check: %+v", res)
	}
	_, err = e.admin.AssignApp(ctx, "web", apiv1.AssignRequest{Version: "1.0.0", Group: "line-2", Force: true})
	if !client.IsStatus(err, http.StatusConflict) || !strings.Contains(err.Error(), "Block") {
		t.Fatalf("assign on Block: %v", err)
	}
	if res, _ := e.admin.CheckApp(ctx, "web", "1.0.0", "line-2", true); res == nil || res.Verdict != apiv1.VerdictWarn {
		t.Fatalf("downgrade check with allow_downgrade: %+v", res)
	}

	app, err := e.admin.GetApp(ctx, "web")
	if err != nil || len(app.Versions) != 2 || len(app.Assignments) != 1 || !app.Assignments[0].Forced {
		t.Fatalf("show: %+v %v", app, err)
	}
	var devs []string
	for _, d := range app.Devices {
		devs = append(devs, d.Device+"="+d.DesiredVersion+"/"+d.Version)
	}
	if !slices.Equal(devs, []string{"press-01=1.0.0/", "press-02=/2.0.0"}) {
		t.Errorf("app devices: %v", devs)
	}

	// delete-version is refused while assigned.
	err = e.admin.DeleteAppVersion(ctx, "web", "1.0.0")
	if !client.IsStatus(err, http.StatusConflict) || !strings.Contains(err.Error(), "line-1") {
		t.Fatalf("delete while assigned: %v", err)
	}

	// Downloads: a device certificate is required, and only assigned
	// digests are served, with Range support.
	url := e.srv.URL + "/api/v1/artifacts/" + digest(run)
	get := func(hc *http.Client, rng string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	if resp, _ := get(e.deviceHTTP(nil), ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("download without a certificate: %s", resp.Status)
	}
	if resp, _ := get(e.deviceHTTP(press2), ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("download by a device not assigned the artifact: %s", resp.Status)
	}
	resp, body := get(e.deviceHTTP(press1), "")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, run) {
		t.Fatalf("download: %s, %d bytes", resp.Status, len(body))
	}
	resp, body = get(e.deviceHTTP(press1), "bytes=600-")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, run[600:]) {
		t.Fatalf("ranged download: %s, %q", resp.Status, body)
	}
	// A certificate from another CA does not even complete the handshake.
	other, _ := apitest.NewPKI()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "press-01"}}, key)
	certPEM, _, _ := other.SignDeviceCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), "press-01", time.Hour)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	forged, _ := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if _, err := e.deviceHTTP(&forged).Get(url); err == nil {
		t.Error("a certificate from a foreign CA was accepted")
	}
	// A deleted device's certificate stops working.
	if err := e.admin.DeleteDevice(ctx, "press-01"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(e.deviceHTTP(press1), ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("download by a deleted device: %s", resp.Status)
	}

	// Unassign, then delete: the version goes and so does its artifact;
	// 2.0.0's stays.
	if err := e.admin.UnassignApp(ctx, "web", "line-1"); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.DeleteAppVersion(ctx, "web", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	if objs := e.objects(); !slices.Equal(objs, []string{digest([]byte("v2"))}) {
		t.Errorf("objects after delete-version: %v", objs)
	}
	apps, err := e.admin.ListApps(ctx)
	if err != nil || len(apps) != 1 || !slices.Equal(apps[0].Versions, []string{"2.0.0"}) {
		t.Errorf("ls after delete: %+v %v", apps, err)
	}

	// Removing the publisher makes its versions uninstallable: check
	// blocks, and it is audited as a security event.
	if err := e.admin.RemovePublisher(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	res, err = e.admin.CheckApp(ctx, "web", "2.0.0", "line-2", false)
	if err != nil || res.Verdict != apiv1.VerdictBlock || len(res.Reasons) == 0 {
		t.Errorf("check after publisher removal: %+v %v", res, err)
	}
	audit, _ := e.db.ListAudit(ctx, store.AuditFilter{Kind: store.AuditSecurity})
	var actions []string
	for _, a := range audit {
		actions = append(actions, a.Action)
	}
	for _, want := range []string{"publisher.add-key", "publisher.remove", "app.assign-forced"} {
		if !slices.Contains(actions, want) {
			t.Errorf("security audit lacks %s: %v", want, actions)
		}
	}
}

func TestPushBodyLimit(t *testing.T) {
	ctx := context.Background()
	e := newAppsEnv(t)
	acme := newSigner(t)
	if _, err := e.admin.AddPublisherKey(ctx, "acme", acme.pub); err != nil {
		t.Fatal(err)
	}
	// A body far larger than the manifest declares is cut off at the
	// declared size plus framing, not read to the end.
	small := []byte("tiny")
	raw := makeManifest(t, "web", "1.0.0", "acme", testArtifact{"run.sh", small})
	big := bytes.Repeat([]byte("x"), 4<<20)
	_, err := push(ctx, e.admin, raw, acme.sign(raw), testArtifact{"run.sh", big})
	if err == nil || !(client.IsStatus(err, http.StatusBadRequest) || client.IsStatus(err, http.StatusRequestEntityTooLarge)) {
		t.Fatalf("oversized push: %v", err)
	}
	if objs := e.objects(); len(objs) != 0 {
		t.Errorf("objects after an oversized push: %v", objs)
	}
}

// TestAppsNeedGrants: a user without grants can neither trust keys, push,
// assign nor delete, and lists no apps.
func TestAppsNeedGrants(t *testing.T) {
	ctx := context.Background()
	e := newAppsEnv(t)
	acme := newSigner(t)
	if _, err := e.admin.AddPublisherKey(ctx, "acme", acme.pub); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.CreateGroup(ctx, "line-1", ""); err != nil {
		t.Fatal(err)
	}
	arts := []testArtifact{{"run.sh", []byte("x")}}
	raw := makeManifest(t, "web", "1.0.0", "acme", arts...)
	if _, err := push(ctx, e.admin, raw, acme.sign(raw), arts...); err != nil {
		t.Fatal(err)
	}
	hash, _ := auth.HashPassword("nobody-password")
	if _, err := e.db.CreateUser(ctx, store.User{Name: "nobody", PasswordHash: hash, State: store.UserActive, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	login, err := e.anon.Login(ctx, "nobody", "nobody-password")
	if err != nil {
		t.Fatal(err)
	}
	c := e.newClient(login.Token, nil)
	if _, err := c.AddPublisherKey(ctx, "evil", newSigner(t).pub); !client.IsStatus(err, http.StatusForbidden) {
		t.Errorf("publishers add without a grant: %v", err)
	}
	if err := c.RemovePublisher(ctx, "acme"); !client.IsStatus(err, http.StatusForbidden) {
		t.Errorf("publishers remove without a grant: %v", err)
	}
	raw2 := makeManifest(t, "web", "1.0.1", "acme", arts...)
	if _, err := push(ctx, c, raw2, acme.sign(raw2), arts...); !client.IsStatus(err, http.StatusForbidden) {
		t.Errorf("push without a grant: %v", err)
	}
	if _, err := c.AssignApp(ctx, "web", apiv1.AssignRequest{Version: "1.0.0", Group: "line-1"}); !client.IsStatus(err, http.StatusForbidden) {
		t.Errorf("assign without a grant: %v", err)
	}
	if err := c.DeleteAppVersion(ctx, "web", "1.0.0"); !client.IsStatus(err, http.StatusForbidden) {
		t.Errorf("delete-version without a grant: %v", err)
	}
	if apps, err := c.ListApps(ctx); err != nil || len(apps) != 0 {
		t.Errorf("ls without a grant: %+v %v", apps, err)
	}
	if ok, _ := e.db.HasAppVersion(ctx, "web", "1.0.1"); ok {
		t.Error("a refused push stored a version")
	}

	// The right to deploy the app is not enough: assigning it to a group
	// also takes device:app-install on that group.
	if _, err := e.admin.CreateRole(ctx, apiv1.RoleRequest{Name: "web-deployer", Actions: []string{"app:deploy", "app:view"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.CreateGrant(ctx, apiv1.CreateGrantRequest{Role: "web-deployer", User: "nobody", App: "web"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AssignApp(ctx, "web", apiv1.AssignRequest{Version: "1.0.0", Group: "line-1", Force: true}); !client.IsStatus(err, http.StatusForbidden) {
		t.Errorf("assign with app:deploy but no device:app-install on the group: %v", err)
	}
	if as, _ := e.db.ListAssignments(ctx); len(as) != 0 {
		t.Errorf("a refused assign stored %+v", as)
	}
	if _, err := e.admin.CreateRole(ctx, apiv1.RoleRequest{Name: "installer", Actions: []string{"device:app-install"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.CreateGrant(ctx, apiv1.CreateGrantRequest{Role: "installer", User: "nobody", Group: "line-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AssignApp(ctx, "web", apiv1.AssignRequest{Version: "1.0.0", Group: "line-1", Force: true}); err != nil {
		t.Errorf("assign with both rights: %v", err)
	}
}
