package agent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgewarden/edgewarden/agent"
	"github.com/edgewarden/edgewarden/agent/identity"
	"github.com/edgewarden/edgewarden/agent/internal/testpki"
	"github.com/edgewarden/edgewarden/protocol"
)

const deviceID = "press-01"

// env is one device's world: a controller CA and signing key, a real MQTT
// broker (mochi-mqtt) on a loopback TLS listener that requires client
// certificates, and an enrolled state directory.
type env struct {
	t        *testing.T
	ca       *testpki.CA
	ctlKey   ed25519.PrivateKey
	broker   *mqtt.Server
	addr     string
	stateDir string

	mu   sync.Mutex
	msgs map[string][][]byte // by topic, in arrival order

	// noAck, when set, makes the fake controller stop acknowledging what
	// the agent sends (a controller that is down behind a live broker).
	noAck atomic.Bool
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, ca: testpki.NewCA(t, "edgewarden test CA"), stateDir: t.TempDir(), msgs: map[string][][]byte{}}
	var err error
	if _, e.ctlKey, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}

	e.broker = mqtt.New(&mqtt.Options{
		InlineClient: true,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := e.broker.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "tls", Address: "127.0.0.1:0", TLSConfig: &tls.Config{
		Certificates: []tls.Certificate{e.ca.ServerTLS(t)},
		ClientCAs:    e.ca.Pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}})
	if err := e.broker.AddListener(l); err != nil {
		t.Fatal(err)
	}
	e.addr = l.Address()
	if err := e.broker.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.broker.Close() })
	err = e.broker.Subscribe(protocol.TopicRoot+"#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.msgs[pk.TopicName] = append(e.msgs[pk.TopicName], bytes.Clone(pk.Payload))
		if !e.noAck.Load() {
			go e.acknowledge(pk.TopicName, bytes.Clone(pk.Payload))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	e.writeState("tls://" + e.addr)
	return e
}

// acknowledge does what the controller does once it stored a status report
// or an event batch: publish a protocol.Ack on the device's ack topic.
func (e *env) acknowledge(topic string, payload []byte) {
	ack := protocol.Ack{Schema: protocol.Schema, DeviceID: deviceID}
	switch topic {
	case protocol.EventsTopic(deviceID):
		b, err := protocol.DecodeEvents(payload, deviceID)
		if err != nil || b.Last == 0 {
			return
		}
		ack.Events = &protocol.SeqRange{First: b.First, Last: b.Last}
	case protocol.StatusTopic(deviceID):
		s, err := protocol.DecodeStatus(payload, deviceID)
		if err != nil || s.Seq == 0 {
			return
		}
		ack.StatusSeq = s.Seq
	default:
		return
	}
	e.sendAck(ack)
}

// sendAck publishes ack on the device's ack topic, as the controller would
// (or as a forger who got at the broker would).
func (e *env) sendAck(ack protocol.Ack) {
	b, _ := json.Marshal(ack)
	e.broker.Publish(protocol.AckTopic(deviceID), b, false, 1)
}

// writeState writes what enrollment would leave in the state directory.
func (e *env) writeState(mqttURL string) {
	e.t.Helper()
	dev := e.ca.NewDevice(e.t, deviceID)
	der, err := x509.MarshalPKIXPublicKey(e.ctlKey.Public())
	if err != nil {
		e.t.Fatal(err)
	}
	pub := e.ctlKey.Public().(ed25519.PublicKey)
	for name, data := range map[string][]byte{
		identity.KeyFile:  dev.KeyPEM(e.t),
		identity.CertFile: dev.CertPEM(),
		identity.CAFile:   e.ca.PEM(),
	} {
		if err := os.WriteFile(identity.Path(e.stateDir, name), data, 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	err = identity.Save(e.stateDir, &identity.Identity{
		DeviceID: deviceID,
		MQTTURL:  mqttURL,
		ControllerKeys: []protocol.PublicKey{{KeyID: protocol.KeyID(pub), Algorithm: "Ed25519",
			PEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}},
		CAFingerprint: identity.Fingerprint(e.ca.Cert.Raw),
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) doc(rev uint64, groups ...string) *protocol.DesiredState {
	now := time.Now().UTC()
	return &protocol.DesiredState{Schema: protocol.Schema, DeviceID: deviceID, Revision: rev,
		IssuedAt: now, ExpiresAt: now.Add(time.Hour), Groups: groups}
}

func (e *env) sign(d *protocol.DesiredState) []byte {
	e.t.Helper()
	raw, err := protocol.SignDesired(d, e.ctlKey)
	if err != nil {
		e.t.Fatal(err)
	}
	return raw
}

// publishDesired publishes raw retained on the device's desired topic, as
// the controller does.
func (e *env) publishDesired(raw []byte) {
	e.t.Helper()
	if err := e.broker.Publish(protocol.DesiredTopic(deviceID), raw, true, 1); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) messages(kind string) [][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([][]byte(nil), e.msgs[protocol.TopicRoot+deviceID+"/"+kind]...)
}

// lastStatus returns the last status report received, or nil.
func (e *env) lastStatus() *protocol.StatusReport {
	msgs := e.messages(protocol.KindStatus)
	if len(msgs) == 0 {
		return nil
	}
	s, err := protocol.DecodeStatus(msgs[len(msgs)-1], deviceID)
	if err != nil {
		e.t.Fatalf("agent published an invalid status report: %v", err)
	}
	return s
}

func (e *env) lastPresence() string {
	msgs := e.messages(protocol.KindPresence)
	if len(msgs) == 0 {
		return ""
	}
	p, err := protocol.DecodePresence(msgs[len(msgs)-1], deviceID)
	if err != nil {
		e.t.Fatalf("agent published an invalid presence: %v", err)
	}
	return p.State
}

// events returns every event delivered, in order.
func (e *env) events() []protocol.Event {
	var out []protocol.Event
	for _, m := range e.messages(protocol.KindEvents) {
		b, err := protocol.DecodeEvents(m, deviceID)
		if err != nil {
			e.t.Fatalf("agent published an invalid event batch: %v", err)
		}
		out = append(out, b.Events...)
	}
	return out
}

// running is an agent started by start.
type running struct {
	*agent.Agent
	logs *logBuffer
	stop func()
}

func (e *env) start() *running { return e.startWith(func(*agent.Options) {}) }

// startWith starts an agent with options adjusted by opt.
func (e *env) startWith(opt func(*agent.Options)) *running {
	e.t.Helper()
	logs := &logBuffer{}
	o := agent.Options{
		StateDir:          e.stateDir,
		Logger:            slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		HeartbeatInterval: time.Hour,
		OutboxInterval:    50 * time.Millisecond,
		MinBackoff:        10 * time.Millisecond,
		MaxBackoff:        100 * time.Millisecond,
	}
	opt(&o)
	a, err := agent.New(context.Background(), o)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	r := &running{Agent: a, logs: logs}
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("Run: %v", err)
			}
			if err := a.Close(); err != nil {
				e.t.Errorf("Close: %v", err)
			}
			if err := a.Close(); err != nil {
				e.t.Errorf("second Close: %v", err)
			}
		})
	}
	e.t.Cleanup(r.stop)
	return r
}

// logBuffer collects JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// records returns the log records whose msg is msg.
func (l *logBuffer) records(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.buf.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// waitFor polls cond until it holds or 10 seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
