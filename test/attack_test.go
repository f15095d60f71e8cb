package test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgewarden/edgewarden/protocol"
)

// mqttClient connects to the plant's broker with a certificate pair from
// disk, the way a device (or a thief holding its files) would.
func (p *plant) mqttClient(t *testing.T, clientID, certFile, keyFile string) mqtt.Client {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(p.ctlDir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	opts := mqtt.NewClientOptions().AddBroker("tls://" + p.mqttAddr).SetClientID(clientID).
		SetTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "127.0.0.1"}).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect as %s: %v", clientID, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// TestBrokerACL: a device certificate may read only its own desired topic
// and write only its own status, events and presence.
func TestBrokerACL(t *testing.T) {
	p := newPlant(t)
	token := p.enrollToken("--uses", "2")
	p.mustEnroll("dev-1", token)
	p.mustEnroll("dev-2", token)
	p.startAgent("dev-2")
	p.converged(map[string][]string{"dev-2": nil})

	// dev-1's files, used by an attacker who wants dev-2's document.
	c := p.mqttClient(t, "dev-1", filepath.Join(p.stateDir("dev-1"), "device.pem"), filepath.Join(p.stateDir("dev-1"), "device.key"))
	got := make(chan string, 10)
	for _, topic := range []string{protocol.DesiredTopic("dev-2"), "edgewarden/v1/devices/+/desired", "#"} {
		tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
			if m.Topic() != protocol.DesiredTopic("dev-1") {
				got <- m.Topic()
			}
		})
		tok.WaitTimeout(5 * time.Second)
		st := tok.(*mqtt.SubscribeToken)
		if tok.Error() == nil && st.Result()[topic] != 0x80 {
			t.Errorf("subscribe %q as dev-1: granted QoS %d, want refusal (0x80)", topic, st.Result()[topic])
		}
	}
	// Its own topic works: the broker is not refusing everything.
	own := c.Subscribe(protocol.DesiredTopic("dev-1"), 1, func(mqtt.Client, mqtt.Message) {})
	own.WaitTimeout(5 * time.Second)
	if own.Error() != nil || own.(*mqtt.SubscribeToken).Result()[protocol.DesiredTopic("dev-1")] == 0x80 {
		t.Fatalf("dev-1 cannot subscribe to its own desired topic: %v", own.Error())
	}

	// Publishing a fake status for dev-2 must not reach the controller.
	before := p.device("dev-2")
	fake := `{"schema":1,"device_id":"dev-2","seq":999999,"applied_revision":424242}`
	c.Publish(protocol.StatusTopic("dev-2"), 1, true, fake).WaitTimeout(5 * time.Second)
	after := p.device("dev-2")
	if after.AppliedRevision != before.AppliedRevision {
		t.Fatalf("dev-1 forged dev-2's status: applied revision %d → %d", before.AppliedRevision, after.AppliedRevision)
	}
	select {
	case topic := <-got:
		t.Fatalf("dev-1 received %s", topic)
	default:
	}
}

// TestForgedAndReplayedDocuments: someone who can publish on a device's
// desired topic but does not hold the controller's signing key gets nowhere,
// and an old genuine document cannot roll the device back.
func TestForgedAndReplayedDocuments(t *testing.T) {
	p := newPlant(t)
	p.mustCLI("groups", "create", "line-1")
	token := p.enrollToken("--groups", "line-1")
	p.mustEnroll("dev-1", token)

	// Capture revision 1 as published, to replay later.
	ctl := p.mqttClient(t, "edgewarden:controller-test", filepath.Join(p.ctlDir, "controller.pem"), filepath.Join(p.ctlDir, "controller.key"))
	captured := make(chan []byte, 1)
	ctl.Subscribe(protocol.DesiredTopic("dev-1"), 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case captured <- append([]byte(nil), m.Payload()...):
		default:
		}
	}).WaitTimeout(5 * time.Second)
	var old []byte
	select {
	case old = <-captured:
	case <-time.After(10 * time.Second):
		t.Fatal("no retained document for dev-1")
	}

	p.startAgent("dev-1")
	p.converged(map[string][]string{"dev-1": {"line-1"}})
	p.mustCLI("groups", "remove", "line-1", "dev-1")
	p.converged(map[string][]string{"dev-1": nil})
	applied := p.device("dev-1").AppliedRevision

	// A forged document: higher revision, right device, wrong key.
	_, forger, _ := ed25519.GenerateKey(rand.Reader)
	forged, err := protocol.SignDesired(&protocol.DesiredState{
		Schema: protocol.Schema, DeviceID: "dev-1", Revision: applied + 100,
		IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour), Groups: []string{"admins"},
		Sideload: protocol.SideloadPolicy{Allowed: true},
	}, forger)
	if err != nil {
		t.Fatal(err)
	}
	ctl.Publish(protocol.DesiredTopic("dev-1"), 1, false, forged).WaitTimeout(5 * time.Second)
	eventually(t, 20*time.Second, func() (bool, string) {
		d := p.device("dev-1")
		return d.LastRejected != nil && d.LastRejected.Reason == "bad_signature", "forged document not reported as rejected"
	})
	if d := p.device("dev-1"); d.AppliedRevision != applied || len(d.Groups) != 0 {
		t.Fatalf("forged document changed the device: %+v", d)
	}

	// Replay the genuine revision-1 document.
	ctl.Publish(protocol.DesiredTopic("dev-1"), 1, false, old).WaitTimeout(5 * time.Second)
	eventually(t, 20*time.Second, func() (bool, string) {
		d := p.device("dev-1")
		return d.LastRejected != nil && d.LastRejected.Reason == "replay", "replayed document not reported as rejected"
	})
	if d := p.device("dev-1"); d.AppliedRevision != applied {
		t.Fatalf("replay rolled the device back to %d", d.AppliedRevision)
	}
	if s := p.agentStatus("dev-1"); s.AppliedRevision != applied {
		t.Fatalf("agent's own view after replay: %+v", s)
	}
}
