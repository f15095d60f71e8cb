package api

import (
	"context"
	"errors"
	"fmt"
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

// Actions the API asks authorize about: names from the access catalogue
// (protocol/access).
const (
	actEnrollTokensManage = string(access.ControllerEnroll)
	actDeviceView         = string(access.DeviceView)
	actDeviceManage       = string(access.DeviceManage)
	actDeviceInstall      = string(access.DeviceAppInstall)
	actGroupView          = string(access.DeviceGroupView)
	actGroupCreate        = string(access.ControllerCreateDeviceGroup)
	actGroupDelete        = string(access.DeviceGroupDelete)
	actGroupMembers       = string(access.DeviceGroupManageMembers)
	actGroupShare         = string(access.DeviceGroupShare)
	actAppView            = string(access.AppView)
	actAppPublish         = string(access.AppPublish)
	actAppDeploy          = string(access.AppDeploy)
	actAppDeleteVersion   = string(access.AppDeleteVersion)
	actManageUsers        = string(access.ControllerManageUsers)
	actManageRoles        = string(access.ControllerManageRoles)
	actManageTokens       = string(access.ControllerManageTokens)
	actSettings           = string(access.ControllerSettings)
	actAudit              = string(access.ControllerAudit)
	actTrust              = string(access.ControllerTrust)
)

// Resources named in authorize calls: "controller", or "<type>:<id>" with
// type device, device-group or app. The id "*" means "some of them" (a
// listing): authorize lets every active user through and the handler
// filters the list with View.Allowed.
const resController = "controller"

func resDevice(id string) string   { return "device:" + id }
func resGroup(name string) string  { return "device-group:" + name }
func resApp(name string) string    { return "app:" + name }
func resDevices() string           { return "device:*" }
func resGroups() string            { return "device-group:*" }
func resApps() string              { return "app:*" }
func resEnrollToken(string) string { return resController }

// view returns the current access view (compiled evaluator and ancestry).
func (a *API) view(ctx context.Context) (*authz.View, error) {
	if a.authz == nil {
		return nil, errors.New("api: no authorizer configured (Options.Authz, or a Store that implements authz.Source)")
	}
	return a.authz.View(ctx)
}

// authorize decides whether the request's user may perform action on
// resource (see resDevice etc.), with the access evaluator compiled from
// the store's roles, grants, users and teams and the fleet's group
// ancestry. Every handler that needs a session calls it before doing
// anything. A refusal is 403 with the evaluator's reason, and is audited.
func (a *API) authorize(r *http.Request, action, resource string) error {
	p, ok := principalOf(r)
	if !ok {
		return errorf(http.StatusUnauthorized, "not logged in: %s on %s needs a session; run `edgewarden login`", action, resource)
	}
	act, err := access.ParseAction(action)
	if err != nil {
		return fmt.Errorf("api: authorize: %w", err) // a programming error: 500
	}
	typ, id, _ := strings.Cut(resource, ":")
	if id == "*" {
		return nil // a listing: the handler filters
	}
	v, err := a.view(r.Context())
	if err != nil {
		return err
	}
	d := v.Decide(p.User, act, v.Resource(access.ResourceType(typ), id))
	if !d.Allowed {
		return a.denied(r, act, v.Resource(access.ResourceType(typ), id), d)
	}
	return nil
}

// denied audits a refused request and returns its 403.
func (a *API) denied(r *http.Request, act access.Action, res access.Resource, d access.Decision) error {
	p, _ := principalOf(r)
	a.auditAs(r, p.User, store.AuditAccess, "access.denied", res.String(), string(act)+": "+d.Reason)
	return errorf(http.StatusForbidden, "%s may not %s on %s: %s; ask an admin for a grant (see `edgewarden access explain`)", p.User, act, res, d.Reason)
}

// auditAs records what changes nothing: a refused request, a login, a
// failed login. Changes record their entry through API.change. A failure
// to record is logged, not returned: the request's outcome stands.
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
	source := sourceAddr(r)
	if until := a.logins.wait(source, name, a.now()); !until.IsZero() {
		a.auditAs(r, name, store.AuditSecurity, "user.login-failed", name, "throttled after repeated failures from "+source)
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
	if err := auth.CheckPassword(u.PasswordHash, req.Password); err != nil {
		if !errors.Is(err, auth.ErrWrongPassword) {
			return err
		}
		a.logins.failed(source, name, a.now())
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
	a.logins.succeeded(source, name)
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

// visible returns a filter for listings: whether the request's user may
// perform action on a resource (as named for authorize), decided with one
// access view for the whole listing.
func (a *API) visible(r *http.Request, action string) (func(resource string) bool, error) {
	p, ok := principalOf(r)
	if !ok {
		return nil, errorf(http.StatusUnauthorized, "not logged in; run `edgewarden login`")
	}
	act, err := access.ParseAction(action)
	if err != nil {
		return nil, fmt.Errorf("api: visible: %w", err)
	}
	v, err := a.view(r.Context())
	if err != nil {
		return nil, err
	}
	return func(resource string) bool {
		typ, id, _ := strings.Cut(resource, ":")
		return v.Allowed(p.User, act, v.Resource(access.ResourceType(typ), id))
	}, nil
}
