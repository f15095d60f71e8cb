// Package link is the agent's MQTT connection to the broker: mutual TLS with
// the device certificate, a persistent session (clean session off), a
// retained online presence on every connect and a retained offline last
// will, the subscriptions to the device's desired and ack topics, and
// reconnection with exponential backoff and jitter, so a fleet that lost its
// broker does not come back in lockstep.
//
// paho keeps its in-flight messages in memory only. Its file store panics
// on a write error (a full disk took the agent down with every document),
// and nothing needs it: events stay in the agent's own outbox until the
// controller acknowledges them (agent/outbox), a status report is made
// afresh, and an unacknowledged desired document is delivered again by the
// broker's persistent session.
package link

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgewarden/edgewarden/agent/backoff"
	"github.com/edgewarden/edgewarden/protocol"
)

// Options configure a Link.
type Options struct {
	// DeviceID is the MQTT client id and names the device's topics.
	DeviceID string
	// BrokerURL is e.g. "tls://127.0.0.1:8883".
	BrokerURL string
	// TLS is the client configuration (device certificate, pinned CA).
	TLS *tls.Config
	// OnDesired is called with every message on the desired topic, from
	// the client's delivery goroutine, one at a time. The message is
	// acknowledged to the broker only when it returns true, so it must
	// return only after everything it decided is committed. It must not
	// publish and wait.
	OnDesired func(payload []byte) bool
	// OnOversized, when set, is told about a desired message over
	// protocol.MaxEnvelopeBytes, which is dropped without being parsed.
	// Same goroutine and acknowledgement rule as OnDesired.
	OnOversized func(size int) bool
	// OnAck, when set, is called with every message on the ack topic
	// (protocol.Ack from the controller), on the delivery goroutine; the
	// message is acknowledged to the broker after it returns. It must be
	// quick and must not publish and wait.
	OnAck func(payload []byte)
	// OnConnect is called (from Run's goroutine) after every successful
	// connect, once presence is published and the subscription is made.
	OnConnect func()
	// MinBackoff and MaxBackoff bound the reconnect delay, which doubles
	// after each failed attempt and is jittered (a random value between
	// half and all of it). Zero means 1s and 2m.
	MinBackoff, MaxBackoff time.Duration
	// KeepAlive is the MQTT keep-alive. Zero means 30s.
	KeepAlive time.Duration
	// Now is the clock for presence timestamps. Nil means time.Now.
	Now func() time.Time
	// Logger. Nil means slog.Default().
	Logger *slog.Logger
}

// Link is one device's MQTT connection. Create it with New, run it with Run.
type Link struct {
	opts      Options
	client    mqtt.Client
	lost      chan error
	connected atomic.Bool
	rejected  atomic.Uint64 // oversized desired messages dropped
	mu        sync.Mutex    // guards running
	running   bool
}

// New prepares a link; it does not connect.
func New(opts Options) (*Link, error) {
	if err := protocol.ValidateDeviceID(opts.DeviceID); err != nil {
		return nil, err
	}
	if opts.BrokerURL == "" {
		return nil, errors.New("no broker URL; the enrollment should have provided one")
	}
	if opts.OnDesired == nil {
		return nil, errors.New("link: OnDesired is required")
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 2 * time.Minute
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	l := &Link{opts: opts, lost: make(chan error, 1)}

	will, err := l.presence(protocol.Offline)
	if err != nil {
		return nil, err
	}
	co := mqtt.NewClientOptions().
		AddBroker(opts.BrokerURL).
		SetClientID(opts.DeviceID).
		SetTLSConfig(opts.TLS).
		SetCleanSession(false).
		SetAutoReconnect(false). // Run reconnects, with jitter
		SetConnectRetry(false).
		SetConnectTimeout(15*time.Second).
		SetKeepAlive(opts.KeepAlive).
		SetOrderMatters(true).
		SetAutoAckDisabled(true).
		SetBinaryWill(protocol.PresenceTopic(opts.DeviceID), will, protocol.QoS, true).
		SetDefaultPublishHandler(l.handle). // session messages that arrive before SUBSCRIBE
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			l.connected.Store(false)
			select {
			case l.lost <- err:
			default:
			}
		})
	co.SetStore(mqtt.NewMemoryStore()) // see the package comment
	l.client = mqtt.NewClient(co)
	return l, nil
}

func (l *Link) presence(state string) ([]byte, error) {
	b, err := json.Marshal(protocol.Presence{
		Schema:   protocol.Schema,
		DeviceID: l.opts.DeviceID,
		State:    state,
		At:       l.opts.Now().UTC(),
	})
	if err != nil {
		return nil, fmt.Errorf("encode presence: %w", err)
	}
	return b, nil
}

func (l *Link) handle(_ mqtt.Client, m mqtt.Message) {
	if m.Topic() == protocol.AckTopic(l.opts.DeviceID) {
		if n := len(m.Payload()); n > protocol.MaxAckBytes {
			l.opts.Logger.Warn("dropping oversized acknowledgement", "bytes", n, "limit", protocol.MaxAckBytes)
		} else if l.opts.OnAck != nil {
			l.opts.OnAck(m.Payload())
		}
		m.Ack()
		return
	}
	if m.Topic() != protocol.DesiredTopic(l.opts.DeviceID) {
		l.opts.Logger.Warn("ignoring message on unexpected topic", "topic", m.Topic())
		m.Ack()
		return
	}
	if n := len(m.Payload()); n > protocol.MaxEnvelopeBytes {
		// Never parsed. Acknowledged so the broker stops re-sending it;
		// the document in force stays.
		l.rejected.Add(1)
		l.opts.Logger.Warn("dropping oversized desired-state message", "bytes", n, "limit", protocol.MaxEnvelopeBytes)
		if l.opts.OnOversized == nil || l.opts.OnOversized(n) {
			m.Ack()
		}
		return
	}
	if l.opts.OnDesired(m.Payload()) {
		m.Ack()
	}
}

// Connected reports whether the link is up.
func (l *Link) Connected() bool { return l.connected.Load() && l.client.IsConnectionOpen() }

// Run connects and keeps the link up until ctx is done; then it publishes
// an offline presence, disconnects and returns nil. It returns an error only
// if called twice.
func (l *Link) Run(ctx context.Context) error {
	l.mu.Lock()
	if l.running {
		l.mu.Unlock()
		return errors.New("link: Run called twice")
	}
	l.running = true
	l.mu.Unlock()

	attempt := 0
	for {
		if err := l.connect(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			delay := Backoff(attempt, l.opts.MinBackoff, l.opts.MaxBackoff)
			attempt++
			l.opts.Logger.Warn("cannot connect to broker; retrying", "broker", l.opts.BrokerURL, "err", err, "retry_in", delay.Round(time.Millisecond))
			if !sleep(ctx, delay) {
				return nil
			}
			continue
		}
		up := l.opts.Now()
		if l.opts.OnConnect != nil {
			l.opts.OnConnect()
		}
		select {
		case <-ctx.Done():
			l.shutdown()
			return nil
		case err := <-l.lost:
			// A connection that stayed up a while resets the backoff; one
			// that drops at once (e.g. refused by an ACL) keeps growing it.
			if l.opts.Now().Sub(up) > l.opts.MaxBackoff {
				attempt = 0
			}
			delay := Backoff(attempt, l.opts.MinBackoff, l.opts.MaxBackoff)
			attempt++
			l.opts.Logger.Warn("lost broker connection; reconnecting", "err", err, "retry_in", delay.Round(time.Millisecond))
			if !sleep(ctx, delay) {
				return nil
			}
		}
	}
}

// connect makes one connection attempt and sets the session up.
func (l *Link) connect(ctx context.Context) error {
	select { // drop a stale loss notification
	case <-l.lost:
	default:
	}
	if err := wait(ctx, l.client.Connect()); err != nil {
		if ctx.Err() != nil {
			l.client.Disconnect(0) // abandon the attempt in progress
		}
		return fmt.Errorf("connect to %s: %w", l.opts.BrokerURL, err)
	}
	setup := func() error {
		// Acknowledgements first, so none of a re-sent batch is missed.
		ack := protocol.AckTopic(l.opts.DeviceID)
		tok := l.client.Subscribe(ack, protocol.QoS, l.handle)
		if err := wait(ctx, tok); err != nil {
			return fmt.Errorf("subscribe to %s: %w", ack, err)
		}
		if st, ok := tok.(*mqtt.SubscribeToken); ok && st.Result()[ack] >= 0x80 {
			// Documents still flow; events stay queued until it is fixed.
			l.opts.Logger.Error("the broker refused the subscription to the acknowledgement topic: events stay in the outbox until its ACL allows it (see packaging/mosquitto/acl)", "topic", ack)
		}
		if err := wait(ctx, l.client.Subscribe(protocol.DesiredTopic(l.opts.DeviceID), protocol.QoS, l.handle)); err != nil {
			return fmt.Errorf("subscribe to %s: %w", protocol.DesiredTopic(l.opts.DeviceID), err)
		}
		online, err := l.presence(protocol.Online)
		if err != nil {
			return err
		}
		if err := wait(ctx, l.client.Publish(protocol.PresenceTopic(l.opts.DeviceID), protocol.QoS, true, online)); err != nil {
			return fmt.Errorf("publish presence: %w", err)
		}
		return nil
	}
	if err := setup(); err != nil {
		l.client.Disconnect(0)
		return err
	}
	l.connected.Store(true)
	return nil
}

// shutdown announces the device offline and disconnects cleanly (which
// makes the broker discard the last will; the offline presence is sent
// explicitly instead).
func (l *Link) shutdown() {
	l.connected.Store(false)
	if !l.client.IsConnectionOpen() {
		return
	}
	if offline, err := l.presence(protocol.Offline); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		if err := wait(ctx, l.client.Publish(protocol.PresenceTopic(l.opts.DeviceID), protocol.QoS, true, offline)); err != nil {
			l.opts.Logger.Warn("could not publish offline presence; the broker will send the last will", "err", err)
		}
		cancel()
	}
	l.client.Disconnect(250)
}

// ErrNotConnected is returned by Publish while the link is down.
var ErrNotConnected = errors.New("not connected to the broker")

// Publish sends payload with QoS 1 and waits for the broker's
// acknowledgement (PUBACK) or ctx. A nil error means the broker has it.
func (l *Link) Publish(ctx context.Context, topic string, retained bool, payload []byte) error {
	if !l.Connected() {
		return ErrNotConnected
	}
	if err := wait(ctx, l.client.Publish(topic, protocol.QoS, retained, payload)); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// DroppedOversized returns how many oversized desired messages were dropped.
func (l *Link) DroppedOversized() uint64 { return l.rejected.Load() }

func wait(ctx context.Context, t mqtt.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Backoff returns the delay before reconnect attempt n (0-based): the
// agent's one backoff (agent/backoff), min·2ⁿ capped at max, jittered to
// [d/2, d].
func Backoff(n int, min, max time.Duration) time.Duration { return backoff.Delay(n, min, max) }
