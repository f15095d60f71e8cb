package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgewarden/edgewarden/controller/pki"
)

const waitFor = 10 * time.Second

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type ingested struct {
	device, kind string
	payload      []byte
}

// recorder is an Ingest function that records calls and can fail or block.
type recorder struct {
	mu    sync.Mutex
	calls []ingested
	fail  int                  // fail this many calls, then succeed
	hold  chan struct{}        // if set, each call blocks until it can receive
	enter chan ingested        // if set, each call reports itself here first
	err   func(ingested) error // optional extra failure rule
}

func (r *recorder) ingest(ctx context.Context, device, kind string, payload []byte) error {
	in := ingested{device, kind, append([]byte(nil), payload...)}
	if r.enter != nil {
		r.enter <- in
	}
	if r.hold != nil {
		select {
		case <-r.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return io.ErrUnexpectedEOF
	}
	if r.err != nil {
		if err := r.err(in); err != nil {
			return err
		}
	}
	r.calls = append(r.calls, in)
	return nil
}

func (r *recorder) got() []ingested {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ingested(nil), r.calls...)
}

func (r *recorder) count(device, kind string) int {
	n := 0
	for _, c := range r.got() {
		if c.device == device && c.kind == kind {
			n++
		}
	}
	return n
}

type fixture struct {
	t    testing.TB
	ca   *pki.Authority
	b    *Broker
	rec  *recorder
	addr string
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newAuthority(t testing.TB) *pki.Authority {
	t.Helper()
	a, err := pki.Init(filepath.Join(t.TempDir(), "pki"), pki.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// startBroker starts a broker on 127.0.0.1:0; edit adjusts its options.
func startBroker(t testing.TB, edit func(*Options)) *fixture {
	t.Helper()
	f := &fixture{t: t, ca: newAuthority(t), rec: &recorder{}}
	opts := Options{
		Addr:   "127.0.0.1:0",
		TLS:    f.ca.MQTTServerConfig(),
		Ingest: f.rec.ingest,
		Logger: quietLogger(),
	}
	if edit != nil {
		edit(&opts)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := b.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	f.b = b
	f.addr = b.Addr().String()
	return f
}

// deviceCert issues a client certificate for cn from authority a.
func deviceCert(t testing.TB, a *pki.Authority, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := a.SignDeviceCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), cn, time.Hour)
	if err != nil {
		t.Fatalf("sign CSR for %s: %v", cn, err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	c, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type clientOpts struct {
	clientID string
	certs    []tls.Certificate // nil: no client certificate
	clean    bool
	will     *[2]string // topic, payload
	reconn   bool
	lost     chan error
	conn     *net.Conn // if set, receives the raw connection (to break it)
	// onMessage receives messages that match no subscription of this
	// client object (those of a resumed session).
	onMessage func(payload []byte)
}

func (f *fixture) connectWithHandler(o clientOpts, h func([]byte)) (paho.Client, error) {
	o.onMessage = h
	return f.connect(o)
}

func (f *fixture) clientTLS(certs []tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: f.ca.CACertPool(), Certificates: certs, MinVersion: tls.VersionTLS12}
}

// connect makes a paho client; it returns the client and the connect error.
func (f *fixture) connect(o clientOpts) (paho.Client, error) {
	f.t.Helper()
	po := paho.NewClientOptions().
		AddBroker("tls://" + f.addr).
		SetClientID(o.clientID).
		SetCleanSession(o.clean).
		SetTLSConfig(f.clientTLS(o.certs)).
		SetAutoReconnect(o.reconn).
		SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).
		SetMaxReconnectInterval(50 * time.Millisecond).
		SetKeepAlive(30 * time.Second).
		SetWriteTimeout(5 * time.Second)
	if o.will != nil {
		po.SetBinaryWill(o.will[0], []byte(o.will[1]), 1, true)
	}
	if o.lost != nil {
		lost := o.lost
		po.SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	}
	if o.conn != nil {
		tc := f.clientTLS(o.certs)
		var mu sync.Mutex
		po.SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			c, err := tls.Dial("tcp", u.Host, tc)
			if err == nil {
				mu.Lock()
				*o.conn = c
				mu.Unlock()
			}
			return c, err
		})
	}
	if o.onMessage != nil {
		h := o.onMessage
		po.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { h(m.Payload()) })
	}
	c := paho.NewClient(po)
	tok := c.Connect()
	if !tok.WaitTimeout(waitFor) {
		f.t.Fatalf("connect as %q: no answer", o.clientID)
	}
	if tok.Error() == nil {
		f.t.Cleanup(func() { c.Disconnect(0) })
	}
	return c, tok.Error()
}

// device connects as device id with a certificate from the fixture's CA.
func (f *fixture) device(id string) paho.Client {
	f.t.Helper()
	c, err := f.connect(clientOpts{clientID: id, certs: []tls.Certificate{deviceCert(f.t, f.ca, id)}, clean: true})
	if err != nil {
		f.t.Fatalf("device %s connect: %v", id, err)
	}
	return c
}

// subscribe subscribes and returns the granted QoS (0x80 = refused) and a
// channel of received messages.
func subscribe(t testing.TB, c paho.Client, filter string) (byte, chan paho.Message) {
	t.Helper()
	ch := make(chan paho.Message, 16)
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) { ch <- m })
	if !tok.WaitTimeout(waitFor) {
		t.Fatalf("subscribe %s: no answer", filter)
	}
	if tok.Error() != nil {
		return 0x80, ch
	}
	for _, code := range tok.(*paho.SubscribeToken).Result() {
		return code, ch
	}
	t.Fatalf("subscribe %s: no result", filter)
	return 0, nil
}
