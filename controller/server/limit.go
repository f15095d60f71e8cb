package server

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Timeouts of the REST API's HTTP server (see Run).
const (
	httpReadTimeout  = 60 * time.Second
	httpWriteTimeout = 60 * time.Second
	httpIdleTimeout  = 120 * time.Second
)

// DefaultMaxConnsPerSource bounds open REST API connections from one source
// address. Generous, since a plant may put many devices behind one NAT
// address, but low enough that one host cannot hold every file descriptor
// of the controller.
const DefaultMaxConnsPerSource = 512

// perSourceListener closes connections from a source address that already
// holds max open connections. A refused connection is closed before the
// TLS handshake, so it costs the controller almost nothing.
type perSourceListener struct {
	net.Listener
	max     int
	refused func(addr string)

	mu   sync.Mutex
	open map[string]int
}

func limitPerSource(ln net.Listener, max int, refused func(addr string)) net.Listener {
	if max <= 0 {
		return ln
	}
	return &perSourceListener{Listener: ln, max: max, refused: refused, open: make(map[string]int)}
}

func (l *perSourceListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := sourceHost(c.RemoteAddr())
		l.mu.Lock()
		full := l.open[host] >= l.max
		if !full {
			l.open[host]++
		}
		l.mu.Unlock()
		if full {
			c.Close()
			if l.refused != nil {
				l.refused(host)
			}
			continue
		}
		return &countedConn{Conn: c, release: sync.OnceFunc(func() { l.release(host) })}, nil
	}
}

func (l *perSourceListener) release(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[host]--; l.open[host] <= 0 {
		delete(l.open, host)
	}
}

func sourceHost(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// countedConn gives its slot back once, however often it is closed.
type countedConn struct {
	net.Conn
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// longTransfer lets app pushes and artifact downloads run past the server's
// read and write timeouts as long as data keeps flowing: each read of the
// body and each write of the response moves the deadline httpReadTimeout
// (httpWriteTimeout) ahead, so a transfer that stalls for that long is cut,
// and a slow but steady one completes.
func longTransfer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isLongTransfer(r) {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		r.Body = &progressBody{ReadCloser: r.Body, rc: rc}
		next.ServeHTTP(&progressWriter{ResponseWriter: w, rc: rc}, r)
	})
}

func isLongTransfer(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Path == "/api/v1/apps" ||
		r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v1/artifacts/")
}

type progressBody struct {
	io.ReadCloser
	rc *http.ResponseController
}

func (b *progressBody) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(httpReadTimeout)) // unsupported: the server timeout stays
	return b.ReadCloser.Read(p)
}

type progressWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (w *progressWriter) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(httpWriteTimeout))
	return w.ResponseWriter.Write(p)
}

func (w *progressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
