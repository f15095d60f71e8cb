package broker

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// tlsListener is a mochi listener that accepts TCP connections, completes
// the TLS handshake with a deadline (mochi's own TCP listener leaves the
// handshake to the first read, with no deadline, so an idle socket would hold
// a goroutine forever), and then hands the connection to mochi.
//
// It owns every connection goroutine it starts: Close closes the listener
// and every connection and waits until all of them have returned.
type tlsListener struct {
	id      string
	addr    string
	tls     *tls.Config
	timeout time.Duration // TLS handshake + CONNECT packet

	ln  net.Listener
	log *slog.Logger

	serving sync.WaitGroup // the Serve goroutine (mochi starts it)

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup // connection goroutines
}

var _ listeners.Listener = (*tlsListener)(nil)

func (l *tlsListener) ID() string       { return l.id }
func (l *tlsListener) Protocol() string { return "mqtts" }

func (l *tlsListener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.addr
}

// Init opens the network address.
func (l *tlsListener) Init(log *slog.Logger) error {
	l.log = log
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return err
	}
	l.ln = ln
	l.conns = make(map[net.Conn]struct{})
	l.serving.Add(1) // mochi calls Serve once Init succeeded
	return nil
}

// Serve accepts connections until the listener is closed.
func (l *tlsListener) Serve(establish listeners.EstablishFn) {
	defer l.serving.Done()
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			l.mu.Lock()
			closed := l.closed
			l.mu.Unlock()
			if closed {
				return
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			l.log.Error("mqtt listener stopped accepting connections", "error", err)
			return
		}
		conn := tls.Server(raw, l.tls)
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			raw.Close()
			continue
		}
		l.conns[conn] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.handle(conn, establish)
	}
}

func (l *tlsListener) handle(conn *tls.Conn, establish listeners.EstablishFn) {
	defer l.wg.Done()
	defer func() {
		l.mu.Lock()
		delete(l.conns, conn)
		l.mu.Unlock()
		conn.Close()
	}()

	// The deadline covers the handshake and the CONNECT packet; mochi
	// replaces it with the keepalive deadline once the client is connected.
	_ = conn.SetDeadline(time.Now().Add(l.timeout))
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	err := conn.HandshakeContext(ctx)
	cancel()
	if err != nil {
		l.log.Debug("mqtt TLS handshake failed", "remote", conn.RemoteAddr().String(), "error", err)
		return
	}
	if err := establish(l.id, conn); err != nil {
		l.log.Debug("mqtt client connection ended", "remote", conn.RemoteAddr().String(), "error", err)
	}
}

// Close stops accepting, lets mochi disconnect its clients, closes every
// remaining connection (including those still in the handshake) and waits
// for all connection goroutines to return. Safe to call more than once.
func (l *tlsListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()

	if l.ln != nil {
		l.ln.Close()
		l.serving.Wait()
	}
	closeClients(l.id)

	l.mu.Lock()
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}
