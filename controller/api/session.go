package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/auth"
	"github.com/edgewarden/edgewarden/controller/store"
)

// principal is who makes an authenticated request.
type principal struct {
	User string
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
	u, err := a.opts.Store.GetUser(r.Context(), claims.User())
	if errors.Is(err, store.ErrNotFound) {
		return principal{}, errorf(http.StatusUnauthorized, "user %q no longer exists; log in as another user", claims.User())
	}
	if err != nil {
		return principal{}, err
	}
	if u.State != store.UserActive {
		return principal{}, errorf(http.StatusUnauthorized, "user %q is %s; ask an admin to activate it", u.Name, u.State)
	}
	return principal{User: u.Name}, nil
}

// Actions the API asks authorize about. Issue 3 maps them onto the access
// catalogue in protocol/access.
const (
	actEnrollTokensManage = "controller:enroll-tokens"
	actDeviceView         = "device:view"
	actDeviceManage       = "device:manage"
	actGroupView          = "device-group:view"
	actGroupCreate        = "controller:create-device-group"
	actGroupManage        = "device-group:manage"
	actGroupMembers       = "device-group:manage-members"
	actFleetView          = "controller:fleet-status"
)

// Resources named in authorize calls.
const resController = "controller"

func resDevice(id string) string   { return "device:" + id }
func resGroup(name string) string  { return "device-group:" + name }
func resDevices() string           { return "device:*" }
func resGroups() string            { return "device-group:*" }
func resEnrollToken(string) string { return resController }

// authorize decides whether the request's user may perform action on
// resource. Every handler that needs a session calls it before doing
// anything. For now any authenticated, active user may do everything; the
// access evaluator (issue 3) replaces this body.
func (a *API) authorize(r *http.Request, action, resource string) error {
	if _, ok := principalOf(r); !ok {
		return errorf(http.StatusUnauthorized, "not logged in: %s on %s needs a session; run `edgewarden login`", action, resource)
	}
	return nil
}

// audit appends one entry for a change made by the request's user. The
// change has already happened, so a failure to record it is logged, not
// returned.
func (a *API) audit(r *http.Request, action, target, detail string) {
	actor := "anonymous"
	if p, ok := principalOf(r); ok {
		actor = p.User
	}
	a.auditAs(r, actor, store.AuditChange, action, target, detail)
}

func (a *API) auditAs(r *http.Request, actor, kind, action, target, detail string) {
	e := store.AuditEntry{
		At:     a.now(),
		Actor:  actor,
		Action: action,
		Target: target,
		Detail: detail,
		Source: r.RemoteAddr,
		Kind:   kind,
	}
	// Record even if the client has gone away.
	if _, err := a.opts.Store.AppendAudit(context.WithoutCancel(r.Context()), e); err != nil {
		a.log.Error("audit entry lost", "actor", actor, "action", action, "target", target, "err", err)
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
	if until, locked := a.logins.locked(name, a.now()); locked {
		a.auditAs(r, name, store.AuditSecurity, "user.login-failed", name, "locked out after repeated failures")
		return errorf(http.StatusTooManyRequests, "too many failed logins for %q; try again after %s", name, until.UTC().Format(time.RFC3339))
	}
	u, err := a.opts.Store.GetUser(r.Context(), req.User)
	if errors.Is(err, store.ErrNotFound) {
		auth.CheckDummy(req.Password)
		a.logins.failed(name, a.now())
		a.auditAs(r, name, store.AuditSecurity, "user.login-failed", name, "unknown user")
		return errorf(http.StatusUnauthorized, refused)
	}
	if err != nil {
		return err
	}
	if err := auth.CheckPassword(u.PasswordHash, req.Password); err != nil {
		if !errors.Is(err, auth.ErrWrongPassword) {
			return err
		}
		a.logins.failed(name, a.now())
		a.auditAs(r, u.Name, store.AuditSecurity, "user.login-failed", u.Name, "wrong password")
		return errorf(http.StatusUnauthorized, refused)
	}
	if u.State != store.UserActive {
		a.auditAs(r, u.Name, store.AuditSecurity, "user.login-failed", u.Name, "user is "+u.State)
		return errorf(http.StatusUnauthorized, "user %q is %s; ask an admin to activate it", u.Name, u.State)
	}
	if a.opts.Sessions == nil {
		return errors.New("api: no session issuer configured")
	}
	token, exp, err := a.opts.Sessions.Issue(u.Name)
	if err != nil {
		return err
	}
	banner, err := a.getBanner(r.Context())
	if err != nil {
		return err
	}
	a.logins.succeeded(name)
	a.auditAs(r, u.Name, store.AuditAccess, "user.login", u.Name, "")
	return writeJSON(w, http.StatusOK, apiv1.LoginResponse{Token: token, ExpiresAt: exp, Banner: banner})
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
