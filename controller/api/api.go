// Package api is the controller's REST API, version 1 (wire types in
// controller/apiv1): login and sessions, enrollment and enrollment tokens,
// devices, device groups, users, teams, roles and grants, operator tokens,
// trusted publishers, signed apps and their assignment, artifact downloads
// for devices (mutual TLS), and the fleet summary.
//
// Every endpoint except login, banner, enroll, users/activate and the OpenAPI
// document (GET /api/v1/openapi.yaml, .json) needs a session token
// (Authorization: Bearer); artifact downloads authenticate with the device's
// client certificate instead. Each handler asks authorize whether the session's
// user may do what it asks; every change is written to the audit log.
// Every change runs through API.change: one store transaction with its audit
// entry, the change sequence and the dirty marks of the devices whose
// documents it may alter; then Options.Changed wakes the reconcile loop.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/edgewarden/edgewarden/controller/auth"
	"github.com/edgewarden/edgewarden/controller/authz"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol/optoken"
)

// Defaults for Options fields left zero.
const (
	DefaultMaxBodyBytes       = 1 << 20
	DefaultDeviceCertValidity = 365 * 24 * time.Hour
)

// Options configure the API.
type Options struct {
	Store      Store      // required
	PKI        PKI        // required
	Membership Membership // required
	Sessions   *auth.Sessions

	// Changed is called after every committed change (it wakes the
	// reconcile loop, which compiles the devices the change marked dirty).
	// It must not block. Nil: nothing is called.
	Changed func()

	// MQTTURL and HTTPURL are returned to enrolling devices: the broker
	// they connect to and this API's base URL.
	MQTTURL, HTTPURL string

	// Logger receives errors and the details of internal failures. Nil
	// means slog.Default().
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time

	// MaxBodyBytes bounds request bodies. Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// DeviceCertValidity is the validity of device certificates. Zero
	// means DefaultDeviceCertValidity.
	DeviceCertValidity time.Duration

	// Apps and Catalog serve trusted publishers, app pushes, assignments
	// and artifact downloads (apps.go). Nil: those endpoints answer 503.
	Apps    AppStore
	Catalog AppCatalog

	// Authz decides every request (access.go). Nil: built from Store when
	// it implements authz.Source (as *store.DB does); otherwise every
	// authorized request fails.
	Authz *authz.Authorizer
	// Access stores users, teams, roles, grants, invitations and operator
	// tokens (access.go). Nil: Store, when it implements AccessStore;
	// otherwise those endpoints answer 501.
	Access AccessStore
	// TokenSigner signs operator tokens (`tokens issue`). Nil: issuing
	// answers 501.
	TokenSigner *optoken.Signer
	// Version is the controller's build version, answered by
	// GET /api/v1/version. Empty: "dev".
	Version string
}

// API serves the REST API. Create it with New; it holds no goroutines.
type API struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	mux  *http.ServeMux

	logins loginThrottle
	apps   appLock
	authz  *authz.Authorizer

	// table is the route table (routes.go) this API serves.
	table []*Route
}

// New returns the API for opts.
func New(opts Options) *API {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.DeviceCertValidity <= 0 {
		opts.DeviceCertValidity = DefaultDeviceCertValidity
	}
	a := &API{opts: opts, log: opts.Logger, now: opts.Now, mux: http.NewServeMux()}
	a.initAccess()
	for _, rt := range routeTable() {
		a.table = append(a.table, &rt)
	}
	a.routes()
	return a
}

// Handler returns the HTTP handler serving every endpoint under /api/v1.
func (a *API) Handler() http.Handler { return a.mux }

// handlerFunc is an endpoint: it writes its response on success and returns
// an error otherwise, which serve turns into an apiv1.Error response.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// httpError is an error with the status code and the message the client
// sees.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// writeError maps err to a status code and message: the API's own errors
// as they are, store errors to 404/409/400 with the store's message, and
// store.ErrForbidden to 403, anything else to 500 with a generic message (the detail goes to the log).
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := http.StatusInternalServerError, ""
	var he *httpError
	switch {
	case errors.As(err, &he):
		status, msg = he.status, he.msg
	case errors.Is(err, store.ErrNotFound):
		status, msg = http.StatusNotFound, err.Error()
	case errors.Is(err, store.ErrConflict):
		status, msg = http.StatusConflict, err.Error()
	case errors.Is(err, store.ErrInvalid):
		status, msg = http.StatusBadRequest, err.Error()
	case errors.Is(err, store.ErrForbidden):
		status, msg = http.StatusForbidden, err.Error()
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer.
		return
	default:
		id := randomHex(6)
		a.log.Error("api request failed", "request_id", id, "method", r.Method, "path", r.URL.Path, "err", err)
		msg = fmt.Sprintf("internal error in the controller (request id %s); the controller log has the details", id)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="edgewarden"`)
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// The status is written; an encode error means the connection broke.
	_ = enc.Encode(v)
	return nil
}

// decode reads r's JSON body into v strictly: at most MaxBodyBytes, no
// unknown fields, exactly one JSON value.
func (a *API) decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return errorf(http.StatusUnsupportedMediaType, "request body must be JSON (Content-Type: application/json), not %q", ct)
	}
	body := http.MaxBytesReader(w, r.Body, a.opts.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.Decode(&struct{}{}) != io.EOF {
			return errorf(http.StatusBadRequest, "request body holds more than one JSON value; send exactly one object")
		}
		return nil
	}
	var tooLarge *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "request body is larger than the limit of %d bytes", tooLarge.Limit)
	case errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, "request body is empty; send a JSON object")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "request body is not valid JSON: %v", err)
	case errors.As(err, &typ):
		return errorf(http.StatusBadRequest, "request body: field %q must be a JSON %s, not %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return errorf(http.StatusBadRequest, "request body: unknown field %s; check the field names against the API version", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return errorf(http.StatusBadRequest, "request body: %v", err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "map", "struct":
		return "object"
	case "slice", "array":
		return "array"
	}
	return "number"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics on failure)
	return hex.EncodeToString(b)
}

// change runs fn as one change made by the request's user: fn's writes
// (store calls with the context fn gets), the audit entry (kind, action,
// target, detail; fn may complete it through c.Audit, and set c.Before and
// c.After), a bump of the change sequence and the dirty marks fn sets are
// one transaction (store.DB.Change). Only after the commit is the
// reconcile loop woken. There is no other way for a handler to change
// state: no change without its audit entry, no entry after the fact.
func (a *API) change(r *http.Request, kind, action, target, detail string, fn func(ctx context.Context, c *store.Change) error) error {
	p, _ := principalOf(r)
	e := store.AuditEntry{At: a.now(), Actor: a.user(r), ActorID: p.UserID, Action: action, Target: target, Detail: detail, Source: r.RemoteAddr, Kind: kind}
	if _, err := a.opts.Store.Change(r.Context(), e, fn); err != nil {
		return err
	}
	if a.opts.Changed != nil {
		a.opts.Changed()
	}
	return nil
}
