// Package console is the controller's web console: server-rendered pages
// (html/template, embedded) with htmx for partial updates, served by the
// controller next to the REST API.
//
// The console holds no rights of its own and never reads the store. Every
// page reads, and every form changes, through the REST API's own routes,
// called in process (apiTransport) with the logged-in user's session token:
// the API's one middleware and its evaluator authorize each call exactly as
// they authorize the CLI. A button the console hides from a user is a
// convenience; the control is the API's answer, which the console shows
// (403 and nothing changed).
//
// The session token lives in an HttpOnly, Secure, SameSite=Strict cookie.
// Every form carries a CSRF token (an HMAC of the session, or of a
// pre-login cookie for the login form); a POST without a valid one is
// refused before anything is called. Every answer carries a
// Content-Security-Policy that allows only the controller's own scripts
// and styles, and no inline script.
package console

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/edgewarden/edgewarden/controller/client"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/*.js static/*.css
var staticFS embed.FS

// Cookie names. The __Host- prefix makes the browser refuse them unless
// they are Secure, for path / and for this host only.
const (
	sessionCookie = "__Host-edgewarden-session"
	loginCookie   = "__Host-edgewarden-login"
)

// csp allows only the controller's own scripts, styles and images, forms
// posted to itself, and no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Options configure the console.
type Options struct {
	// API is the REST API's handler (api.API.Handler). Required: every
	// read and change goes through it.
	API http.Handler
	// CSRFKey keys the CSRF tokens. Nil: a random key, so forms served
	// before a restart must be reloaded.
	CSRFKey []byte
	// Logger receives internal failures. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Console serves the web console. Create it with New; it holds no
// goroutines.
type Console struct {
	api   http.Handler
	key   []byte
	log   *slog.Logger
	now   func() time.Time
	tmpl  map[string]*template.Template
	mux   *http.ServeMux
	pages []*Page
}

// New returns the console for opts.
func New(opts Options) (*Console, error) {
	if opts.API == nil {
		return nil, errors.New("console: Options.API is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if len(opts.CSRFKey) == 0 {
		opts.CSRFKey = make([]byte, 32)
		_, _ = rand.Read(opts.CSRFKey) // never fails (crypto/rand panics on failure)
	}
	c := &Console{api: opts.API, key: opts.CSRFKey, log: opts.Logger, now: opts.Now, mux: http.NewServeMux()}
	if err := c.parseTemplates(); err != nil {
		return nil, err
	}
	for _, p := range pageTable() {
		c.pages = append(c.pages, &p)
	}
	for _, p := range c.pages {
		c.mux.Handle(p.Pattern(), c.serve(p))
	}
	static, _ := fs.Sub(staticFS, "static")
	c.mux.Handle("GET /static/", c.headers(http.StripPrefix("/static/", http.FileServerFS(static))))
	c.mux.Handle("/", c.headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.render(w, r, nil, http.StatusNotFound, "error", errorPage{Status: http.StatusNotFound, Message: "There is no page at " + r.URL.Path + "."})
	})))
	return c, nil
}

// Handler returns the HTTP handler serving the console's pages.
func (c *Console) Handler() http.Handler { return c.mux }

// Access is who may open a page.
type Access int

const (
	// Session (the default): a logged-in user; what the page shows or
	// changes is then decided by the API routes it calls (Page.Calls).
	Session Access = iota
	// Public: no session (the login page).
	Public
)

// Page is one page or form target of the console. pageTable is the one
// place they are declared: the mux and the tests read it.
type Page struct {
	Method, Path string
	Access       Access
	// Calls are the operationIds of the API routes the page calls: their
	// authorization is the page's. A test checks each names a route.
	Calls []string
	// Summary says what the page is for.
	Summary string

	h func(*Console, *request) error
}

// Pattern is the page's http.ServeMux pattern.
func (p *Page) Pattern() string { return p.Method + " " + p.Path }

// Pages returns the page table.
func Pages() []Page { return pageTable() }

// request is one request to a page: the user's API client and what the
// templates need.
type request struct {
	w     http.ResponseWriter
	r     *http.Request
	api   *client.Client
	token string // the session token; "" on public pages
	csrf  string
	me    *me
}

// headers sets the security headers every answer carries.
func (c *Console) headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			hd.Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}

// serve is the console's one middleware: the security headers, the
// session (a page that needs one redirects to the login page without
// it), the CSRF check of every POST, then the page.
func (c *Console) serve(p *Page) http.Handler {
	return c.headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rq := &request{w: w, r: r}
		if p.Access == Session {
			ck, err := r.Cookie(sessionCookie)
			if err != nil || ck.Value == "" {
				c.toLogin(rq, "")
				return
			}
			rq.token = ck.Value
			rq.csrf = c.csrfToken("session", rq.token)
		} else if ck, err := r.Cookie(loginCookie); err == nil && ck.Value != "" {
			rq.csrf = c.csrfToken("login", ck.Value)
		}
		rq.api = c.client(rq.token)
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			if err := r.ParseForm(); err != nil {
				c.fail(rq, &client.Error{Status: http.StatusBadRequest, Message: "the form could not be read: " + err.Error()})
				return
			}
			if rq.csrf == "" || !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(rq.csrf)) {
				c.fail(rq, &client.Error{Status: http.StatusForbidden, Message: "This form has no valid CSRF token, so nothing was done. Reload the page and submit the form again."})
				return
			}
		}
		if err := p.h(c, rq); err != nil {
			c.fail(rq, err)
		}
	}))
}

// csrfToken is the CSRF token of a session (or pre-login) secret.
func (c *Console) csrfToken(purpose, secret string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("edgewarden console csrf\x00" + purpose + "\x00" + secret))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// toLogin sends the browser to the login page, back to this page after.
func (c *Console) toLogin(rq *request, msg string) {
	q := url.Values{}
	if rq.r.Method == http.MethodGet && rq.r.URL.Path != "/" {
		q.Set("next", rq.r.URL.RequestURI())
	}
	if msg != "" {
		q.Set("msg", msg)
	}
	target := "/login"
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	http.Redirect(rq.w, rq.r, target, http.StatusSeeOther)
}

// fail shows err: the API's refusal with its status and message (401 sends
// the user to log in again), anything else as a 500 whose detail is
// logged.
func (c *Console) fail(rq *request, err error) {
	var ce *client.Error
	if !errors.As(err, &ce) {
		id := make([]byte, 6)
		_, _ = rand.Read(id)
		c.log.Error("console request failed", "request_id", fmt.Sprintf("%x", id), "method", rq.r.Method, "path", rq.r.URL.Path, "err", err)
		ce = &client.Error{Status: http.StatusInternalServerError, Message: fmt.Sprintf("internal error in the console (request id %x); the controller log has the details", id)}
	}
	if ce.Status == http.StatusUnauthorized && rq.token != "" {
		clearCookie(rq.w, sessionCookie)
		c.toLogin(rq, ce.Message)
		return
	}
	c.render(rq.w, rq.r, rq, ce.Status, "error", errorPage{Status: ce.Status, Message: ce.Message})
}

type errorPage struct {
	Status  int
	Message string
}

// redirect answers a form post: back to a page, with a message for the
// user (Post/Redirect/Get).
func redirect(rq *request, path, msg string) error {
	if msg != "" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "ok=" + url.QueryEscape(msg)
	}
	http.Redirect(rq.w, rq.r, path, http.StatusSeeOther)
	return nil
}

func clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// client returns an API client that calls the API in process with token.
func (c *Console) client(token string) *client.Client {
	cl, err := client.New(client.Options{BaseURL: "https://controller.invalid", Token: token, HTTPClient: &http.Client{Transport: apiTransport{c.api}}})
	if err != nil {
		panic("console: " + err.Error()) // the base URL is a constant
	}
	return cl
}

// apiTransport sends the client's requests to the API handler in process,
// from the browser's address (the API audits it and throttles logins by
// it). No request leaves the controller.
type apiTransport struct{ h http.Handler }

type remoteKey struct{}

func (t apiTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	in := req.Clone(req.Context())
	in.RequestURI = req.URL.RequestURI()
	in.Host = req.URL.Host
	if in.Body == nil {
		in.Body = http.NoBody
	}
	if addr, ok := req.Context().Value(remoteKey{}).(string); ok {
		in.RemoteAddr = addr
	}
	rec := &recorder{header: http.Header{}}
	t.h.ServeHTTP(rec, in)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &http.Response{
		StatusCode: rec.status, Status: http.StatusText(rec.status),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: rec.header, Body: io.NopCloser(&rec.body), ContentLength: int64(rec.body.Len()),
		Request: req,
	}, nil
}

// recorder is the in-process response of one API call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}

// ctx is the context of the API calls made for rq: the browser's address
// travels with it.
func (rq *request) ctx() context.Context {
	return context.WithValue(rq.r.Context(), remoteKey{}, rq.r.RemoteAddr)
}
