package api

import (
	"context"
	"errors"
	"fmt"
	"github.com/edgewarden/edgewarden/protocol"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/auth"
	"github.com/edgewarden/edgewarden/controller/authz"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol/access"
)

// principal is who makes an authenticated request.
type principal struct {
	User   string
	UserID string // immutable (store.User.ID); the session's subject
	// Session is the session token's id (jti) and Expires its expiry:
	// what logout ends.
	Session string
	Expires time.Time
}

type principalKey struct{}

func principalOf(r *http.Request) (principal, bool) {
	p, ok := r.Context().Value(principalKey{}).(principal)
	return p, ok
}

// authenticate checks the request's session token and that its user still
// exists and is active.
func (a *API) authenticate(r *http.Request) (principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return principal{}, errorf(http.StatusUnauthorized, "not logged in: this request needs a session token; run `edgewarden login`")
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return principal{}, errorf(http.StatusUnauthorized, "the Authorization header must be \"Bearer <session token>\"; run `edgewarden login`")
	}
	if a.opts.Sessions == nil {
		return principal{}, errors.New("api: no session verifier configured")
	}
	claims, err := a.opts.Sessions.Verify(strings.TrimSpace(token))
	if errors.Is(err, auth.ErrSessionExpired) {
		return principal{}, errorf(http.StatusUnauthorized, "session expired; run `edgewarden login` again")
	}
	if err != nil {
		return principal{}, errorf(http.StatusUnauthorized, "invalid session token; run `edgewarden login` again")
	}
	// The subject is the user's immutable id: a deleted user's session
	// never works again, whoever has the name now.
	u, err := a.opts.Store.GetUserByID(r.Context(), claims.User())
	if errors.Is(err, store.ErrNotFound) {
		return principal{}, errorf(http.StatusUnauthorized, "the user of this session no longer exists; run `edgewarden login` again")
	}
	if err != nil {
		return principal{}, err
	}
	if u.State != store.UserActive {
		return principal{}, errorf(http.StatusUnauthorized, "user %q %s", u.Name, inactiveHint(u.State))
	}
	if claims.Gen != u.SessionGen {
		return principal{}, errorf(http.StatusUnauthorized, "session ended (logged out, password changed or user disabled since); run `edgewarden login` again")
	}
	ended, err := a.opts.Store.SessionEnded(r.Context(), claims.ID)
	if err != nil {
		return principal{}, err
	}
	if ended {
		return principal{}, errorf(http.StatusUnauthorized, "session ended (logged out); run `edgewarden login` again")
	}
	var exp time.Time
	if claims.ExpiresAt != nil {
		exp = claims.ExpiresAt.Time
	}
	return principal{User: u.Name, UserID: u.ID, Session: claims.ID, Expires: exp}, nil
}

// inactiveHint says why a user that is not active cannot log in, and what
// to do.
func inactiveHint(state string) string {
	if state == store.UserInvited {
		return "is waiting for activation (invited, or its password was reset): choose a password with `edgewarden users activate TOKEN` and the token from your admin"
	}
	return "is " + state + "; ask an admin to enable it (`edgewarden users enable`)"
}

// Resources named for visible's filter: "<type>:<id>" with type device,
// device-group or app.
func resDevice(id string) string  { return "device:" + id }
func resGroup(name string) string { return "device-group:" + name }
func resApp(name string) string   { return "app:" + name }

// view returns the current access view (compiled evaluator and ancestry).
func (a *API) view(ctx context.Context) (*authz.View, error) {
	if a.authz == nil {
		return nil, errors.New("api: no authorizer configured (Options.Authz, or a Store that implements authz.Source)")
	}
	return a.authz.View(ctx)
}

// authorize decides whether the request's user may perform action on the
// resource of type typ named id ("" for the controller), with the access
// evaluator compiled from the store's roles, grants, users and teams and
// the fleet's group ancestry. The middleware calls it for every Authorized
// route (see Route); handlers call it only for a route's further checks
// (Route.Also). A refusal is 403 with the evaluator's reason, and is
// audited.
func (a *API) authorize(r *http.Request, action access.Action, typ access.ResourceType, id string) error {
	p, ok := principalOf(r)
	if !ok {
		return errorf(http.StatusUnauthorized, "not logged in: %s needs a session; run `edgewarden login`", action)
	}
	if _, ok := access.LookupAction(action); !ok {
		return fmt.Errorf("api: authorize: unknown action %q", action) // a programming error: 500
	}
	v, err := a.view(r.Context())
	if err != nil {
		return err
	}
	res := v.Resource(typ, id)
	if d := v.Decide(p.User, action, res); !d.Allowed {
		return a.denied(r, action, res, d)
	}
	return nil
}

// authorizeBody authorizes a route whose resource its body names
// (Route.Body): the route's Action on the object id.
func (a *API) authorizeBody(r *http.Request, id string) error {
	rt := routeOf(r)
	if rt == nil || rt.Body == "" {
		return fmt.Errorf("api: authorizeBody outside a route that declares Body")
	}
	return a.authorize(r, rt.Action, rt.Action.ResourceType(), id)
}

// denied audits a refused request and returns its 403.
func (a *API) denied(r *http.Request, act access.Action, res access.Resource, d access.Decision) error {
	p, _ := principalOf(r)
	a.auditAs(r, p.User, store.AuditAccess, "access.denied", res.String(), string(act)+": "+d.Reason)
	return errorf(http.StatusForbidden, "%s may not %s on %s: %s; `%s` shows the grants that reach you there; ask an admin (or the group's owner, for a shareable role on a group) for one that gives %s",
		p.User, act, res, d.Reason, explainHint(act, res.Type, res.ID), act)
}

// explainHint is the command that explains, to the user refused, the
// decision on act over the resource of type typ named id.
func explainHint(act access.Action, typ access.ResourceType, id string) string {
	cmd := "edgewarden access explain --action " + string(act)
	switch typ {
	case access.ResourceDevice:
		cmd += " --device " + id
	case access.ResourceDeviceGroup:
		cmd += " --group " + id
	case access.ResourceApp:
		cmd += " --app " + id
	}
	return cmd
}

// auditAs records what changes nothing: a refused request, a login, a
// failed login. Changes record their entry through API.change. A failure
// to record is logged, not returned: the request's outcome stands.
//
// When actor is the session's user, the entry carries its immutable id.
func (a *API) auditAs(r *http.Request, actor, kind, action, target, detail string) {
	id := ""
	if p, ok := principalOf(r); ok && p.User == actor {
		id = p.UserID
	}
	a.audit(r, store.AuditEntry{Actor: actor, ActorID: id, Action: action, Target: target, Detail: detail, Kind: kind})
}

// auditAsUser is auditAs for a request made as user u without a session
// (a login): the entry carries u's immutable id.
func (a *API) auditAsUser(r *http.Request, u store.User, kind, action, target, detail string) {
	a.audit(r, store.AuditEntry{Actor: u.Name, ActorID: u.ID, Action: action, Target: target, Detail: detail, Kind: kind})
}

func (a *API) audit(r *http.Request, e store.AuditEntry) {
	e.At, e.Source = a.now(), r.RemoteAddr
	// Record even if the client has gone away.
	if _, err := a.opts.Store.AppendAudit(context.WithoutCancel(r.Context()), e); err != nil {
		a.log.Error("audit entry lost", "actor", e.Actor, "action", e.Action, "target", e.Target, "err", err)
	}
}

// login checks a user's password and returns a session token and the
// banner.
func (a *API) login(w http.ResponseWriter, r *http.Request) error {
	var req apiv1.LoginRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if req.User == "" || req.Password == "" {
		return errorf(http.StatusBadRequest, "user and password are required")
	}
	const refused = "wrong user name or password"
	name := req.User
	if len(name) > 64 {
		name = name[:64]
	}
	source := sourceAddr(r)
	if until := a.logins.wait(source, name, a.now()); !until.IsZero() {
		// The entry names the account by id when there is one, so the
		// guessing stays tied to it whoever has the name later.
		u, err := a.opts.Store.GetUser(r.Context(), req.User)
		if err != nil {
			u = store.User{Name: name}
		}
		a.auditAsUser(r, u, store.AuditSecurity, "user.login-failed", name, "throttled after repeated failures from "+source)
		w.Header().Set("Retry-After", strconv.Itoa(int(until.Sub(a.now()).Seconds())+1))
		return errorf(http.StatusTooManyRequests, "too many failed logins from this address or for %q; try again after %s", name, until.UTC().Format(time.RFC3339))
	}
	u, err := a.opts.Store.GetUser(r.Context(), req.User)
	if errors.Is(err, store.ErrNotFound) {
		auth.CheckDummy(req.Password)
		a.logins.failed(source, name, a.now())
		a.auditAs(r, name, store.AuditSecurity, "user.login-failed", name, "unknown user")
		return errorf(http.StatusUnauthorized, refused)
	}
	if err != nil {
		return err
	}
	if u.PasswordHash == "" {
		// Invited, or its password reset: no password works yet.
		auth.CheckDummy(req.Password)
		a.logins.failed(source, name, a.now())
		a.auditAsUser(r, u, store.AuditSecurity, "user.login-failed", u.Name, "user is "+u.State+" and has no password yet")
		return errorf(http.StatusUnauthorized, refused)
	}
	if err := auth.CheckPassword(u.PasswordHash, req.Password); err != nil {
		if !errors.Is(err, auth.ErrWrongPassword) {
			return err
		}
		a.logins.failed(source, name, a.now())
		a.auditAsUser(r, u, store.AuditSecurity, "user.login-failed", u.Name, "wrong password")
		return errorf(http.StatusUnauthorized, refused)
	}
	if u.State != store.UserActive {
		a.auditAsUser(r, u, store.AuditSecurity, "user.login-failed", u.Name, "user is "+u.State)
		return errorf(http.StatusUnauthorized, "user %q %s", u.Name, inactiveHint(u.State))
	}
	if a.opts.Sessions == nil {
		return errors.New("api: no session issuer configured")
	}
	token, exp, err := a.opts.Sessions.Issue(u.ID, u.SessionGen)
	if err != nil {
		return err
	}
	banner, err := a.getBanner(r.Context())
	if err != nil {
		return err
	}
	a.logins.succeeded(source, name)
	a.auditAsUser(r, u, store.AuditAccess, "user.login", u.Name, "")
	return writeJSON(w, http.StatusOK, apiv1.LoginResponse{Token: token, ExpiresAt: exp, Banner: banner})
}

// version answers which controller this is: build, API version, document
// schema. Nothing in it is secret, but it tells an attacker which build to
// aim at, so it needs a session.
func (a *API) version(w http.ResponseWriter, r *http.Request) error {
	v := a.opts.Version
	if v == "" {
		v = "dev"
	}
	return writeJSON(w, http.StatusOK, apiv1.Version{Controller: v, API: "v1", DocumentSchema: protocol.Schema})
}

func (a *API) banner(w http.ResponseWriter, r *http.Request) error {
	b, err := a.getBanner(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiv1.Banner{Banner: b})
}

func (a *API) getBanner(ctx context.Context) (string, error) {
	b, err := a.opts.Store.GetSetting(ctx, SettingBanner)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	return b, err
}

// visible returns the filter of a List route: whether the request's user
// holds the route's Action on a resource (as resDevice etc. name it),
// decided with one access view for the whole listing.
func (a *API) visible(r *http.Request) (func(resource string) bool, error) {
	p, ok := principalOf(r)
	if !ok {
		return nil, errorf(http.StatusUnauthorized, "not logged in; run `edgewarden login`")
	}
	rt := routeOf(r)
	if rt == nil || !rt.List {
		return nil, fmt.Errorf("api: visible outside a List route")
	}
	v, err := a.view(r.Context())
	if err != nil {
		return nil, err
	}
	return func(resource string) bool {
		typ, id, _ := strings.Cut(resource, ":")
		return v.Allowed(p.User, rt.Action, v.Resource(access.ResourceType(typ), id))
	}, nil
}
