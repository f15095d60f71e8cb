package mqttlink

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgewarden/edgewarden/controller/broker"
	"github.com/edgewarden/edgewarden/controller/pki"
	"github.com/edgewarden/edgewarden/protocol"
)

const waitFor = 10 * time.Second

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type stored struct {
	device, kind, payload string
}

type recorder struct {
	mu    sync.Mutex
	calls []stored
	fail  int
}

func (r *recorder) ingest(_ context.Context, device, kind string, payload []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return errors.New("database is locked")
	}
	r.calls = append(r.calls, stored{device, kind, string(payload)})
	return nil
}

func (r *recorder) has(s stored) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.calls {
		if c == s {
			return true
		}
	}
	return false
}

func deviceTLS(t *testing.T, a *pki.Authority, id string) *tls.Config {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := a.SignDeviceCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: a.CACertPool(), Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

func connectDevice(t *testing.T, url string, cfg *tls.Config, id string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).SetTLSConfig(cfg).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("device %s connect: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// exercise runs the same checks against any broker at url that trusts a.
func exercise(t *testing.T, url string, a *pki.Authority) {
	rec := &recorder{fail: 2}
	link, err := New(Options{BrokerURL: url, TLS: a.ClientConfig(), Ingest: rec.ingest, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := link.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	eventually(t, "link subscribed", link.Subscribed)

	// The controller publishes a retained desired document; the device gets it.
	if err := link.Publish(ctx, protocol.DesiredTopic("dev-1"), []byte("doc-1"), true); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	dev := connectDevice(t, url, deviceTLS(t, a, "dev-1"), "dev-1")
	got := make(chan []byte, 4)
	if tok := dev.Subscribe(protocol.DesiredTopic("dev-1"), 1, func(_ paho.Client, m paho.Message) { got <- m.Payload() }); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("device subscribe: %v", tok.Error())
	}
	select {
	case p := <-got:
		if string(p) != "doc-1" {
			t.Fatalf("device got %q", p)
		}
	case <-time.After(waitFor):
		t.Fatal("device did not receive the retained document")
	}

	// Device messages reach Ingest, also when the first attempts fail.
	for _, kind := range []string{protocol.KindStatus, protocol.KindEvents, protocol.KindPresence} {
		topic := protocol.TopicRoot + "dev-1/" + kind
		if tok := dev.Publish(topic, 1, false, []byte(kind+"-payload")); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
			t.Fatalf("device publish %s: %v", kind, tok.Error())
		}
	}
	for _, kind := range []string{protocol.KindStatus, protocol.KindEvents, protocol.KindPresence} {
		want := stored{"dev-1", kind, kind + "-payload"}
		eventually(t, "link ingested "+kind, func() bool { return rec.has(want) })
	}

	// Clearing the retained document.
	if err := link.Publish(ctx, protocol.DesiredTopic("dev-1"), nil, true); err != nil {
		t.Fatalf("clear retained: %v", err)
	}
	if err := link.Close(); err != nil {
		t.Fatal(err)
	}
	if err := link.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := link.Publish(context.Background(), protocol.DesiredTopic("dev-1"), []byte("x"), true); err == nil {
		t.Error("Publish after Close succeeded")
	}
}

func TestLinkWithEmbeddedBroker(t *testing.T) {
	a, err := pki.Init(filepath.Join(t.TempDir(), "pki"), pki.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Options{
		Addr:   "127.0.0.1:0",
		TLS:    a.MQTTServerConfig(),
		Ingest: func(context.Context, string, string, []byte) error { return nil },
		Logger: quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	exercise(t, "tls://"+b.Addr().String(), a)
}

func TestNewRefusesBadOptions(t *testing.T) {
	ok := Options{BrokerURL: "tls://127.0.0.1:1", TLS: &tls.Config{}, Ingest: (&recorder{}).ingest}
	for name, edit := range map[string]func(*Options){
		"no url":    func(o *Options) { o.BrokerURL = "" },
		"no tls":    func(o *Options) { o.TLS = nil },
		"no ingest": func(o *Options) { o.Ingest = nil },
	} {
		o := ok
		edit(&o)
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// mosquittoACL is the per-device ACL for an external mosquitto: identity
// from the certificate CN, the controller may do everything.
const mosquittoACL = `user ` + pki.ControllerIdentity + `
topic readwrite #

pattern read edgewarden/v1/devices/%u/desired
pattern write edgewarden/v1/devices/%u/status
pattern write edgewarden/v1/devices/%u/events
pattern write edgewarden/v1/devices/%u/presence
`

func TestLinkWithMosquitto(t *testing.T) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			t.Skip("mosquitto is not installed (apt-get install -y mosquitto); skipping the external-broker test")
		}
		bin = "/usr/sbin/mosquitto"
	}
	dir := t.TempDir()
	a, err := pki.Init(filepath.Join(dir, "pki"), pki.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	acl := filepath.Join(dir, "acl")
	if err := os.WriteFile(acl, []byte(mosquittoACL), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`per_listener_settings false
allow_anonymous false
persistence false
log_dest stderr
listener %d 127.0.0.1
cafile %s
certfile %s
keyfile %s
require_certificate true
use_identity_as_username true
acl_file %s
`, port, filepath.Join(dir, "pki", pki.CAFile), filepath.Join(dir, "pki", pki.ServerCertFile), filepath.Join(dir, "pki", pki.ServerKeyFile), acl)
	if os.Geteuid() == 0 {
		conf += "user root\n" // otherwise mosquitto drops to a user that cannot read the test's keys
	}
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cmd := exec.Command(bin, "-c", confPath)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", logs.String())
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	eventually(t, "mosquitto listening", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("mosquitto exited: %v\n%s", err, logs.String())
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	exercise(t, "tls://"+addr, a)

	// mosquitto enforces the per-device ACL with this config: another
	// device's status never reaches the controller.
	rec := &recorder{}
	link, err := New(Options{BrokerURL: "tls://" + addr, TLS: a.ClientConfig(), ClientID: pki.ControllerIdentity + "-acl", Ingest: rec.ingest, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := link.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	eventually(t, "link subscribed", link.Subscribed)
	dev := connectDevice(t, "tls://"+addr, deviceTLS(t, a, "dev-2"), "dev-2")
	dev.Publish(protocol.StatusTopic("dev-3"), 1, false, []byte("forged")).WaitTimeout(waitFor)
	dev.Publish(protocol.StatusTopic("dev-2"), 1, false, []byte("mine")).WaitTimeout(waitFor)
	eventually(t, "own status stored", func() bool { return rec.has(stored{"dev-2", protocol.KindStatus, "mine"}) })
	if rec.has(stored{"dev-3", protocol.KindStatus, "forged"}) {
		t.Fatal("mosquitto let dev-2 publish dev-3's status")
	}
	if strings.Contains(logs.String(), "Error") {
		t.Logf("mosquitto reported errors:\n%s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine of exec and
// the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
