package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgewarden/edgewarden/controller/broker"
	"github.com/edgewarden/edgewarden/controller/desired"
	"github.com/edgewarden/edgewarden/controller/pki"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
)

// TestEmbeddedBrokerRestartRepublishes restarts the embedded broker under
// a running reconcile loop, as the publishing tests ask (the
// external broker's counterpart, with mosquitto killed -9, is
// test.TestExternalBrokerCrashRepublishes):
//
//  1. a change is stored while the broker is down: its document cannot be
//     published, stays unpublished, and reaches the device once the broker
//     is back;
//  2. a document the broker acknowledged is lost with the broker (it keeps
//     retained messages in memory): after the restart the device gets it
//     again.
//
// Neither needs the controller to restart or recompile. Case 2 fails
// without the hook every broker start runs (startEmbedded → brokerUp): the
// store would say "published" and the new, empty broker would never get
// the document.
func TestEmbeddedBrokerRestartRepublishes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := fleetServer(t, 1)
	db, authority := s.db, s.authority
	const dev = "dev-00000"
	link := &switchable{}
	s.transport = link
	brk, err := s.startEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := brk.Addr().String()
	link.set(brk)
	t.Cleanup(func() { link.set(nil) })

	// As Run does: compile and publish everything, then the loop.
	if err := s.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after cancel (cleanups run last first)
	t.Cleanup(cancel)
	wg.Go(func() { s.reconcileLoop(ctx, time.Now().Add(time.Hour)) })

	d := newDeviceClient(t, authority, dev)
	d.connect(t, addr)
	d.waitRevision(t, 1)
	waitPublished(t, db, dev, 1)

	// 1. The broker goes down; a change is stored meanwhile.
	link.set(nil)
	d.disconnect()
	if _, err := db.Change(ctx, store.AuditEntry{Actor: "test", Action: "settings.banner", Kind: store.AuditChange}, func(ctx context.Context, c *store.Change) error {
		c.DirtyAll()
		return db.SetSetting(ctx, desired.SettingBanner, "authorized use only")
	}); err != nil {
		t.Fatal(err)
	}
	s.Changed()
	waitFor(t, func() (bool, string) {
		recs, err := db.ListDesired(ctx)
		if err != nil || len(recs) != 1 {
			return false, fmt.Sprintf("stored records %v, %v", recs, err)
		}
		return recs[0].Revision == 2, fmt.Sprintf("stored revision %d, want 2", recs[0].Revision)
	})
	if rev, _, _ := db.PublishedRevision(ctx, dev); rev != 1 {
		t.Fatalf("with the broker down, the published revision is %d; want still 1", rev)
	}

	// The broker starts again (same address): the device converges.
	brk, err = s.startEmbedded(addr)
	if err != nil {
		t.Fatal(err)
	}
	link.set(brk)
	d.connect(t, addr)
	d.waitRevision(t, 2)
	waitPublished(t, db, dev, 2)

	// 2. Published and acknowledged, then the broker restarts: the new
	// broker has nothing retained until the loop publishes it again.
	link.set(nil)
	d.disconnect()
	brk, err = s.startEmbedded(addr)
	if err != nil {
		t.Fatal(err)
	}
	link.set(brk)
	fresh := newDeviceClient(t, authority, dev)
	fresh.connect(t, addr)
	fresh.waitRevision(t, 2)
}

// switchable is the transport the test can take down and bring back: nil
// is a broker that is down.
type switchable struct {
	mu  sync.Mutex
	cur *broker.Broker
}

var errBrokerDown = errors.New("the broker is down")

// set replaces the broker, closing the one it held.
func (w *switchable) set(b *broker.Broker) {
	w.mu.Lock()
	old := w.cur
	w.cur = b
	w.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

func (w *switchable) get() *broker.Broker {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur
}

func (w *switchable) Publish(ctx context.Context, topic string, payload []byte, retain bool) error {
	b := w.get()
	if b == nil {
		return errBrokerDown
	}
	return b.Publish(ctx, topic, payload, retain)
}

func (w *switchable) DisconnectDevice(id string) bool {
	b := w.get()
	return b != nil && b.DisconnectDevice(id)
}

func (w *switchable) Close() error { w.set(nil); return nil }

// deviceClient is a device's MQTT session: its certificate, and the
// revisions of the verified documents it received.
type deviceClient struct {
	id      string
	tls     *tls.Config
	trusted map[string]ed25519.PublicKey
	c       paho.Client
	got     chan uint64
}

func newDeviceClient(t *testing.T, authority *pki.Authority, id string) *deviceClient {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	certPEM, _, err := authority.SignDeviceCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	pub := authority.SigningKey().Public().(ed25519.PublicKey)
	return &deviceClient{
		id:      id,
		tls:     &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: authority.CACertPool(), MinVersion: tls.VersionTLS12},
		trusted: map[string]ed25519.PublicKey{protocol.KeyID(pub): pub},
		got:     make(chan uint64, 16),
	}
}

// connect opens a clean session and subscribes to the device's desired
// topic; a retained document arrives at once.
func (d *deviceClient) connect(t *testing.T, addr string) {
	t.Helper()
	d.c = paho.NewClient(paho.NewClientOptions().AddBroker("tls://" + addr).SetClientID(d.id).
		SetTLSConfig(d.tls).SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(30 * time.Second))
	if tok := d.c.Connect(); !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
		t.Fatalf("device %s: connect: %v", d.id, tok.Error())
	}
	t.Cleanup(d.disconnect)
	tok := d.c.Subscribe(protocol.DesiredTopic(d.id), 1, func(_ paho.Client, m paho.Message) {
		env, err := protocol.DecodeEnvelope(m.Payload())
		if err != nil {
			return
		}
		if _, err := protocol.VerifyEnvelope(env, protocol.PayloadTypeDesired, d.trusted); err != nil {
			return
		}
		var doc protocol.DesiredState
		if json.Unmarshal(env.Payload, &doc) == nil && doc.DeviceID == d.id {
			d.got <- doc.Revision
		}
	})
	if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("device %s: subscribe: %v", d.id, tok.Error())
	}
}

func (d *deviceClient) disconnect() {
	if d.c != nil && d.c.IsConnected() {
		d.c.Disconnect(100)
	}
}

// waitRevision waits until the device received a verified document of
// revision rev.
func (d *deviceClient) waitRevision(t *testing.T, rev uint64) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	var seen []uint64
	for {
		select {
		case r := <-d.got:
			if r == rev {
				return
			}
			seen = append(seen, r)
		case <-deadline:
			t.Fatalf("device %s never received revision %d (received %v): a stored document was not published after the broker came back", d.id, rev, seen)
		}
	}
}

// waitPublished waits until the store records that the broker
// acknowledged revision rev of id's document.
func waitPublished(t *testing.T, db *store.DB, id string, rev uint64) {
	t.Helper()
	waitFor(t, func() (bool, string) {
		got, ok, err := db.PublishedRevision(context.Background(), id)
		return err == nil && ok && got == rev, fmt.Sprintf("published revision of %s: %d %v %v, want %d", id, got, ok, err, rev)
	})
}

// waitFor polls cond until it holds, for at most a minute.
func waitFor(t *testing.T, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
