package enroll_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgewarden/edgewarden/agent/enroll"
	"github.com/edgewarden/edgewarden/agent/identity"
	"github.com/edgewarden/edgewarden/agent/internal/testpki"
	"github.com/edgewarden/edgewarden/protocol"
)

const goodToken = "tok-123"

// controller is a fake enrollment endpoint over real TLS; its server
// certificate chain is leaf + CA, as the real controller presents it.
type controller struct {
	ca     *testpki.CA
	srv    *httptest.Server
	key    protocol.PublicKey
	labels map[string]string
	// respond, when set, replaces the response.
	respond func(w http.ResponseWriter, req *protocol.EnrollRequest, resp *protocol.EnrollResponse)
}

func newController(t *testing.T) *controller {
	t.Helper()
	c := &controller{ca: testpki.NewCA(t, "controller CA")}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	c.key = protocol.PublicKey{KeyID: protocol.KeyID(pub), Algorithm: "Ed25519", PEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+protocol.EnrollPath, func(w http.ResponseWriter, r *http.Request) {
		var req protocol.EnrollRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			httpError(w, http.StatusBadRequest, "bad request body")
			return
		}
		if req.Token != goodToken {
			httpError(w, http.StatusForbidden, "enrollment token is unknown, expired or used up; ask an admin for a new one")
			return
		}
		block, _ := pem.Decode([]byte(req.CSRPEM))
		csr, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil || csr.CheckSignature() != nil {
			httpError(w, http.StatusBadRequest, "bad CSR")
			return
		}
		c.labels = req.Labels
		cert := c.ca.Issue(t, csr.Subject.CommonName, csr.PublicKey, false)
		resp := &protocol.EnrollResponse{
			DeviceID:       csr.Subject.CommonName,
			CertificatePEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
			CAPEM:          string(c.ca.PEM()),
			ControllerKeys: []protocol.PublicKey{c.key},
			MQTTURL:        "tls://127.0.0.1:8883",
			HTTPURL:        c.srv.URL,
		}
		if c.respond != nil {
			c.respond(w, &req, resp)
			return
		}
		json.NewEncoder(w).Encode(resp)
	})
	c.srv = httptest.NewUnstartedServer(mux)
	c.srv.TLS = &tls.Config{Certificates: []tls.Certificate{c.ca.ServerTLS(t)}}
	c.srv.StartTLS()
	t.Cleanup(c.srv.Close)
	return c
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(protocol.APIError{Error: msg})
}

func (c *controller) opts(dir string) enroll.Options {
	return enroll.Options{
		ControllerURL: c.srv.URL,
		Token:         goodToken,
		CAFingerprint: identity.Fingerprint(c.ca.Cert.Raw),
		StateDir:      dir,
		DeviceID:      "press-01",
		Labels:        map[string]string{"line": "1"},
	}
}

func TestEnroll(t *testing.T) {
	c := newController(t)
	dir := filepath.Join(t.TempDir(), "state")
	res, err := enroll.Enroll(context.Background(), c.opts(dir))
	if err != nil {
		t.Fatal(err)
	}
	if res.DeviceID != "press-01" || c.labels["line"] != "1" {
		t.Fatalf("result %+v, labels sent %v", res, c.labels)
	}
	id, err := identity.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id.DeviceID != "press-01" || id.MQTTURL == "" || len(id.ControllerKeys) != 1 || id.CAFingerprint != identity.Fingerprint(c.ca.Cert.Raw) {
		t.Fatalf("identity %+v", id)
	}
	if _, err := identity.ClientTLS(dir); err != nil {
		t.Fatalf("stored key and certificate do not form a TLS identity: %v", err)
	}
	for _, f := range []string{identity.KeyFile, identity.IdentityFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v mode %v, want 0600", f, err, fi.Mode())
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %v, want 0700", fi.Mode().Perm())
	}
}

func TestEnrollRefusesWrongFingerprint(t *testing.T) {
	c := newController(t)
	other := testpki.NewCA(t, "impostor")
	opts := c.opts(t.TempDir())
	opts.CAFingerprint = identity.Fingerprint(other.Cert.Raw)
	_, err := enroll.Enroll(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Fatalf("enroll with the wrong fingerprint: %v", err)
	}
	if c.labels != nil {
		t.Fatal("request reached the server despite a pin mismatch")
	}
	if _, err := identity.Load(opts.StateDir); err == nil {
		t.Fatal("identity written after a refused enrollment")
	}
}

// A server that presents the pinned CA but a leaf it did not sign (an
// attacker replaying the CA certificate) is refused.
func TestEnrollRefusesLeafNotSignedByPinnedCA(t *testing.T) {
	c := newController(t)
	impostor := testpki.NewCA(t, "impostor")
	fake := impostor.ServerTLS(t)
	fake.Certificate = [][]byte{fake.Certificate[0], c.ca.Cert.Raw} // leaf by impostor + genuine CA
	c.srv.TLS.Certificates = []tls.Certificate{fake}
	_, err := enroll.Enroll(context.Background(), c.opts(t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "pinned CA") {
		t.Fatalf("enroll against a leaf not signed by the pinned CA: %v", err)
	}
}

// The response must carry the pinned CA, not another one.
func TestEnrollRefusesResponseWithOtherCA(t *testing.T) {
	c := newController(t)
	other := testpki.NewCA(t, "other")
	c.respond = func(w http.ResponseWriter, _ *protocol.EnrollRequest, resp *protocol.EnrollResponse) {
		resp.CAPEM = string(other.PEM())
		json.NewEncoder(w).Encode(resp)
	}
	dir := t.TempDir()
	_, err := enroll.Enroll(context.Background(), c.opts(dir))
	if err == nil || !strings.Contains(err.Error(), "not the pinned") {
		t.Fatalf("enroll with a response naming another CA: %v", err)
	}
	if _, err := identity.Load(dir); err == nil {
		t.Fatal("identity written after a refused response")
	}
}

func TestEnrollRefusesCertificateForOtherDevice(t *testing.T) {
	c := newController(t)
	c.respond = func(w http.ResponseWriter, req *protocol.EnrollRequest, resp *protocol.EnrollResponse) {
		key := c.ca.NewDevice(t, "press-99")
		resp.CertificatePEM = string(key.CertPEM())
		json.NewEncoder(w).Encode(resp)
	}
	_, err := enroll.Enroll(context.Background(), c.opts(t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "press-99") {
		t.Fatalf("enroll receiving another device's certificate: %v", err)
	}
}

func TestEnrollSurfacesServerError(t *testing.T) {
	c := newController(t)
	opts := c.opts(t.TempDir())
	opts.Token = "wrong"
	_, err := enroll.Enroll(context.Background(), opts)
	want := "controller refused enrollment (HTTP 403 Forbidden): enrollment token is unknown, expired or used up; ask an admin for a new one"
	if err == nil || err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
}

func TestEnrollRefusesWhenAlreadyEnrolled(t *testing.T) {
	c := newController(t)
	dir := t.TempDir()
	if _, err := enroll.Enroll(context.Background(), c.opts(dir)); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, identity.KeyFile))
	opts := c.opts(dir)
	opts.DeviceID = "press-02"
	_, err := enroll.Enroll(context.Background(), opts)
	want := "already enrolled as press-01 in " + dir + "; remove the directory to enroll again"
	if err == nil || err.Error() != want {
		t.Fatalf("second enrollment: %v, want %q", err, want)
	}
	after, _ := os.ReadFile(filepath.Join(dir, identity.KeyFile))
	if string(before) != string(after) {
		t.Fatal("second enrollment replaced the device key")
	}
}

func TestEnrollBadInput(t *testing.T) {
	c := newController(t)
	for name, mutate := range map[string]func(*enroll.Options){
		"fingerprint without prefix": func(o *enroll.Options) { o.CAFingerprint = strings.TrimPrefix(o.CAFingerprint, "sha256:") },
		"short fingerprint":          func(o *enroll.Options) { o.CAFingerprint = "sha256:abcd" },
		"http URL":                   func(o *enroll.Options) { o.ControllerURL = strings.Replace(o.ControllerURL, "https", "http", 1) },
		"no token":                   func(o *enroll.Options) { o.Token = "" },
		"bad device id":              func(o *enroll.Options) { o.DeviceID = "Press/01" },
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			opts := c.opts(dir)
			mutate(&opts)
			if _, err := enroll.Enroll(context.Background(), opts); err == nil {
				t.Fatal("accepted")
			}
			if _, err := os.Stat(dir); err == nil {
				t.Fatal("state directory created for bad input")
			}
		})
	}
}

func TestSanitizeDeviceID(t *testing.T) {
	for in, want := range map[string]string{
		"Press-01.plant.local":  "press-01.plant.local",
		"My Host_2":             "my-host_2",
		"--x":                   "x",
		strings.Repeat("a", 80): strings.Repeat("a", 63),
	} {
		if got := enroll.SanitizeDeviceID(in); got != want {
			t.Errorf("SanitizeDeviceID(%q) = %q, want %q", in, got, want)
		}
		if err := protocol.ValidateDeviceID(enroll.SanitizeDeviceID(in)); err != nil {
			t.Errorf("SanitizeDeviceID(%q): %v", in, err)
		}
	}
}

// Devices cloned from one image share their host name: the default ids
// still differ (by /etc/machine-id), stay stable for one machine, start
// with the host name, do not disclose the machine id, and the host name is
// sent as the "hostname" label.
func TestDefaultDeviceIDUniqueForClones(t *testing.T) {
	c := newController(t)
	host, err := os.Hostname()
	if err != nil {
		t.Skipf("no host name: %v", err)
	}
	machineIDs := []string{"5f1c0a8e0b2c4d6e8f0a1b2c3d4e5f60\n", "0a9b8c7d6e5f40312233445566778899\n"}
	var ids []string
	for i, mid := range machineIDs {
		file := filepath.Join(t.TempDir(), "machine-id")
		if err := os.WriteFile(file, []byte(mid), 0o444); err != nil {
			t.Fatal(err)
		}
		opts := c.opts(filepath.Join(t.TempDir(), "state"))
		opts.DeviceID, opts.MachineIDFile = "", file
		res, err := enroll.Enroll(context.Background(), opts)
		if err != nil {
			t.Fatalf("clone %d: %v", i, err)
		}
		anyKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader) // the machine id decides, not the key
		want, err := enroll.DeviceIDFor(host, []byte(mid), &anyKey.PublicKey)
		if err != nil || res.DeviceID != want || strings.Contains(res.DeviceID, strings.TrimSpace(mid)[:8]) {
			t.Fatalf("clone %d: id %q, want %q (%v): the host name and a suffix that hides the machine id", i, res.DeviceID, want, err)
		}
		if c.labels["hostname"] != host && !strings.ContainsAny(host, " ,=!") {
			t.Fatalf("clone %d: labels sent %v, want hostname=%s", i, c.labels, host)
		}
		if c.labels["line"] != "1" {
			t.Fatalf("clone %d: the operator's labels were lost: %v", i, c.labels)
		}
		ids = append(ids, res.DeviceID)
	}
	if ids[0] == ids[1] {
		t.Fatalf("two clones with one host name got the same id %q", ids[0])
	}
}

func TestDeviceIDFor(t *testing.T) {
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mid := []byte("5f1c0a8e0b2c4d6e8f0a1b2c3d4e5f60\n")
	a, err := enroll.DeviceIDFor("Press-01", mid, &k1.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	// One machine, one id: a new key does not change it.
	if b, _ := enroll.DeviceIDFor("Press-01", mid, &k2.PublicKey); a != b || !strings.HasPrefix(a, "press-01-") || len(a) != len("press-01-")+8 {
		t.Fatalf("ids %q and %q for one machine id", a, b)
	}
	// No machine id: the key decides, so two enrollments still differ.
	x, _ := enroll.DeviceIDFor("press-01", nil, &k1.PublicKey)
	y, _ := enroll.DeviceIDFor("press-01", []byte("  \n"), &k2.PublicKey)
	if x == y || x == a {
		t.Fatalf("without a machine id: %q, %q (with: %q)", x, y, a)
	}
	// A long host name is cut so the suffix still fits the 63 characters.
	long, err := enroll.DeviceIDFor(strings.Repeat("h", 80), mid, &k1.PublicKey)
	if err != nil || len(long) > 63 || protocol.ValidateDeviceID(long) != nil || !strings.HasSuffix(long, a[len(a)-9:]) {
		t.Fatalf("long host name: %q, %v", long, err)
	}
	if _, err := enroll.DeviceIDFor("___", mid, &k1.PublicKey); err == nil || !strings.Contains(err.Error(), "--device-id") {
		t.Fatalf("unusable host name: %v, want an error pointing to --device-id", err)
	}
}
