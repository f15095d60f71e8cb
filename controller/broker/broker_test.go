package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/controller/pki"
	"github.com/edgewarden/edgewarden/protocol"
)

func TestNewRefusesBadOptions(t *testing.T) {
	a := newAuthority(t)
	ingest := (&recorder{}).ingest
	noClientAuth := a.MQTTServerConfig()
	noClientAuth.ClientAuth = tls.VerifyClientCertIfGiven
	for name, o := range map[string]Options{
		"no TLS":            {Ingest: ingest},
		"no client auth":    {TLS: a.HTTPSConfig(), Ingest: ingest},
		"optional certs":    {TLS: noClientAuth, Ingest: ingest},
		"no ingest":         {TLS: a.MQTTServerConfig()},
		"negative inflight": {TLS: a.MQTTServerConfig(), Ingest: ingest, MaxInflight: -1},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted", name)
		}
	}
}

func TestStartCloseLifecycle(t *testing.T) {
	a := newAuthority(t)
	never, err := New(Options{TLS: a.MQTTServerConfig(), Ingest: (&recorder{}).ingest, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if never.Addr() != nil {
		t.Error("Addr before Start is not nil")
	}
	if err := never.Close(); err != nil {
		t.Fatalf("Close without Start: %v", err)
	}
	if err := never.Start(); err == nil {
		t.Error("Start after Close succeeded")
	}

	f := startBroker(t, nil)
	if err := f.b.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	f.device("dev-1")
	if err := f.b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := f.b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := f.b.Publish(context.Background(), protocol.DesiredTopic("dev-1"), []byte("x"), true); err == nil {
		t.Error("Publish after Close succeeded")
	}
	if c, err := net.Dial("tcp", f.addr); err == nil {
		c.Close()
		t.Error("broker still accepts connections after Close")
	}
}

func TestDeviceReceivesRetainedDesired(t *testing.T) {
	f := startBroker(t, nil)
	ctx := context.Background()
	doc := bytes.Repeat([]byte("d"), 2048)
	if err := f.b.Publish(ctx, protocol.DesiredTopic("dev-1"), doc, true); err != nil {
		t.Fatal(err)
	}
	if err := f.b.Publish(ctx, protocol.DesiredTopic("dev-2"), []byte("other"), true); err != nil {
		t.Fatal(err)
	}

	c := f.device("dev-1")
	code, ch := subscribe(t, c, protocol.DesiredTopic("dev-1"))
	if code != 1 {
		t.Fatalf("subscribe own desired: code %#x, want QoS 1", code)
	}
	select {
	case m := <-ch:
		if m.Topic() != protocol.DesiredTopic("dev-1") || !bytes.Equal(m.Payload(), doc) {
			t.Fatalf("got %s %q", m.Topic(), m.Payload())
		}
	case <-time.After(waitFor):
		t.Fatal("retained desired document not delivered")
	}

	// A live update arrives too; clearing the retained message leaves
	// nothing for the next subscriber.
	if err := f.b.Publish(ctx, protocol.DesiredTopic("dev-1"), []byte("rev2"), true); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ch:
		if string(m.Payload()) != "rev2" {
			t.Fatalf("live update %q", m.Payload())
		}
	case <-time.After(waitFor):
		t.Fatal("live desired update not delivered")
	}
	if err := f.b.Publish(ctx, protocol.DesiredTopic("dev-1"), nil, true); err != nil {
		t.Fatal(err)
	}
	eventually(t, "retained message cleared", func() bool {
		return len(f.b.srv.Topics.Messages(protocol.DesiredTopic("dev-1"))) == 0
	})
}

func TestDeviceSubscribeACL(t *testing.T) {
	f := startBroker(t, nil)
	ctx := context.Background()
	for _, id := range []string{"dev-1", "dev-2"} {
		if err := f.b.Publish(ctx, protocol.DesiredTopic(id), []byte("doc-"+id), true); err != nil {
			t.Fatal(err)
		}
	}
	c := f.device("dev-1")
	for _, filter := range []string{
		protocol.DesiredTopic("dev-2"),
		protocol.AckTopic("dev-2"),
		protocol.AllDevices(protocol.KindAck),
		"#",
		"edgewarden/#",
		protocol.TopicRoot + "+/desired",
		protocol.TopicRoot + "dev-1/#",
		protocol.TopicRoot + "dev-1/+",
		protocol.StatusTopic("dev-1"),
		protocol.AllDevices(protocol.KindStatus),
		"$SYS/#",
		"$share/g/" + protocol.DesiredTopic("dev-1"),
	} {
		code, ch := subscribe(t, c, filter)
		if code < 0x80 {
			t.Errorf("subscribe %q granted (code %#x)", filter, code)
		}
		select {
		case m := <-ch:
			t.Errorf("subscribe %q delivered %s", filter, m.Topic())
		default:
		}
	}
	if !c.IsConnected() {
		t.Fatal("refused subscriptions disconnected the device")
	}
	// Its own desired still works after the refusals.
	if code, ch := subscribe(t, c, protocol.DesiredTopic("dev-1")); code != 1 {
		t.Fatalf("own desired refused: %#x", code)
	} else if m := <-ch; string(m.Payload()) != "doc-dev-1" {
		t.Fatalf("got %q", m.Payload())
	}
	// ...and its own acknowledgements, which only the controller writes.
	code, ch := subscribe(t, c, protocol.AckTopic("dev-1"))
	if code != 1 {
		t.Fatalf("own ack topic refused: %#x", code)
	}
	if err := f.b.Publish(ctx, protocol.AckTopic("dev-1"), []byte("ack-dev-1"), false); err != nil {
		t.Fatal(err)
	}
	if m := <-ch; string(m.Payload()) != "ack-dev-1" {
		t.Fatalf("got %q", m.Payload())
	}
}

func TestDevicePublishACL(t *testing.T) {
	for _, topic := range []string{
		protocol.StatusTopic("dev-2"),
		protocol.EventsTopic("dev-2"),
		protocol.PresenceTopic("dev-2"),
		protocol.DesiredTopic("dev-1"),
		protocol.DesiredTopic("dev-2"),
		protocol.AckTopic("dev-1"), // a device cannot acknowledge its own events
		protocol.AckTopic("dev-2"),
		"edgewarden/v1/devices/dev-1/other",
		"random/topic",
	} {
		t.Run(topic, func(t *testing.T) {
			f := startBroker(t, nil)
			lost := make(chan error, 1)
			c, err := f.connect(clientOpts{clientID: "dev-1", certs: []tls.Certificate{deviceCert(t, f.ca, "dev-1")}, clean: true, lost: lost})
			if err != nil {
				t.Fatal(err)
			}
			tok := c.Publish(topic, 1, true, []byte(`{"forged":true}`))
			select {
			case <-lost:
			case <-time.After(waitFor):
				t.Fatal("forbidden publish did not disconnect the device")
			}
			if tok.WaitTimeout(time.Second) && tok.Error() == nil {
				t.Error("forbidden publish was acknowledged")
			}
			if n := len(f.rec.got()); n != 0 {
				t.Errorf("forbidden publish reached Ingest %d times", n)
			}
			if m := f.b.srv.Topics.Messages(topic); len(m) != 0 {
				t.Errorf("forbidden publish was retained: %v", m)
			}
		})
	}
}

func TestDevicePublishIsIngestedBeforeAck(t *testing.T) {
	rec := &recorder{enter: make(chan ingested, 1), hold: make(chan struct{})}
	f := startBroker(t, func(o *Options) { o.Ingest = rec.ingest })
	f.rec = rec
	c := f.device("dev-1")

	payload := []byte(`{"schema":1,"device_id":"dev-1"}`)
	tok := c.Publish(protocol.StatusTopic("dev-1"), 1, true, payload)
	select {
	case in := <-rec.enter:
		if in.device != "dev-1" || in.kind != protocol.KindStatus || !bytes.Equal(in.payload, payload) {
			t.Fatalf("Ingest got %+v", in)
		}
	case <-time.After(waitFor):
		t.Fatal("Ingest not called")
	}
	// Ingest is blocked, so the broker cannot have acknowledged yet.
	select {
	case <-tok.Done():
		t.Fatal("publish acknowledged while Ingest was still running")
	default:
	}
	close(rec.hold)
	if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("publish not acknowledged after Ingest returned: %v", tok.Error())
	}
	if got := rec.got(); len(got) != 1 || !bytes.Equal(got[0].payload, payload) {
		t.Fatalf("stored %+v", got)
	}
	// Stored by Ingest, so the broker keeps no retained copy.
	if m := f.b.srv.Topics.Messages(protocol.StatusTopic("dev-1")); len(m) != 0 {
		t.Errorf("the broker retained %d copies of a stored status", len(m))
	}

	// Events and presence go through Ingest with their kind.
	for _, topic := range []string{protocol.EventsTopic("dev-1"), protocol.PresenceTopic("dev-1")} {
		go func() { <-rec.enter }()
		if tok := c.Publish(topic, 1, false, []byte("x")); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	if rec.count("dev-1", protocol.KindEvents) != 1 || rec.count("dev-1", protocol.KindPresence) != 1 {
		t.Fatalf("ingested %+v", rec.got())
	}
}

// An Ingest failure must not be acknowledged: the device is disconnected and
// its paho session sends the message again after reconnecting.
func TestIngestFailureIsRetried(t *testing.T) {
	rec := &recorder{fail: 1}
	f := startBroker(t, func(o *Options) { o.Ingest = rec.ingest })
	lost := make(chan error, 4)
	c, err := f.connect(clientOpts{clientID: "dev-1", certs: []tls.Certificate{deviceCert(t, f.ca, "dev-1")}, clean: false, reconn: true, lost: lost})
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"events":[{"id":"e1"}]}`)
	tok := c.Publish(protocol.EventsTopic("dev-1"), 1, false, payload)
	select {
	case <-lost:
	case <-time.After(waitFor):
		t.Fatal("failed Ingest did not disconnect the device")
	}
	// paho completes the original token when it resumes the session (it
	// re-sends the stored message under a new token), so the token is no
	// proof of storage here; what matters is that the message is stored.
	tok.WaitTimeout(waitFor)
	eventually(t, "message stored after reconnect", func() bool { return len(rec.got()) == 1 })
	if got := rec.got(); !bytes.Equal(got[0].payload, payload) || got[0].kind != protocol.KindEvents {
		t.Fatalf("stored %+v, want the event batch", got)
	}
}

func TestOversizedPublishRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		topic string
		size  int
	}{
		"status over its limit": {protocol.StatusTopic("dev-1"), protocol.MaxStatusBytes + 1},
		"presence over limit":   {protocol.PresenceTopic("dev-1"), protocol.MaxPresenceBytes + 1},
		"packet over broker":    {protocol.EventsTopic("dev-1"), protocol.MaxMessageBytes + packetOverhead},
	} {
		t.Run(name, func(t *testing.T) {
			f := startBroker(t, nil)
			lost := make(chan error, 1)
			c, err := f.connect(clientOpts{clientID: "dev-1", certs: []tls.Certificate{deviceCert(t, f.ca, "dev-1")}, clean: true, lost: lost})
			if err != nil {
				t.Fatal(err)
			}
			tok := c.Publish(tc.topic, 1, false, bytes.Repeat([]byte("x"), tc.size))
			select {
			case <-lost:
			case <-time.After(waitFor):
				t.Fatal("oversized publish did not disconnect the device")
			}
			if tok.WaitTimeout(time.Second) && tok.Error() == nil {
				t.Error("oversized publish acknowledged")
			}
			if n := len(f.rec.got()); n != 0 {
				t.Errorf("oversized publish reached Ingest")
			}
		})
	}
}

func TestConnectionIdentity(t *testing.T) {
	allow := map[string]bool{"dev-1": true, "dev-2": true, "dev-3": true, "dev-gone": false}
	f := startBroker(t, func(o *Options) { o.AllowDevice = func(id string) bool { return allow[id] } })
	other := newAuthority(t)

	refused := []struct {
		name string
		o    clientOpts
	}{
		{"no certificate", clientOpts{clientID: "dev-1", clean: true}},
		{"certificate from another CA", clientOpts{clientID: "dev-1", certs: []tls.Certificate{deviceCert(t, other, "dev-1")}, clean: true}},
		{"client id of another device", clientOpts{clientID: "dev-2", certs: []tls.Certificate{deviceCert(t, f.ca, "dev-1")}, clean: true}},
		{"empty client id", clientOpts{clientID: "", certs: []tls.Certificate{deviceCert(t, f.ca, "dev-1")}, clean: true}},
		{"deleted device", clientOpts{clientID: "dev-gone", certs: []tls.Certificate{deviceCert(t, f.ca, "dev-gone")}, clean: true}},
		{"unknown device", clientOpts{clientID: "dev-9", certs: []tls.Certificate{deviceCert(t, f.ca, "dev-9")}, clean: true}},
		{"will on another device's presence", clientOpts{clientID: "dev-1", certs: []tls.Certificate{deviceCert(t, f.ca, "dev-1")}, clean: true,
			will: &[2]string{protocol.PresenceTopic("dev-2"), "offline"}}},
		{"will on own status", clientOpts{clientID: "dev-1", certs: []tls.Certificate{deviceCert(t, f.ca, "dev-1")}, clean: true,
			will: &[2]string{protocol.StatusTopic("dev-1"), "x"}}},
		{"controller cert, device client id", clientOpts{clientID: "dev-1", certs: []tls.Certificate{controllerCert(t, f.ca)}, clean: true}},
		{"controller cert from another CA", clientOpts{clientID: pki.ControllerIdentity, certs: []tls.Certificate{controllerCert(t, other)}, clean: true}},
		{"server certificate as client", clientOpts{clientID: "localhost", certs: f.ca.HTTPSConfig().Certificates, clean: true}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := f.connect(tc.o); err == nil {
				c.Disconnect(0)
				t.Fatal("connection accepted")
			}
		})
	}
	if n := len(f.rec.got()); n != 0 {
		t.Errorf("refused connections reached Ingest %d times", n)
	}

	// Username and password are ignored: identity comes from the certificate.
	c, err := f.connect(clientOpts{clientID: "dev-3", certs: []tls.Certificate{deviceCert(t, f.ca, "dev-3")}, clean: true,
		will: &[2]string{protocol.PresenceTopic("dev-3"), "offline"}})
	if err != nil {
		t.Fatalf("valid device refused: %v", err)
	}
	c.Disconnect(0)
}

func controllerCert(t testing.TB, a *pki.Authority) tls.Certificate {
	t.Helper()
	return a.ClientConfig().Certificates[0]
}

func TestControllerIdentityMayDoEverything(t *testing.T) {
	f := startBroker(t, nil)
	ctl, err := f.connect(clientOpts{clientID: pki.ControllerIdentity + "-1", certs: []tls.Certificate{controllerCert(t, f.ca)}, clean: true})
	if err != nil {
		t.Fatalf("controller connect: %v", err)
	}
	code, statuses := subscribe(t, ctl, protocol.AllDevices(protocol.KindStatus))
	if code != 1 {
		t.Fatalf("controller wildcard subscribe: %#x", code)
	}
	if tok := ctl.Publish(protocol.DesiredTopic("dev-1"), 1, true, []byte("doc")); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("controller publish desired: %v", tok.Error())
	}

	dev := f.device("dev-1")
	if _, ch := subscribe(t, dev, protocol.DesiredTopic("dev-1")); string((<-ch).Payload()) != "doc" {
		t.Fatal("device did not get the controller's retained document")
	}
	if tok := dev.Publish(protocol.StatusTopic("dev-1"), 1, false, []byte("st")); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("device status: %v", tok.Error())
	}
	select {
	case m := <-statuses:
		if m.Topic() != protocol.StatusTopic("dev-1") || string(m.Payload()) != "st" {
			t.Fatalf("controller got %s %q", m.Topic(), m.Payload())
		}
	case <-time.After(waitFor):
		t.Fatal("controller did not receive the device status")
	}
	if f.rec.count("dev-1", protocol.KindStatus) != 1 {
		t.Fatalf("device status not ingested: %+v", f.rec.got())
	}
	if len(f.rec.got()) != 1 {
		t.Fatalf("controller publishes reached Ingest: %+v", f.rec.got())
	}
}

func TestLastWillIsIngested(t *testing.T) {
	f := startBroker(t, nil)
	var raw net.Conn
	will := `{"schema":1,"device_id":"dev-1","state":"offline"}`
	_, err := f.connect(clientOpts{clientID: "dev-1", certs: []tls.Certificate{deviceCert(t, f.ca, "dev-1")}, clean: false,
		will: &[2]string{protocol.PresenceTopic("dev-1"), will}, conn: &raw})
	if err != nil {
		t.Fatal(err)
	}
	raw.Close() // vanish without DISCONNECT
	eventually(t, "last will ingested", func() bool { return f.rec.count("dev-1", protocol.KindPresence) == 1 })
	if got := f.rec.got()[0]; string(got.payload) != will {
		t.Fatalf("will payload %q", got.payload)
	}
}

func TestTakenOverSessionWillNotIngested(t *testing.T) {
	f := startBroker(t, nil)
	cert := deviceCert(t, f.ca, "dev-1")
	will := &[2]string{protocol.PresenceTopic("dev-1"), "offline"}
	if _, err := f.connect(clientOpts{clientID: "dev-1", certs: []tls.Certificate{cert}, clean: false, will: will}); err != nil {
		t.Fatal(err)
	}
	// The same device connects again (e.g. after a network change): the
	// old connection's will must not mark the device offline.
	if _, err := f.connect(clientOpts{clientID: "dev-1", certs: []tls.Certificate{cert}, clean: false, will: will}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "one session left", func() bool {
		n := 0
		for _, cl := range f.b.srv.Clients.GetAll() {
			if cl.ID == "dev-1" && !cl.Closed() {
				n++
			}
		}
		return n == 1
	})
	if n := f.rec.count("dev-1", protocol.KindPresence); n != 0 {
		t.Fatalf("superseded connection's will was stored %d times", n)
	}
}

func TestDisconnectDevice(t *testing.T) {
	var refused atomic.Bool
	f := startBroker(t, func(o *Options) { o.AllowDevice = func(string) bool { return !refused.Load() } })
	lost := make(chan error, 1)
	c, err := f.connect(clientOpts{clientID: "dev-1", certs: []tls.Certificate{deviceCert(t, f.ca, "dev-1")}, clean: false, lost: lost})
	if err != nil {
		t.Fatal(err)
	}
	subscribe(t, c, protocol.DesiredTopic("dev-1"))
	refused.Store(true)
	if !f.b.DisconnectDevice("dev-1") {
		t.Fatal("DisconnectDevice found no session")
	}
	select {
	case <-lost:
	case <-time.After(waitFor):
		t.Fatal("device not disconnected")
	}
	if _, ok := f.b.srv.Clients.Get("dev-1"); ok {
		t.Error("session kept after DisconnectDevice")
	}
	if f.b.DisconnectDevice("dev-1") {
		t.Error("second DisconnectDevice found a session")
	}
	if f.rec.count("dev-1", protocol.KindPresence) != 0 {
		t.Error("deleted device's will stored")
	}
}

func TestPublishRejectsBadInput(t *testing.T) {
	f := startBroker(t, nil)
	ctx := context.Background()
	for _, topic := range []string{"", "a/+/b", "a/#"} {
		if err := f.b.Publish(ctx, topic, []byte("x"), true); err == nil {
			t.Errorf("Publish to %q accepted", topic)
		}
	}
	if err := f.b.Publish(ctx, "t", make([]byte, protocol.MaxMessageBytes+1), true); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized Publish: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := f.b.Publish(cctx, "t", []byte("x"), true); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with cancelled context: %v", err)
	}
	if n := f.b.srv.Topics.Retained.Len(); n != 0 {
		// $SYS topics are retained too; only count ours.
		for topic := range f.b.srv.Topics.Retained.GetAll() {
			if !strings.HasPrefix(topic, "$SYS") {
				t.Errorf("refused Publish retained %q", topic)
			}
		}
	}
}

func TestOfflineDeviceKeepsOnlyLatestDesired(t *testing.T) {
	f := startBroker(t, nil)
	cert := deviceCert(t, f.ca, "dev-1")
	c, err := f.connect(clientOpts{clientID: "dev-1", certs: []tls.Certificate{cert}, clean: false})
	if err != nil {
		t.Fatal(err)
	}
	subscribe(t, c, protocol.DesiredTopic("dev-1"))
	c.Disconnect(250) // clean DISCONNECT: the persistent session stays
	eventually(t, "device offline", func() bool {
		cl, ok := f.b.srv.Clients.Get("dev-1")
		return ok && cl.Closed()
	})

	ctx := context.Background()
	for _, rev := range []string{"rev1", "rev2", "rev3", "rev4"} {
		if err := f.b.Publish(ctx, protocol.DesiredTopic("dev-1"), []byte(rev), true); err != nil {
			t.Fatal(err)
		}
	}
	cl, _ := f.b.srv.Clients.Get("dev-1")
	if n := cl.State.Inflight.Len(); n != 1 {
		t.Fatalf("%d documents queued for the offline device, want 1", n)
	}

	// On return the device gets the latest document only.
	got := make(chan string, 8)
	po := clientOpts{clientID: "dev-1", certs: []tls.Certificate{cert}, clean: false}
	c2, err := f.connectWithHandler(po, func(payload []byte) { got <- string(payload) })
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Disconnect(0)
	select {
	case p := <-got:
		if p != "rev4" {
			t.Fatalf("resumed session delivered %q, want rev4", p)
		}
	case <-time.After(waitFor):
		t.Fatal("queued document not delivered on reconnect")
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	a := newAuthority(t)
	b, err := New(Options{Addr: "127.0.0.1:0", TLS: a.MQTTServerConfig(), Ingest: (&recorder{}).ingest, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	// A connected device and a socket stuck before the TLS handshake.
	f := &fixture{t: t, ca: a, b: b, rec: &recorder{}, addr: b.Addr().String()}
	c, err := f.connect(clientOpts{clientID: "dev-1", certs: []tls.Certificate{deviceCert(t, a, "dev-1")}, clean: true})
	if err != nil {
		t.Fatal(err)
	}
	idle, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	eventually(t, "idle connection accepted", func() bool {
		b.ln.mu.Lock()
		defer b.ln.mu.Unlock()
		return len(b.ln.conns) == 2
	})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	c.Disconnect(0)
	eventually(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}
