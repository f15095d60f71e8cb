// Package broker is the controller's embedded MQTT broker: mochi-mqtt
// behind mutual TLS, with Edgewarden's per-device access rules and a
// synchronous hand-off of everything devices publish to the controller's
// store.
//
// Identity is the verified client certificate's common name; MQTT usernames
// and passwords are ignored. A device (CN = its device id, which must also be
// its MQTT client id) may subscribe only to its own desired and ack topics
// and publish only to its own status, events and presence topics; its last will must be
// its own presence topic. The controller identity (pki.ControllerIdentity)
// may do everything.
//
// Nothing acknowledged is lost: a device's QoS 1 publish is passed to
// Options.Ingest inside mochi's OnPublish hook, which runs on the client's
// read goroutine before mochi writes the PUBACK (see processPublish in
// mochi's server.go). If Ingest fails the packet is rejected (no PUBACK, not
// retained, not forwarded) and the connection is closed, so the agent keeps
// the message and sends it again after reconnecting. (mochi offers no other
// way to refuse a publish from an MQTT 3.1.1 client: a negative PUBACK exists
// only in MQTT 5.)
//
// The controller publishes desired documents through mochi's inline client
// (Publish); retained messages are kept in memory and never expire.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgewarden/edgewarden/protocol"
)

// Defaults for Options fields left zero.
const (
	DefaultAddr             = "127.0.0.1:8883"
	DefaultIngestTimeout    = 10 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultReadBufferSize   = 1024
	DefaultWriteBufferSize  = 2048
	DefaultMaxPendingWrites = 64
	DefaultMaxInflight      = 64
	DefaultSessionExpiry    = 30 * 24 * time.Hour
)

// IngestFunc stores one message a device published. kind is one of
// protocol.KindStatus, KindEvents, KindPresence. It must return only once the
// message is durably stored (the device receives its PUBACK after that), and
// must not keep payload after it returns.
type IngestFunc func(ctx context.Context, deviceID, kind string, payload []byte) error

// Options configure a Broker.
type Options struct {
	// Addr is the TCP address to listen on; "host:0" picks a free port (see
	// Broker.Addr). Empty means DefaultAddr.
	Addr string
	// TLS is the server's TLS configuration. Required, and it must require
	// and verify client certificates (tls.RequireAndVerifyClientCert with
	// ClientCAs set), e.g. pki.Authority.MQTTServerConfig().
	TLS *tls.Config
	// AllowDevice reports whether a device may connect (the server refuses
	// deleted or unknown devices). It is called for every device connection
	// and must be fast. nil allows any device with a valid certificate.
	AllowDevice func(deviceID string) bool
	// Ingest receives every message a device publishes. Required.
	Ingest IngestFunc
	// Logger receives the broker's logs. nil means slog.Default().
	Logger *slog.Logger

	// IngestTimeout bounds one Ingest call. Zero means DefaultIngestTimeout.
	IngestTimeout time.Duration
	// HandshakeTimeout bounds the TLS handshake plus the CONNECT packet of a
	// new connection. Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// The fields below trade memory per connection against throughput. The
	// defaults keep a 10k-device fleet well under mochi's own defaults (which
	// reserve a 8192-slot write queue per client: about 64 KiB each).

	// ReadBufferSize is the buffered reader per connection, in bytes. Zero
	// means DefaultReadBufferSize.
	ReadBufferSize int
	// WriteBufferSize is the size at which queued writes to one connection
	// are flushed, in bytes. Zero means DefaultWriteBufferSize.
	WriteBufferSize int
	// MaxPendingWrites is the length of each client's outbound queue;
	// messages for a client whose queue is full are dropped (a device still
	// gets its retained desired document when it resubscribes). Zero means
	// DefaultMaxPendingWrites.
	MaxPendingWrites int
	// MaxInflight bounds the QoS 1 messages held per client while waiting
	// for its PUBACK or for an offline client to return. Zero means
	// DefaultMaxInflight.
	MaxInflight int
	// SessionExpiry is how long the session of a disconnected client with a
	// persistent session (clean session off) is kept. Zero means
	// DefaultSessionExpiry.
	SessionExpiry time.Duration
}

// Broker is the embedded MQTT broker. Create it with New, then Start; Close
// stops it and waits for every connection to end.
type Broker struct {
	opts Options
	log  *slog.Logger
	srv  *mqtt.Server
	ln   *tlsListener

	ctx    context.Context // cancelled by Close; parent of Ingest calls
	cancel context.CancelFunc

	started   atomic.Bool
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	current map[string]*mqtt.Client // device id → its latest accepted connection
}

// New checks opts and prepares a broker; it does not listen yet.
func New(opts Options) (*Broker, error) {
	if opts.TLS == nil {
		return nil, errors.New("mqtt broker: no TLS configuration: the broker only serves mutual TLS")
	}
	if opts.TLS.ClientAuth != tls.RequireAndVerifyClientCert || opts.TLS.ClientCAs == nil {
		return nil, errors.New("mqtt broker: TLS configuration must require and verify client certificates (ClientAuth = RequireAndVerifyClientCert, ClientCAs set)")
	}
	if opts.Ingest == nil {
		return nil, errors.New("mqtt broker: Options.Ingest is required: device messages must be stored before they are acknowledged")
	}
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	setDefault(&opts.IngestTimeout, DefaultIngestTimeout)
	setDefault(&opts.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&opts.ReadBufferSize, DefaultReadBufferSize)
	setDefault(&opts.WriteBufferSize, DefaultWriteBufferSize)
	setDefault(&opts.MaxPendingWrites, DefaultMaxPendingWrites)
	setDefault(&opts.MaxInflight, DefaultMaxInflight)
	setDefault(&opts.SessionExpiry, DefaultSessionExpiry)
	if opts.MaxInflight > 65535 {
		return nil, fmt.Errorf("mqtt broker: MaxInflight %d exceeds 65535", opts.MaxInflight)
	}
	for name, v := range map[string]int64{
		"IngestTimeout": int64(opts.IngestTimeout), "HandshakeTimeout": int64(opts.HandshakeTimeout),
		"ReadBufferSize": int64(opts.ReadBufferSize), "WriteBufferSize": int64(opts.WriteBufferSize),
		"MaxPendingWrites": int64(opts.MaxPendingWrites), "MaxInflight": int64(opts.MaxInflight),
		"SessionExpiry": int64(opts.SessionExpiry),
	} {
		if v < 0 {
			return nil, fmt.Errorf("mqtt broker: %s is negative", name)
		}
	}

	log := opts.Logger.With("component", "mqtt-broker")
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = protocol.MaxMessageBytes + packetOverhead
	caps.MaximumClientWritesPending = int32(opts.MaxPendingWrites)
	caps.MaximumInflight = uint16(opts.MaxInflight)
	caps.MaximumSessionExpiryInterval = uint32(min(opts.SessionExpiry/time.Second, 1<<32-1))
	// Retained desired documents must never expire (mochi's default drops
	// retained messages after a day).
	caps.MaximumMessageExpiryInterval = 0
	caps.MaximumQos = protocol.QoS
	caps.TopicAliasMaximum = 0 // no aliases: every publish names its topic, which the ACL checks
	caps.SharedSubAvailable = 1

	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		opts:    opts,
		log:     log,
		ctx:     ctx,
		cancel:  cancel,
		current: make(map[string]*mqtt.Client),
	}
	b.srv = mqtt.New(&mqtt.Options{
		Capabilities:             caps,
		ClientNetReadBufferSize:  opts.ReadBufferSize,
		ClientNetWriteBufferSize: opts.WriteBufferSize,
		Logger:                   mochiLogger(log),
		SysTopicResendInterval:   60,
		InlineClient:             true,
	})
	if err := b.srv.AddHook(&hook{b: b}, nil); err != nil {
		cancel()
		return nil, fmt.Errorf("mqtt broker: add access hook: %w", err)
	}
	b.ln = &tlsListener{id: "mqtts", addr: opts.Addr, tls: opts.TLS.Clone(), timeout: opts.HandshakeTimeout}
	return b, nil
}

// packetOverhead is what an MQTT PUBLISH adds to its payload: fixed header,
// topic and packet id (topics are short: TopicRoot + a 63-byte id + kind).
const packetOverhead = 1024

func setDefault[T int | time.Duration](p *T, def T) {
	if *p == 0 {
		*p = def
	}
}

// mochiLogger quiets mochi's own informational chatter (hook added, listener
// attached, ...) to debug level; warnings and errors pass through, without
// the whole packet mochi attaches (which would copy payloads into the log).
func mochiLogger(log *slog.Logger) *slog.Logger {
	return slog.New(levelShift{log.Handler()})
}

type levelShift struct{ slog.Handler }

func (h levelShift) Enabled(ctx context.Context, l slog.Level) bool {
	if l < slog.LevelWarn {
		l = slog.LevelDebug
	}
	return h.Handler.Enabled(ctx, l)
}

func (h levelShift) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		r.Level = slog.LevelDebug
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "pk" {
			if pk, ok := a.Value.Any().(packets.Packet); ok {
				out.AddAttrs(slog.String("topic", pk.TopicName), slog.Int("packet_type", int(pk.FixedHeader.Type)))
			}
			return true
		}
		out.AddAttrs(a)
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h levelShift) WithAttrs(a []slog.Attr) slog.Handler { return levelShift{h.Handler.WithAttrs(a)} }
func (h levelShift) WithGroup(n string) slog.Handler      { return levelShift{h.Handler.WithGroup(n)} }

// Start listens on Options.Addr and serves clients in the background until
// Close.
func (b *Broker) Start() error {
	if b.closed.Load() {
		return errors.New("mqtt broker: already closed")
	}
	if !b.started.CompareAndSwap(false, true) {
		return errors.New("mqtt broker: already started")
	}
	if err := b.srv.AddListener(b.ln); err != nil {
		return fmt.Errorf("mqtt broker: listen on %s: %w", b.opts.Addr, err)
	}
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("mqtt broker: serve: %w", err)
	}
	b.log.Info("mqtt broker listening", "addr", b.ln.Address())
	return nil
}

// Addr returns the address the broker listens on, or nil before Start.
func (b *Broker) Addr() net.Addr {
	if b.ln.ln == nil {
		return nil
	}
	return b.ln.ln.Addr()
}

// Close disconnects every client, stops listening and waits for all
// connection goroutines to end. Safe to call more than once.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		b.cancel()
		b.closeErr = b.srv.Close()
	})
	return b.closeErr
}

// Publish sends payload to topic at QoS 1 through the broker's inline client
// (no ACL applies). retain keeps it as the topic's retained message; an
// empty retained payload clears the retained message (for deleted devices).
// It returns once the message is queued for every connected subscriber and,
// if retained, stored.
func (b *Broker) Publish(ctx context.Context, topic string, payload []byte, retain bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	if !b.started.Load() || b.closed.Load() {
		return fmt.Errorf("publish to %s: mqtt broker is not running", topic)
	}
	if topic == "" || strings.ContainsAny(topic, "+#") {
		return fmt.Errorf("publish to %q: not a valid topic name", topic)
	}
	if len(payload) > protocol.MaxMessageBytes {
		return fmt.Errorf("publish to %s: %d bytes exceeds the %d-byte message limit", topic, len(payload), protocol.MaxMessageBytes)
	}
	if err := b.srv.Publish(topic, payload, retain, protocol.QoS); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// DisconnectDevice closes deviceID's connection, if any, and forgets its
// session (subscriptions and queued messages). Call it after deleting a
// device; AllowDevice then keeps it out. It reports whether the device had a
// session.
func (b *Broker) DisconnectDevice(deviceID string) bool {
	cl, ok := b.srv.Clients.Get(deviceID)
	if !ok || cl.Net.Inline {
		return false
	}
	b.mu.Lock()
	if b.current[deviceID] == cl {
		delete(b.current, deviceID)
	}
	b.mu.Unlock()
	_ = b.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
	b.srv.UnsubscribeClient(cl)
	cl.ClearInflights()
	b.srv.Clients.Delete(deviceID)
	return true
}
