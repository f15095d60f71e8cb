package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgewarden/edgewarden/protocol"
)

// fleetOptions configure the simulated devices.
type fleetOptions struct {
	BrokerAddr   string // host:port of the MQTT broker (mutual TLS)
	CAPEM        []byte // controller CA
	ServerCert   []byte // DER of the broker's certificate, pinned when Pin
	Pin          bool   // pin ServerCert instead of verifying the chain
	CleanSession bool
	Verify       bool // verify every document with protocol.CheckDesired
	Keys         map[string]ed25519.PublicKey
	Timeout      time.Duration // one connection attempt
}

// fleet is N simulated agents, one paho client each.
type fleet struct {
	opts    fleetOptions
	devices []*device

	// Counters of the phase in progress (reset by beginPhase).
	got   atomic.Int64 // devices that hold a document newer than their base
	acked atomic.Int64 // devices whose status report of that document was acknowledged
	// Counters over the whole run.
	lost        atomic.Int64 // connection-lost callbacks
	badDocs     atomic.Int64 // documents that failed verification
	pubFailures atomic.Int64 // status publishes not acknowledged
	errMu       sync.Mutex
	firstErr    error
}

// device is one simulated agent.
type device struct {
	f      *fleet
	id     string
	client mqtt.Client
	conn   atomic.Pointer[cutConn]
	status string // status topic

	rev atomic.Uint64 // highest revision applied
	seq atomic.Uint64 // status report sequence

	// Phase tracking: a document with revision > base counts.
	base  atomic.Uint64
	gotAt atomic.Int64 // UnixNano, 0 = not yet
	ackAt atomic.Int64
}

func newFleet(opts fleetOptions, certs []deviceCert) (*fleet, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(opts.CAPEM) {
		return nil, errors.New("controller CA holds no certificate")
	}
	f := &fleet{opts: opts}
	for _, c := range certs {
		d := &device{f: f, id: c.id, status: protocol.StatusTopic(c.id)}
		cfg := &tls.Config{
			Certificates: []tls.Certificate{c.cert},
			RootCAs:      pool,
			ServerName:   "127.0.0.1",
			MinVersion:   tls.VersionTLS12,
		}
		if opts.Pin {
			want := opts.ServerCert
			cfg.InsecureSkipVerify = true // replaced by the exact-bytes pin below
			cfg.VerifyConnection = func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want) {
					return errors.New("broker certificate is not the pinned one")
				}
				return nil
			}
		}
		will, _ := json.Marshal(protocol.Presence{Schema: protocol.Schema, DeviceID: c.id, State: protocol.Offline, At: time.Now().UTC()})
		co := mqtt.NewClientOptions().
			AddBroker("tls://"+opts.BrokerAddr).
			SetClientID(c.id).
			SetCleanSession(opts.CleanSession).
			SetAutoReconnect(false).
			SetConnectRetry(false).
			SetConnectTimeout(opts.Timeout).
			SetKeepAlive(30*time.Second).
			SetOrderMatters(true).
			SetBinaryWill(protocol.PresenceTopic(c.id), will, protocol.QoS, true).
			SetDefaultPublishHandler(d.onMessage).
			SetConnectionLostHandler(func(mqtt.Client, error) { f.lost.Add(1) }).
			SetCustomOpenConnectionFn(func(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
				return d.dial(uri, cfg, o.ConnectTimeout)
			})
		d.client = mqtt.NewClient(co)
		f.devices = append(f.devices, d)
	}
	return f, nil
}

func (f *fleet) noteErr(err error) {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	if f.firstErr == nil {
		f.firstErr = err
	}
}

func (f *fleet) err() error {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	return f.firstErr
}

// dial opens the TLS connection and keeps the TCP connection underneath so
// that the storm can cut it.
func (d *device) dial(uri *url.URL, cfg *tls.Config, timeout time.Duration) (net.Conn, error) {
	dl := net.Dialer{Timeout: timeout}
	c, err := dl.Dial("tcp", uri.Host)
	if err != nil {
		return nil, err
	}
	tcp := c.(*net.TCPConn)
	tc := tls.Client(tcp, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		tcp.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	c2 := &cutConn{Conn: tc, tcp: tcp}
	d.conn.Store(c2)
	return c2, nil
}

// errCut is what a client reads from a connection the storm cut.
var errCut = errors.New("connection cut by loadgen")

// cutConn lets the storm cut a connection so that paho sees an error:
// paho takes "use of closed network connection" for its own orderly close
// and would not report the loss.
type cutConn struct {
	net.Conn
	tcp *net.TCPConn
	cut atomic.Bool
}

func (c *cutConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && c.cut.Load() {
		err = errCut
	}
	return n, err
}

func (c *cutConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err != nil && c.cut.Load() {
		err = errCut
	}
	return n, err
}

// connect does what the agent's link does on every connection: CONNECT,
// SUBSCRIBE to its desired topic, publish online presence.
func (d *device) connect(ctx context.Context) error {
	if err := wait(ctx, d.client.Connect()); err != nil {
		d.client.Disconnect(0)
		return fmt.Errorf("connect %s: %w", d.id, err)
	}
	if err := wait(ctx, d.client.Subscribe(protocol.DesiredTopic(d.id), protocol.QoS, d.onMessage)); err != nil {
		d.client.Disconnect(0)
		return fmt.Errorf("subscribe %s: %w", d.id, err)
	}
	online, _ := json.Marshal(protocol.Presence{Schema: protocol.Schema, DeviceID: d.id, State: protocol.Online, At: time.Now().UTC()})
	if err := wait(ctx, d.client.Publish(protocol.PresenceTopic(d.id), protocol.QoS, true, online)); err != nil {
		d.client.Disconnect(0)
		return fmt.Errorf("presence %s: %w", d.id, err)
	}
	return nil
}

func wait(ctx context.Context, t mqtt.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// cut closes the TCP connection without an MQTT DISCONNECT and with RST, as
// a network failure or a crashed device would.
func (d *device) cut() {
	if c := d.conn.Swap(nil); c != nil {
		c.cut.Store(true)
		_ = c.tcp.SetLinger(0)
		_ = c.tcp.Close()
	}
}

// onMessage handles a desired document like the agent: verify, and if it
// is a new revision, apply (record it) and report status.
func (d *device) onMessage(_ mqtt.Client, m mqtt.Message) {
	if m.Topic() != protocol.DesiredTopic(d.id) || len(m.Payload()) == 0 {
		return
	}
	now := time.Now()
	rev, exp, err := d.read(m.Payload(), now)
	if err != nil {
		d.f.badDocs.Add(1)
		d.f.noteErr(fmt.Errorf("document for %s: %w", d.id, err))
		return
	}
	if rev > d.base.Load() && d.gotAt.CompareAndSwap(0, now.UnixNano()) {
		d.f.got.Add(1)
	}
	if old := d.rev.Load(); rev > old {
		d.rev.Store(rev)
		d.report(rev, exp)
	}
}

func (d *device) read(raw []byte, now time.Time) (rev uint64, expires time.Time, err error) {
	if d.f.opts.Verify {
		// Applied is left zero: a re-delivered document (same revision)
		// after a reconnect is then still checked in full (signature,
		// device, expiry); whether it is new is decided by the caller.
		doc, _, err := protocol.CheckDesired(raw, protocol.CheckOptions{DeviceID: d.id, Keys: d.f.opts.Keys, Now: now})
		if err != nil {
			return 0, time.Time{}, err
		}
		return doc.Revision, doc.ExpiresAt, nil
	}
	env, err := protocol.DecodeEnvelope(raw)
	if err != nil {
		return 0, time.Time{}, err
	}
	var doc struct {
		Revision  uint64    `json:"revision"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal(env.Payload, &doc); err != nil {
		return 0, time.Time{}, err
	}
	return doc.Revision, doc.ExpiresAt, nil
}

// report publishes a retained status report for rev; the acknowledgement is
// awaited off the message-handling goroutine.
func (d *device) report(rev uint64, expires time.Time) {
	b, _ := json.Marshal(protocol.StatusReport{
		Schema: protocol.Schema, DeviceID: d.id, Seq: d.seq.Add(1), At: time.Now().UTC(),
		AppliedRevision: rev, PolicyExpiresAt: expires, AgentVersion: "loadgen",
	})
	t := d.client.Publish(d.status, protocol.QoS, true, b)
	go func() {
		if !t.WaitTimeout(d.f.opts.Timeout) || t.Error() != nil {
			d.f.pubFailures.Add(1)
			return
		}
		if rev > d.base.Load() && d.ackAt.CompareAndSwap(0, time.Now().UnixNano()) {
			d.f.acked.Add(1)
		}
	}()
}

// beginPhase resets the per-phase counters; a document counts in this phase
// if its revision is greater than base(device).
func (f *fleet) beginPhase(base func(*device) uint64) {
	for _, d := range f.devices {
		d.base.Store(base(d))
		d.gotAt.Store(0)
		d.ackAt.Store(0)
	}
	f.got.Store(0)
	f.acked.Store(0)
}

// connectAll connects every device, at most concurrency at a time, and
// retries a failed device after 1-2 s of jitter until ctx ends. It returns
// the number of failed attempts, and an error if some device never
// connected.
func (f *fleet) connectAll(ctx context.Context, concurrency int) (failed int64, err error) {
	if concurrency <= 0 {
		concurrency = len(f.devices)
	}
	sem := make(chan struct{}, concurrency)
	var (
		wg       sync.WaitGroup
		failures atomic.Int64
		missing  atomic.Int64
	)
	for _, d := range f.devices {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			missing.Add(1)
			continue
		}
		wg.Go(func() {
			held := true
			defer func() {
				if held {
					<-sem
				}
			}()
			for {
				actx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
				err := d.connect(actx)
				cancel()
				if err == nil {
					return
				}
				failures.Add(1)
				f.noteErr(err)
				// Back off without holding a slot.
				<-sem
				held = false
				select {
				case <-time.After(time.Second + rand.N(time.Second)):
				case <-ctx.Done():
					missing.Add(1)
					return
				}
				select {
				case sem <- struct{}{}:
					held = true
				case <-ctx.Done():
					missing.Add(1)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := missing.Load(); n > 0 {
		return failures.Load(), fmt.Errorf("%d of %d devices did not connect (first error: %v)", n, len(f.devices), f.err())
	}
	return failures.Load(), nil
}

// waitCount polls counter until it reaches want, ctx ends or timeout.
func waitCount(ctx context.Context, counter *atomic.Int64, want int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for counter.Load() < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d after %s", counter.Load(), want, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// spread summarises per-device arrival times (UnixNano) relative to t0.
type spread struct{ P50, P99, Max time.Duration }

func spreadOf(devs []*device, get func(*device) int64, t0 time.Time) spread {
	var ds []time.Duration
	for _, d := range devs {
		if at := get(d); at != 0 {
			ds = append(ds, time.Duration(at-t0.UnixNano()))
		}
	}
	if len(ds) == 0 {
		return spread{}
	}
	slices.Sort(ds)
	pick := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return spread{P50: pick(0.50), P99: pick(0.99), Max: ds[len(ds)-1]}
}

func (f *fleet) disconnectAll() {
	var wg sync.WaitGroup
	for _, d := range f.devices {
		wg.Go(func() { d.client.Disconnect(50) })
	}
	wg.Wait()
}
