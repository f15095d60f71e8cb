// Package mqttlink connects the controller to an external MQTT broker
// (mosquitto, EMQX, VerneMQ, HiveMQ) instead of the embedded one. It
// subscribes to every device's status, events and presence with a
// persistent session and hands each message to Ingest before acknowledging
// it, and publishes desired documents, waiting for the broker's PUBACK.
//
// The broker must authenticate the controller by its client certificate
// (pki.ControllerIdentity as username) and enforce the per-device ACL, since
// the topic is what names the device here.
package mqttlink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgewarden/edgewarden/controller/pki"
	"github.com/edgewarden/edgewarden/protocol"
)

// IngestFunc stores one device message; see broker.IngestFunc.
type IngestFunc func(ctx context.Context, deviceID, kind string, payload []byte) error

// Options configure a Link.
type Options struct {
	// BrokerURL is the broker's address, e.g. "tls://mqtt.plant.example:8883"
	// (paho schemes: tls, ssl, tcps, mqtts). Required.
	BrokerURL string
	// TLS is the client TLS configuration (the controller's certificate and
	// the broker's CA), e.g. pki.Authority.ClientConfig(). Required.
	TLS *tls.Config
	// ClientID is the MQTT client id; it identifies the persistent session,
	// so each controller replica needs its own. Empty means
	// pki.ControllerIdentity.
	ClientID string
	// SharedGroup, when set, subscribes through the shared subscription
	// "$share/{SharedGroup}/..." so that several controller replicas split
	// the device traffic.
	SharedGroup string
	// Ingest stores each device message; the message is acknowledged to the
	// broker only after it returns nil. Required.
	Ingest IngestFunc
	// OnConnect, if set, is called after every connection (the first and
	// each reconnect) once the subscriptions are in place. The broker may
	// have lost its retained messages meanwhile (a crash, a restart without
	// persistence), so the controller publishes its documents again. It
	// runs on paho's goroutine and must not block.
	OnConnect func()
	// Logger receives the link's logs. nil means slog.Default().
	Logger *slog.Logger
	// IngestTimeout bounds one Ingest call. Zero means 10s. A failed call
	// is retried with backoff until it succeeds or the link is closed.
	IngestTimeout time.Duration
}

// Link is a connection to an external broker. Create it with New; Start
// connects; Close disconnects. It reconnects by itself in between.
type Link struct {
	opts   Options
	log    *slog.Logger
	client paho.Client

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	closeOnce  sync.Once
	subscribed atomic.Bool

	mu       sync.Mutex
	closed   bool
	handlers sync.WaitGroup // running message handlers
}

// deviceKinds are the device-published topics the link subscribes to.
var deviceKinds = []string{protocol.KindStatus, protocol.KindEvents, protocol.KindPresence}

// New checks opts and prepares a link; it does not connect yet.
func New(opts Options) (*Link, error) {
	if opts.BrokerURL == "" {
		return nil, errors.New("mqtt link: BrokerURL is required")
	}
	if opts.TLS == nil {
		return nil, errors.New("mqtt link: TLS configuration is required: the controller authenticates with its client certificate")
	}
	if opts.Ingest == nil {
		return nil, errors.New("mqtt link: Ingest is required")
	}
	if opts.ClientID == "" {
		opts.ClientID = pki.ControllerIdentity
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.IngestTimeout == 0 {
		opts.IngestTimeout = 10 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Link{
		opts:   opts,
		log:    opts.Logger.With("component", "mqtt-link", "broker", opts.BrokerURL),
		ctx:    ctx,
		cancel: cancel,
	}
	po := paho.NewClientOptions().
		AddBroker(opts.BrokerURL).
		SetClientID(opts.ClientID).
		SetTLSConfig(opts.TLS.Clone()).
		SetCleanSession(false). // queued device messages survive a controller restart
		SetAutoAckDisabled(true).
		SetOrderMatters(false).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(30 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetOnConnectHandler(l.onConnect).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			l.subscribed.Store(false)
			l.log.Warn("mqtt connection lost; reconnecting", "error", err)
		})
	l.client = paho.NewClient(po)
	return l, nil
}

// Start connects and subscribes, returning once the first connection is up
// (or ctx ends). Afterwards the link reconnects by itself until Close.
func (l *Link) Start(ctx context.Context) error {
	tok := l.client.Connect()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("mqtt link: connect to %s: %w", l.opts.BrokerURL, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mqtt link: connect to %s: %w", l.opts.BrokerURL, ctx.Err())
	}
}

// onConnect (re)subscribes on every connection: the broker may have lost
// the session.
func (l *Link) onConnect(c paho.Client) {
	filters := make(map[string]byte, len(deviceKinds))
	for _, kind := range deviceKinds {
		f := protocol.AllDevices(kind)
		if l.opts.SharedGroup != "" {
			f = "$share/" + l.opts.SharedGroup + "/" + f
		}
		filters[f] = protocol.QoS
	}
	// paho runs this handler on its own goroutine, so waiting here is fine.
	tok := c.SubscribeMultiple(filters, l.handle)
	if !tok.WaitTimeout(30 * time.Second) {
		l.log.Error("mqtt subscribe: no answer from broker")
		return
	}
	if err := tok.Error(); err != nil {
		l.log.Error("mqtt subscribe failed", "error", err)
		return
	}
	for f, code := range tok.(*paho.SubscribeToken).Result() {
		if code >= 0x80 {
			l.log.Error("mqtt broker refused the controller's subscription: check its ACL", "filter", f)
			return
		}
	}
	l.subscribed.Store(true)
	l.log.Info("mqtt link connected and subscribed")
	if l.opts.OnConnect != nil {
		l.opts.OnConnect()
	}
}

// Subscribed reports whether the link holds its subscriptions on the
// current connection.
func (l *Link) Subscribed() bool { return l.subscribed.Load() && l.client.IsConnectionOpen() }

// handle stores one device message and acknowledges it once stored. A
// failing Ingest is retried with backoff; if the link closes first the
// message stays unacknowledged and the broker delivers it again.
func (l *Link) handle(_ paho.Client, m paho.Message) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return // not acknowledged: the broker delivers it again
	}
	l.handlers.Add(1)
	l.mu.Unlock()
	defer l.handlers.Done()
	deviceID, kind, err := protocol.ParseTopic(m.Topic())
	if err != nil || kind == protocol.KindDesired || kind == protocol.KindAck {
		l.log.Warn("ignoring message on an unexpected topic", "topic", m.Topic())
		m.Ack()
		return
	}
	backoff := 100 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(l.ctx, l.opts.IngestTimeout)
		err := l.opts.Ingest(ctx, deviceID, kind, m.Payload())
		cancel()
		if err == nil {
			m.Ack()
			return
		}
		l.log.Warn("storing device message failed; retrying", "device", deviceID, "kind", kind, "error", err, "retry_in", backoff)
		select {
		case <-l.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// Publish sends payload to topic at QoS 1 and waits for the broker's
// acknowledgement (or ctx). An empty retained payload clears the topic's
// retained message.
func (l *Link) Publish(ctx context.Context, topic string, payload []byte, retain bool) error {
	if err := l.ctx.Err(); err != nil {
		return fmt.Errorf("publish to %s: mqtt link is closed", topic)
	}
	tok := l.client.Publish(topic, protocol.QoS, retain, payload)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("publish to %s: %w", topic, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("publish to %s: %w", topic, ctx.Err())
	}
}

// Close disconnects and waits for running message handlers. Safe to call
// more than once.
func (l *Link) Close() error {
	l.closeOnce.Do(func() {
		l.cancel()
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		l.handlers.Wait()
		l.client.Disconnect(250)
	})
	return nil
}
