package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/auth"
	"github.com/edgewarden/edgewarden/controller/authz"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol/access"
	"github.com/edgewarden/edgewarden/protocol/optoken"
)

// AccessStore is what the access endpoints need from the database;
// *store.DB implements it. Errors wrap the store's sentinels as in Store.
type AccessStore interface {
	InviteUser(ctx context.Context, inv store.Invitation) (store.User, error)
	ActivateUser(ctx context.Context, tokenHash, passwordHash string) (store.User, error)
	ListUsers(ctx context.Context) ([]store.User, error)
	SetUserState(ctx context.Context, name, state string) (store.User, error)
	SetUserPassword(ctx context.Context, name, passwordHash string) (store.User, error)
	ResetPassword(ctx context.Context, inv store.Invitation) (store.User, error)
	EndSession(ctx context.Context, id, userID string, expiresAt time.Time) error
	EndSessions(ctx context.Context, name string) (store.User, error)
	DeleteUser(ctx context.Context, name string) error

	CreateTeam(ctx context.Context, name string) (store.Team, error)
	GetTeam(ctx context.Context, name string) (store.Team, error)
	ListTeams(ctx context.Context) ([]store.Team, error)
	DeleteTeam(ctx context.Context, name string) error
	AddTeamMembers(ctx context.Context, team string, users []string) (store.Team, error)
	RemoveTeamMembers(ctx context.Context, team string, users []string) (store.Team, error)

	ListRoles(ctx context.Context) ([]store.Role, error)
	GetRole(ctx context.Context, name string) (store.Role, error)
	CreateRole(ctx context.Context, r access.Role) (store.Role, error)
	UpdateRole(ctx context.Context, r access.Role) (store.Role, error)
	DeleteRole(ctx context.Context, name string) error

	CreateGrant(ctx context.Context, g store.Grant) (store.Grant, error)
	GetGrant(ctx context.Context, id string) (store.Grant, error)
	ListGrants(ctx context.Context) ([]store.Grant, error)
	DeleteGrant(ctx context.Context, id string) error

	RecordToken(ctx context.Context, t store.OperatorToken) error
	GetToken(ctx context.Context, id string) (store.OperatorToken, error)
	ListTokens(ctx context.Context, user string) ([]store.OperatorToken, error)
	RevokeToken(ctx context.Context, id, by string) (store.OperatorToken, error)

	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error)
	SetSetting(ctx context.Context, key, value string) error
	ListSettings(ctx context.Context) (map[string]string, error)
}

var _ AccessStore = (*store.DB)(nil)

// Limits and defaults of the access endpoints.
const (
	DefaultInviteTTL = 7 * 24 * time.Hour
	MaxInviteTTL     = 30 * 24 * time.Hour
	MaxTokenTTL      = 7 * 24 * time.Hour
	maxBannerBytes   = 4096
)

// SettingSideload is the global sideload policy ("allow" or "deny"; unset
// means deny), as the compiler reads it (desired.SettingSideload).
const SettingSideload = store.SettingSideload

func (a *API) initAccess() {
	a.authz = a.opts.Authz
	if a.authz == nil {
		if src, ok := a.opts.Store.(authz.Source); ok {
			a.authz = authz.New(src, a.log)
		}
	}
	if a.opts.Access == nil {
		a.opts.Access, _ = a.opts.Store.(AccessStore)
	}
}

func (a *API) accessStore() (AccessStore, error) {
	if a.opts.Access == nil {
		return nil, errorf(http.StatusNotImplemented, "this controller has no access store configured")
	}
	return a.opts.Access, nil
}

// self returns the request's session and the access store, for the
// routes where a user acts on their own account.
func (a *API) self(r *http.Request) (principal, AccessStore, error) {
	p, ok := principalOf(r)
	if !ok {
		return principal{}, nil, errorf(http.StatusUnauthorized, "not logged in; run `edgewarden login`")
	}
	st, err := a.accessStore()
	return p, st, err
}

// actor returns the request's user and the current access view.
func (a *API) actor(r *http.Request) (string, *authz.View, AccessStore, error) {
	p, st, err := a.self(r)
	if err != nil {
		return "", nil, nil, err
	}
	v, err := a.view(r.Context())
	if err != nil {
		return "", nil, nil, err
	}
	return p.User, v, st, nil
}

// accessError maps the access model's errors to HTTP: forbidden and
// escalation 403, invalid and unknown action 400.
func accessError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, access.ErrForbidden), errors.Is(err, access.ErrEscalation):
		return errorf(http.StatusForbidden, "%s", err.Error())
	case errors.Is(err, access.ErrInvalid), errors.Is(err, access.ErrUnknownAction):
		return errorf(http.StatusBadRequest, "%s", err.Error())
	}
	return err
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func ttlOf(seconds int64, def, limit time.Duration, what string) (time.Duration, error) {
	if seconds < 0 {
		return 0, errorf(http.StatusBadRequest, "ttl_seconds must not be negative")
	}
	if seconds == 0 {
		return def, nil
	}
	d := time.Duration(seconds) * time.Second
	if seconds > int64(limit/time.Second) {
		return 0, errorf(http.StatusBadRequest, "%s lifetime %s is longer than the limit of %s", what, d, limit)
	}
	return d, nil
}

// --- users ---

func userView(u store.User, v *authz.View) apiv1.User {
	return apiv1.User{Name: u.Name, ID: u.ID, State: u.State, Teams: nonNil(v.TeamsOf(u.Name)), CreatedAt: u.CreatedAt}
}

func (a *API) inviteUser(w http.ResponseWriter, r *http.Request) error {
	actor, _, st, err := a.actor(r)
	if err != nil {
		return err
	}
	var req apiv1.InviteRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	ttl, err := ttlOf(req.TTLSeconds, DefaultInviteTTL, MaxInviteTTL, "invitation")
	if err != nil {
		return err
	}
	token := activationToken()
	now := a.now().UTC()
	var u store.User
	err = a.change(r, store.AuditSecurity, "user.invite", req.Name, "activation token expires "+now.Add(ttl).Format(time.RFC3339), func(ctx context.Context, c *store.Change) error {
		c.DirtyAll() // grants to a user take effect on every device where they apply
		var err error
		if u, err = st.InviteUser(ctx, store.Invitation{User: req.Name, TokenHash: sha256Hex(token), ExpiresAt: now.Add(ttl), CreatedBy: actor, CreatedAt: now}); err != nil {
			return err
		}
		c.Audit.Target, c.After = u.Name, userState(u)
		return nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, apiv1.Invitation{User: u.Name, Token: token, ExpiresAt: now.Add(ttl)})
}

// activateUser redeems an activation token; it needs no session.
func (a *API) activateUser(w http.ResponseWriter, r *http.Request) error {
	st, err := a.accessStore()
	if err != nil {
		return err
	}
	var req apiv1.ActivateRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if req.Token == "" || len(req.Token) > 256 {
		return errorf(http.StatusBadRequest, "token is required: the activation token from `edgewarden users invite`")
	}
	hash, err := auth.HashPassword(req.Password)
	if err != nil {
		return errorf(http.StatusBadRequest, "%s", err.Error())
	}
	var u store.User
	err = a.change(r, store.AuditChange, "user.activate", "", "", func(ctx context.Context, c *store.Change) error {
		c.DirtyAll()
		var err error
		if u, err = st.ActivateUser(ctx, sha256Hex(req.Token), hash); err != nil {
			return err
		}
		c.Audit.Actor, c.Audit.ActorID, c.Audit.Target = u.Name, u.ID, u.Name
		c.Before, c.After = userState(store.User{Name: u.Name, State: store.UserInvited}), userState(u)
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrForbidden) {
			a.auditAs(r, "anonymous", store.AuditSecurity, "user.activate-failed", "", err.Error())
		}
		return err
	}
	return writeJSON(w, http.StatusOK, apiv1.User{Name: u.Name, ID: u.ID, State: u.State, Teams: []string{}, CreatedAt: u.CreatedAt})
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) error {
	_, v, st, err := a.actor(r)
	if err != nil {
		return err
	}
	us, err := st.ListUsers(r.Context())
	if err != nil {
		return err
	}
	out := make([]apiv1.User, 0, len(us))
	for _, u := range us {
		out = append(out, userView(u, v))
	}
	return writeJSON(w, http.StatusOK, out)
}

// lookupUser answers whether an active user of that exact name exists, for
// someone about to share a group with them: device-group:share somewhere,
// or controller:manage-users or controller:manage-roles. It reveals the name
// only: a disabled, pending, deleted or unknown user is the same 404, and
// nothing of anyone's teams or grants is in the answer.
func (a *API) lookupUser(w http.ResponseWriter, r *http.Request) error {
	actor, v, _, err := a.actor(r)
	if err != nil {
		return err
	}
	name := r.URL.Query().Get("name")
	if name == "" {
		return errorf(http.StatusBadRequest, "name is required: look up one user by exact name (?name=USER)")
	}
	if err := store.ValidateAccessName("user", name); err != nil {
		return errorf(http.StatusBadRequest, "%s", err.Error())
	}
	if !maySomewhere(v, actor, access.DeviceGroupShare) &&
		!v.Allowed(actor, access.ControllerManageUsers, access.ControllerResource()) &&
		!v.Allowed(actor, access.ControllerManageRoles, access.ControllerResource()) {
		a.auditAs(r, actor, store.AuditAccess, "access.denied", "users", "user lookup: holds no "+string(access.DeviceGroupShare))
		return errorf(http.StatusForbidden, "%s may not look up users: the lookup is for sharing a device group, so it needs %s on some group (or %s); `%s` shows your grants on a group",
			actor, access.DeviceGroupShare, access.ControllerManageUsers, explainHint(access.DeviceGroupShare, access.ResourceDeviceGroup, "GROUP"))
	}
	if u, ok := v.User(name); ok && u.State == store.UserActive {
		return writeJSON(w, http.StatusOK, apiv1.UserName{Name: u.Name})
	}
	return errorf(http.StatusNotFound, "there is no active user called %s; check the spelling, or ask an admin to invite them", name)
}

// maySomewhere reports whether user holds act on some scope (a grant of a
// role with it, to the user or a team of theirs, reaches them).
func maySomewhere(v *authz.View, user string, act access.Action) bool {
	for _, h := range v.Evaluator().Holdings(user) {
		if slices.Contains(h.Actions, act) {
			return true
		}
	}
	return false
}

func (a *API) disableUser(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	actor, v, st, err := a.actor(r)
	if err != nil {
		return err
	}
	if name == actor {
		return errorf(http.StatusBadRequest, "you cannot disable yourself; ask another admin")
	}
	return a.setUserState(w, r, v, st, "user.disable", name, store.UserDisabled, nil)
}

// setUserState moves user name to state in one change (audited with its
// before and after; every device's document may change with the user's
// grants). check, when given, refuses a move from the stored state.
func (a *API) setUserState(w http.ResponseWriter, r *http.Request, v *authz.View, st AccessStore, action, name, state string, check func(before store.User) error) error {
	var u store.User
	err := a.change(r, store.AuditSecurity, action, name, "", func(ctx context.Context, c *store.Change) error {
		c.DirtyAll()
		before, err := a.opts.Store.GetUser(ctx, name)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(before); err != nil {
				return err
			}
		}
		if u, err = st.SetUserState(ctx, name, state); err != nil {
			return err
		}
		c.Before, c.After = userState(before), userState(u)
		return nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, userView(u, v))
}

func (a *API) deleteUser(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	actor, _, st, err := a.actor(r)
	if err != nil {
		return err
	}
	if name == actor {
		return errorf(http.StatusBadRequest, "you cannot delete yourself; ask another admin")
	}
	err = a.change(r, store.AuditSecurity, "user.delete", name, "grants and team memberships removed", func(ctx context.Context, c *store.Change) error {
		c.DirtyAll()
		before, err := a.opts.Store.GetUser(ctx, name)
		if err != nil {
			return err
		}
		c.Before = userState(before)
		return st.DeleteUser(ctx, name)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- teams ---

func teamView(t store.Team) apiv1.Team {
	return apiv1.Team{Name: t.Name, Members: nonNil(t.Members), CreatedAt: t.CreatedAt}
}

func (a *API) createTeam(w http.ResponseWriter, r *http.Request) error {
	_, _, st, err := a.actor(r)
	if err != nil {
		return err
	}
	var req apiv1.CreateTeamRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	var t store.Team
	err = a.change(r, store.AuditChange, "team.create", req.Name, "", func(ctx context.Context, c *store.Change) error {
		var err error
		if t, err = st.CreateTeam(ctx, req.Name); err != nil {
			return err
		}
		c.Audit.Target, c.After = t.Name, teamView(t)
		return nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, teamView(t))
}

func (a *API) listTeams(w http.ResponseWriter, r *http.Request) error {
	_, _, st, err := a.actor(r)
	if err != nil {
		return err
	}
	ts, err := st.ListTeams(r.Context())
	if err != nil {
		return err
	}
	out := make([]apiv1.Team, 0, len(ts))
	for _, t := range ts {
		out = append(out, teamView(t))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) deleteTeam(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	_, _, st, err := a.actor(r)
	if err != nil {
		return err
	}
	err = a.change(r, store.AuditChange, "team.delete", name, "members and grants removed", func(ctx context.Context, c *store.Change) error {
		c.DirtyAll()
		before, err := st.GetTeam(ctx, name)
		if err != nil {
			return err
		}
		c.Before = teamView(before)
		return st.DeleteTeam(ctx, name)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) addTeamMembers(w http.ResponseWriter, r *http.Request) error {
	return a.changeTeamMembers(w, r, true)
}

func (a *API) removeTeamMembers(w http.ResponseWriter, r *http.Request) error {
	return a.changeTeamMembers(w, r, false)
}

// changeTeamMembers adds or removes members. Joining a team hands its
// grants to the new members, so adding needs, besides manage-users, the
// right to create each of the team's grants (no escalation).
func (a *API) changeTeamMembers(w http.ResponseWriter, r *http.Request, add bool) error {
	name := r.PathValue("name")
	actor, v, st, err := a.actor(r)
	if err != nil {
		return err
	}
	var req apiv1.TeamMembersRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if len(req.Users) == 0 {
		return errorf(http.StatusBadRequest, "users is required: name at least one user")
	}
	if add {
		grants, err := st.ListGrants(r.Context())
		if err != nil {
			return err
		}
		for _, g := range grants {
			if g.Subject != access.TeamSubject(name) {
				continue
			}
			role, _ := v.Role(g.Role)
			if err := access.CheckNoEscalation(v.Evaluator(), actor, role.Actions, scopeResource(v, g.Scope)); err != nil {
				return accessError(fmt.Errorf("adding members to team %s hands them its grant %s (role %s on %s): %w", name, g.ID, g.Role, g.Scope, err))
			}
		}
	}
	action, change := "team.add-members", st.AddTeamMembers
	if !add {
		action, change = "team.remove-members", st.RemoveTeamMembers
	}
	var t store.Team
	err = a.change(r, store.AuditChange, action, name, strings.Join(req.Users, ","), func(ctx context.Context, c *store.Change) error {
		c.DirtyAll()
		before, err := st.GetTeam(ctx, name)
		if err != nil {
			return err
		}
		if t, err = change(ctx, name, req.Users); err != nil {
			return err
		}
		c.Before, c.After = teamView(before), teamView(t)
		return nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, teamView(t))
}

// --- roles ---

func roleView(r store.Role) apiv1.Role {
	return apiv1.Role{Name: r.Name, Description: r.Description, Actions: nonNil(r.Actions), Shareable: r.Shareable, Builtin: r.Builtin}
}

func (a *API) listActions(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, access.Actions())
}

func (a *API) listRoles(w http.ResponseWriter, r *http.Request) error {
	st, err := a.accessStore()
	if err != nil {
		return err
	}
	rs, err := st.ListRoles(r.Context())
	if err != nil {
		return err
	}
	out := make([]apiv1.Role, 0, len(rs))
	for _, role := range rs {
		out = append(out, roleView(role))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) getRole(w http.ResponseWriter, r *http.Request) error {
	st, err := a.accessStore()
	if err != nil {
		return err
	}
	role, err := st.GetRole(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, roleView(role))
}

// parseRole checks a role request: known actions, and that the actor may
// hand out every one of them everywhere (access.CheckNoEscalation).
func (a *API) parseRole(r *http.Request, req apiv1.RoleRequest, v *authz.View, actor string) (access.Role, error) {
	if access.IsBuiltinRole(req.Name) {
		return access.Role{}, errorf(http.StatusForbidden, "role %s is built in and cannot be created, changed or deleted; create a custom role with another name", req.Name)
	}
	role := access.Role{Name: req.Name, Description: req.Description, Shareable: req.Shareable}
	for _, s := range req.Actions {
		act, err := access.ParseAction(s)
		if err != nil {
			return access.Role{}, errorf(http.StatusBadRequest, "role %s: %s", req.Name, err.Error())
		}
		role.Actions = append(role.Actions, act)
	}
	if err := access.ValidateRole(role); err != nil {
		return access.Role{}, accessError(err)
	}
	if err := access.CheckNoEscalation(v.Evaluator(), actor, role.Actions, access.ControllerResource()); err != nil {
		return access.Role{}, accessError(err)
	}
	return role, nil
}

func (a *API) createRole(w http.ResponseWriter, r *http.Request) error {
	actor, v, st, err := a.actor(r)
	if err != nil {
		return err
	}
	var req apiv1.RoleRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	role, err := a.parseRole(r, req, v, actor)
	if err != nil {
		return err
	}
	var out store.Role
	err = a.change(r, store.AuditChange, "role.create", role.Name, roleDetail(role), func(ctx context.Context, c *store.Change) error {
		var err error
		if out, err = st.CreateRole(ctx, role); err != nil {
			return err
		}
		c.After = roleView(out)
		return nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, roleView(out))
}

func roleDetail(r access.Role) string {
	acts := make([]string, len(r.Actions))
	for i, x := range r.Actions {
		acts[i] = string(x)
	}
	return "actions=" + strings.Join(acts, ",") + " shareable=" + strconv.FormatBool(r.Shareable)
}

func (a *API) updateRole(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	actor, v, st, err := a.actor(r)
	if err != nil {
		return err
	}
	var req apiv1.RoleRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if req.Name != "" && req.Name != name {
		return errorf(http.StatusBadRequest, "the role name in the body (%q) differs from the one in the path (%q); roles cannot be renamed", req.Name, name)
	}
	req.Name = name
	role, err := a.parseRole(r, req, v, actor)
	if err != nil {
		return err
	}
	var out store.Role
	err = a.change(r, store.AuditChange, "role.update", role.Name, roleDetail(role), func(ctx context.Context, c *store.Change) error {
		c.DirtyAll()
		before, err := st.GetRole(ctx, role.Name)
		if err != nil {
			return err
		}
		if out, err = st.UpdateRole(ctx, role); err != nil {
			return err
		}
		c.Before, c.After = roleView(before), roleView(out)
		return nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, roleView(out))
}

func (a *API) deleteRole(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	_, _, st, err := a.actor(r)
	if err != nil {
		return err
	}
	err = a.change(r, store.AuditChange, "role.delete", name, "", func(ctx context.Context, c *store.Change) error {
		c.DirtyAll()
		if before, err := st.GetRole(ctx, name); err == nil {
			c.Before = roleView(before)
		}
		return st.DeleteRole(ctx, name)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- grants ---

func grantView(g store.Grant) apiv1.Grant {
	return apiv1.Grant{ID: g.ID, Subject: g.Subject, Role: g.Role, Scope: g.Scope, CreatedBy: g.CreatedBy, CreatedAt: g.CreatedAt}
}

func scopeResource(v *authz.View, s access.Scope) access.Resource {
	switch s.Kind {
	case access.ScopeDeviceGroup:
		return v.Group(s.Name)
	case access.ScopeDevice:
		return v.Device(s.Name)
	case access.ScopeApp:
		return access.AppResource(s.Name)
	}
	return access.ControllerResource()
}

func subjectOf(user, team string) (access.Subject, error) {
	switch {
	case (user == "") == (team == ""):
		return access.Subject{}, errorf(http.StatusBadRequest, "name exactly one of user and team")
	case user != "":
		return access.UserSubject(user), nil
	}
	return access.TeamSubject(team), nil
}

func scopeOf(group, device, app string) (access.Scope, error) {
	n := 0
	for _, s := range []string{group, device, app} {
		if s != "" {
			n++
		}
	}
	switch {
	case n > 1:
		return access.Scope{}, errorf(http.StatusBadRequest, "name at most one of group, device and app (none: global)")
	case group != "":
		return access.GroupScope(group), nil
	case device != "":
		return access.DeviceScope(device), nil
	case app != "":
		return access.AppScope(app), nil
	}
	return access.Global(), nil
}

// concerns reports whether subject is actor or one of actor's teams.
func concerns(v *authz.View, actor string, s access.Subject) bool {
	return s == access.UserSubject(actor) || (s.Kind == access.SubjectTeam && slices.Contains(v.TeamsOf(actor), s.Name))
}

func (a *API) createGrant(w http.ResponseWriter, r *http.Request) error {
	actor, v, _, err := a.actor(r)
	if err != nil {
		return err
	}
	var req apiv1.CreateGrantRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	subject, err := subjectOf(req.User, req.Team)
	if err != nil {
		return err
	}
	scope, err := scopeOf(req.Group, req.Device, req.App)
	if err != nil {
		return err
	}
	role, ok := v.Role(req.Role)
	if !ok {
		return errorf(http.StatusNotFound, "role %q does not exist; list roles with `edgewarden roles ls`", req.Role)
	}
	canManage := v.Allowed(actor, access.ControllerManageRoles, access.ControllerResource())
	if concerns(v, actor, subject) && !canManage {
		a.auditAs(r, actor, store.AuditAccess, "access.denied", subject.String(), "grant to oneself without "+string(access.ControllerManageRoles))
		return errorf(http.StatusForbidden, "%s may not change their own grants: that needs %s", actor, access.ControllerManageRoles)
	}
	res := scopeResource(v, scope)
	if err := access.CheckNoEscalation(v.Evaluator(), actor, role.Actions, res); err != nil {
		a.auditAs(r, actor, store.AuditAccess, "access.denied", subject.String(), "grant "+role.Name+" on "+scope.String()+": "+err.Error())
		return accessError(err)
	}
	g, err := a.grant(r, "grant.create", store.Grant{Grant: access.Grant{Subject: subject, Role: role.Name, Scope: scope}, CreatedBy: actor})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, grantView(g))
}

// listGrants lists every grant to holders of controller:manage-roles; to
// others, the grants that concern them (to them or their teams) and those on
// groups where they hold device-group:share (the shares they manage).
func (a *API) listGrants(w http.ResponseWriter, r *http.Request) error {
	actor, v, st, err := a.actor(r)
	if err != nil {
		return err
	}
	gs, err := st.ListGrants(r.Context())
	if err != nil {
		return err
	}
	all := v.Allowed(actor, access.ControllerManageRoles, access.ControllerResource())
	p, _ := principalOf(r)
	out := make([]apiv1.Grant, 0, len(gs))
	for _, g := range gs {
		mine := concerns(v, actor, g.Subject) && (g.Subject.Kind != access.SubjectUser || g.SubjectID == p.UserID)
		if all || mine ||
			(g.Scope.Kind == access.ScopeDeviceGroup && v.Allowed(actor, access.DeviceGroupShare, v.Group(g.Scope.Name))) {
			out = append(out, grantView(g))
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

// deleteGrant needs controller:manage-roles, or, for a share (a template
// role on a group, to someone else), device-group:share on that group.
func (a *API) deleteGrant(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	actor, v, st, err := a.actor(r)
	if err != nil {
		return err
	}
	g, err := st.GetGrant(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) && !v.Allowed(actor, access.ControllerManageRoles, access.ControllerResource()) {
		return a.denied(r, access.ControllerManageRoles, access.ControllerResource(), v.Decide(actor, access.ControllerManageRoles, access.ControllerResource()))
	}
	if err != nil {
		return err
	}
	if !v.Allowed(actor, access.ControllerManageRoles, access.ControllerResource()) {
		role, _ := v.Role(g.Role)
		share := g.Scope.Kind == access.ScopeDeviceGroup && role.Shareable && !concerns(v, actor, g.Subject)
		if !share {
			return a.denied(r, access.ControllerManageRoles, access.ControllerResource(), v.Decide(actor, access.ControllerManageRoles, access.ControllerResource()))
		}
		if d := v.Decide(actor, access.DeviceGroupShare, v.Group(g.Scope.Name)); !d.Allowed {
			return a.denied(r, access.DeviceGroupShare, v.Group(g.Scope.Name), d)
		}
	}
	err = a.change(r, store.AuditChange, "grant.delete", id, fmt.Sprintf("role %s to %s on %s", g.Role, g.Subject, g.Scope), func(ctx context.Context, c *store.Change) error {
		if err := dirtyScope(ctx, c, g.Scope); err != nil {
			return err
		}
		c.Before = grantView(g)
		return st.DeleteGrant(ctx, id)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// share grants a template role on a group (access.CanShare).
func (a *API) share(w http.ResponseWriter, r *http.Request) error {
	actor, v, _, err := a.actor(r)
	if err != nil {
		return err
	}
	var req apiv1.ShareRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	target, err := subjectOf(req.User, req.Team)
	if err != nil {
		return err
	}
	if req.Group == "" {
		return errorf(http.StatusBadRequest, "group is required: roles are shared on a device group")
	}
	if !v.HasGroup(req.Group) {
		return errorf(http.StatusNotFound, "device group %s does not exist; list groups with `edgewarden groups ls`", req.Group)
	}
	role, ok := v.Role(req.Role)
	if !ok {
		return errorf(http.StatusNotFound, "role %q does not exist; list roles with `edgewarden roles ls`", req.Role)
	}
	if concerns(v, actor, target) {
		return errorf(http.StatusForbidden, "%s may not share with themselves or their own teams: changing one's own grants needs %s", actor, access.ControllerManageRoles)
	}
	if err := access.CanShare(v.Evaluator(), actor, role, v.Group(req.Group), target); err != nil {
		a.auditAs(r, actor, store.AuditAccess, "access.denied", target.String(), "share "+role.Name+" on "+req.Group+": "+err.Error())
		return accessError(err)
	}
	g, err := a.grant(r, "grant.share", store.Grant{Grant: access.Grant{Subject: target, Role: role.Name, Scope: access.GroupScope(req.Group)}, CreatedBy: actor})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, grantView(g))
}

// grant creates g as one change (action grant.create or grant.share),
// marking the devices in its scope.
func (a *API) grant(r *http.Request, action string, g store.Grant) (store.Grant, error) {
	st, err := a.accessStore()
	if err != nil {
		return store.Grant{}, err
	}
	var out store.Grant
	err = a.change(r, store.AuditChange, action, "", "", func(ctx context.Context, c *store.Change) error {
		if err := dirtyScope(ctx, c, g.Scope); err != nil {
			return err
		}
		var err error
		if out, err = st.CreateGrant(ctx, g); err != nil {
			return err
		}
		c.Audit.Target, c.Audit.Detail = out.ID, fmt.Sprintf("role %s to %s on %s", out.Role, out.Subject, out.Scope)
		c.After = grantView(out)
		return nil
	})
	return out, err
}

// dirtyScope marks the devices whose documents carry grants on scope: a
// group's members, one device, or (global and app scopes) every device.
func dirtyScope(ctx context.Context, c *store.Change, s access.Scope) error {
	switch s.Kind {
	case access.ScopeDeviceGroup:
		return c.DirtyGroups(ctx, s.Name)
	case access.ScopeDevice:
		c.DirtyDevices(s.Name)
		return nil
	}
	c.DirtyAll()
	return nil
}

// userState is a user as audit entries record it (no secrets).
func userState(u store.User) map[string]string {
	return map[string]string{"name": u.Name, "state": u.State}
}

// sideloadState is a sideload policy as audit entries record it; unset is
// the default, deny.
func sideloadState(policy string) map[string]string {
	if policy != apiv1.SideloadAllow {
		policy = apiv1.SideloadDeny
	}
	return map[string]string{"policy": policy}
}

// ownGroup gives the creator of a group the built-in group-owner template
// on it, unless they already hold everything it gives there. It runs inside
// the change c that creates the group, and records the grant in its audit
// entry: a group is never left without its owner grant.
func (a *API) ownGroup(ctx context.Context, r *http.Request, c *store.Change, group string) error {
	actor := principalName(r)
	v, err := a.view(ctx)
	if err != nil {
		return err
	}
	res := access.GroupResource(group, nil) // a new group has no parents
	owner, _ := v.Role(access.RoleGroupOwner)
	held := true
	for _, act := range owner.Actions {
		held = held && v.Allowed(actor, act, res)
	}
	if held {
		return nil
	}
	st, err := a.accessStore()
	if err != nil {
		return err
	}
	g, err := st.CreateGrant(ctx, store.Grant{Grant: access.OwnerGrant(store.NewGrantID(), actor, group), CreatedBy: actor})
	if err != nil {
		return fmt.Errorf("give %s the group-owner role on new group %s: %w", actor, group, err)
	}
	c.Audit.Detail += fmt.Sprintf("; grant %s: role %s to %s on %s (creator of the group)", g.ID, g.Role, g.Subject, g.Scope)
	c.After = grantView(g)
	return nil
}

// checkAccess answers "may U do A on R?" with the explanation. Asking
// about oneself needs nothing; about others, controller:manage-roles or
// controller:audit.
func (a *API) checkAccess(w http.ResponseWriter, r *http.Request) error {
	actor, v, _, err := a.actor(r)
	if err != nil {
		return err
	}
	var req apiv1.AccessCheckRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if req.User == "" {
		req.User = actor
	}
	if req.User != actor && !v.Allowed(actor, access.ControllerManageRoles, access.ControllerResource()) &&
		!v.Allowed(actor, access.ControllerAudit, access.ControllerResource()) {
		return a.denied(r, access.ControllerAudit, access.ControllerResource(), v.Decide(actor, access.ControllerAudit, access.ControllerResource()))
	}
	act, err := access.ParseAction(req.Action)
	if err != nil {
		return errorf(http.StatusBadRequest, "%s", err.Error())
	}
	scope, err := scopeOf(req.Group, req.Device, req.App)
	if err != nil {
		return err
	}
	switch {
	case scope.Kind == access.ScopeDevice && !v.HasDevice(scope.Name):
		return errorf(http.StatusNotFound, "device %s does not exist; list devices with `edgewarden devices ls`", scope.Name)
	case scope.Kind == access.ScopeDeviceGroup && !v.HasGroup(scope.Name):
		return errorf(http.StatusNotFound, "device group %s does not exist; list groups with `edgewarden groups ls`", scope.Name)
	}
	res := scopeResource(v, scope)
	d := v.Decide(req.User, act, res)
	return writeJSON(w, http.StatusOK, apiv1.AccessDecision{
		User: req.User, Action: string(act), Resource: res.String(),
		Allowed: d.Allowed, Chain: d.Chain, Reason: d.Reason, Explanation: d.String(),
	})
}

// --- operator tokens ---

func tokenView(t store.OperatorToken) apiv1.OperatorToken {
	out := apiv1.OperatorToken{ID: t.ID, User: t.User, IssuedAt: t.IssuedAt, ExpiresAt: t.ExpiresAt, Revoked: t.Revoked(), RevokedBy: t.RevokedBy}
	if t.Revoked() {
		at := t.RevokedAt
		out.RevokedAt = &at
	}
	return out
}

// issueToken issues an operator token to the caller, for local access on
// devices. Only active users get one (authentication refuses the others,
// and the store checks again).
func (a *API) issueToken(w http.ResponseWriter, r *http.Request) error {
	actor, _, st, err := a.actor(r)
	if err != nil {
		return err
	}
	if a.opts.TokenSigner == nil {
		return errorf(http.StatusNotImplemented, "this controller has no operator-token key configured")
	}
	var req apiv1.IssueTokenRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	ttl, err := ttlOf(req.TTLSeconds, optoken.DefaultTTL, MaxTokenTTL, "operator token")
	if err != nil {
		return err
	}
	token, c, err := a.opts.TokenSigner.Issue(optoken.IssueOptions{Subject: actor, Now: a.now(), TTL: ttl})
	if err != nil {
		return err
	}
	p, _ := principalOf(r)
	rec := store.OperatorToken{ID: c.ID, User: actor, UserID: p.UserID, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt}
	err = a.change(r, store.AuditSecurity, "token.issue", c.ID, "expires "+c.ExpiresAt.Format(time.RFC3339), func(ctx context.Context, ch *store.Change) error {
		ch.After = tokenView(rec)
		return st.RecordToken(ctx, rec)
	})
	if err != nil {
		return err
	}
	out := tokenView(rec)
	out.Token = token
	return writeJSON(w, http.StatusCreated, out)
}

// listTokens lists the caller's tokens; with controller:manage-tokens,
// everyone's.
func (a *API) listTokens(w http.ResponseWriter, r *http.Request) error {
	actor, v, st, err := a.actor(r)
	if err != nil {
		return err
	}
	user := actor
	all := v.Allowed(actor, access.ControllerManageTokens, access.ControllerResource())
	if all {
		user = ""
	}
	ts, err := st.ListTokens(r.Context(), user)
	if err != nil {
		return err
	}
	p, _ := principalOf(r)
	out := make([]apiv1.OperatorToken, 0, len(ts))
	for _, t := range ts {
		// One's own by id: not those of a deleted user who had the name.
		if all || t.UserID == p.UserID {
			out = append(out, tokenView(t))
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

// revokeToken revokes one of the caller's tokens, or anyone's with
// controller:manage-tokens. Devices refuse it with their next document.
func (a *API) revokeToken(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	actor, v, st, err := a.actor(r)
	if err != nil {
		return err
	}
	mayAll := v.Allowed(actor, access.ControllerManageTokens, access.ControllerResource())
	t, err := st.GetToken(r.Context(), id)
	if err != nil && !(errors.Is(err, store.ErrNotFound) && !mayAll) {
		return err
	}
	if p, _ := principalOf(r); err != nil || (t.UserID != p.UserID && !mayAll) {
		// Do not tell others' token ids from unknown ones.
		return a.denied(r, access.ControllerManageTokens, access.ControllerResource(), v.Decide(actor, access.ControllerManageTokens, access.ControllerResource()))
	}
	before := t
	err = a.change(r, store.AuditSecurity, "token.revoke", id, "token of "+t.User, func(ctx context.Context, c *store.Change) error {
		c.DirtyAll() // every document lists the revoked tokens
		var err error
		if t, err = st.RevokeToken(ctx, id, actor); err != nil {
			return err
		}
		c.Before, c.After = tokenView(before), tokenView(t)
		return nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- audit and settings ---

func (a *API) listAudit(w http.ResponseWriter, r *http.Request) error {
	_, _, st, err := a.actor(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.AuditFilter{Kind: q.Get("kind")}
	switch f.Kind {
	case "", store.AuditChange, store.AuditSecurity, store.AuditAccess:
	default:
		return errorf(http.StatusBadRequest, "kind %q: want change, security or access", f.Kind)
	}
	if f.Since, f.Limit, err = sinceLimit(q); err != nil {
		return err
	}
	es, err := st.ListAudit(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]apiv1.AuditEntry, 0, len(es))
	for _, e := range es {
		out = append(out, apiv1.AuditEntry{ID: e.ID, At: e.At, Actor: e.Actor, ActorID: e.ActorID, Action: e.Action, Target: e.Target, Detail: e.Detail, Source: e.Source, Kind: e.Kind})
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) settings(ctx context.Context, st AccessStore) (apiv1.Settings, error) {
	m, err := st.ListSettings(ctx)
	if err != nil {
		return apiv1.Settings{}, err
	}
	s := apiv1.Settings{Banner: m[SettingBanner], Sideload: apiv1.SideloadDeny}
	if m[SettingSideload] == apiv1.SideloadAllow {
		s.Sideload = apiv1.SideloadAllow
	}
	if s.SideloadOverrides, err = a.sideloadOverrides(ctx); err != nil { // events.go
		return apiv1.Settings{}, err
	}
	return s, nil
}

func (a *API) getSettings(w http.ResponseWriter, r *http.Request) error { return a.writeSettings(w, r) }

func (a *API) setBanner(w http.ResponseWriter, r *http.Request) error {
	_, _, st, err := a.actor(r)
	if err != nil {
		return err
	}
	var req apiv1.SetBannerRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if len(req.Banner) > maxBannerBytes {
		return errorf(http.StatusBadRequest, "banner is %d bytes; the limit is %d", len(req.Banner), maxBannerBytes)
	}
	err = a.change(r, store.AuditChange, "settings.banner", SettingBanner, req.Banner, func(ctx context.Context, c *store.Change) error {
		c.DirtyAll()
		return st.SetSetting(ctx, SettingBanner, req.Banner)
	})
	if err != nil {
		return err
	}
	return a.writeSettings(w, r)
}

func (a *API) setSideload(w http.ResponseWriter, r *http.Request) error {
	_, _, st, err := a.actor(r)
	if err != nil {
		return err
	}
	var req apiv1.SetSideloadRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if req.Policy != apiv1.SideloadAllow && req.Policy != apiv1.SideloadDeny {
		return errorf(http.StatusBadRequest, "policy %q: want allow or deny", req.Policy)
	}
	err = a.change(r, store.AuditSecurity, "settings.sideload", "global", req.Policy, func(ctx context.Context, c *store.Change) error {
		c.DirtyAll()
		before, err := st.ListSettings(ctx)
		if err != nil {
			return err
		}
		c.Before, c.After = sideloadState(before[SettingSideload]), sideloadState(req.Policy)
		return st.SetSetting(ctx, SettingSideload, req.Policy)
	})
	if err != nil {
		return err
	}
	return a.writeSettings(w, r)
}

func principalName(r *http.Request) string {
	p, _ := principalOf(r)
	return p.User
}
