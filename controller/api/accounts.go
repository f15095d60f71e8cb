package api

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/auth"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol/access"
)

// Accounts: what users do with their own account (whoami, passwd, logout)
// and what an admin does to another's (enable, reset-password).

// activationToken returns a new activation token: invitations and password
// resets hand out the same kind, redeemed by `edgewarden users activate`.
func activationToken() string { return "ewa_" + rand.Text() }

// enableUser re-activates a disabled user. Enabling takes nothing away, so
// the no-escalation rule of disable does not apply; the sessions the user
// had when disabled stay ended.
func (a *API) enableUser(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	_, v, st, err := a.actor(r)
	if err != nil {
		return err
	}
	// The user's grants work again on every device where they apply.
	return a.setUserState(w, r, v, st, "user.enable", name, store.UserActive, func(before store.User) error {
		switch before.State {
		case store.UserActive:
			return errorf(http.StatusConflict, "user %s is already active; nothing changed", name)
		case store.UserInvited:
			return errorf(http.StatusConflict, "user %s is waiting for activation, not disabled: it becomes active by redeeming its activation token (`edgewarden users activate`); `edgewarden users reset-password %s` gives a new one", name, name)
		}
		return nil
	})
}

// resetPassword gives a user a new activation token, as an invitation
// does: its password stops working and its sessions end at once. The
// user is "invited" until it redeems the token, so its grants give
// nothing meanwhile, and the change is held to the no-escalation rule (an
// admin who could read the token must not take over a user with more
// rights).
func (a *API) resetPassword(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	actor, _, st, err := a.actor(r)
	if err != nil {
		return err
	}
	var req apiv1.ResetPasswordRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if name == actor {
		return errorf(http.StatusBadRequest, "you cannot reset your own password; change it with `edgewarden passwd`")
	}
	ttl, err := ttlOf(req.TTLSeconds, DefaultInviteTTL, MaxInviteTTL, "activation token")
	if err != nil {
		return err
	}
	token := activationToken()
	now := a.now().UTC()
	err = a.change(r, store.AuditSecurity, "user.reset-password", name, "password cleared, sessions ended; activation token expires "+now.Add(ttl).Format(time.RFC3339), func(ctx context.Context, c *store.Change) error {
		c.DirtyAll() // the user is inactive until it chooses a new password
		before, err := a.opts.Store.GetUser(ctx, name)
		if err != nil {
			return err
		}
		u, err := st.ResetPassword(ctx, store.Invitation{User: name, TokenHash: sha256Hex(token), ExpiresAt: now.Add(ttl), CreatedBy: actor, CreatedAt: now})
		if err != nil {
			return err
		}
		c.Before, c.After = userState(before), userState(u)
		return nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiv1.Invitation{User: name, Token: token, ExpiresAt: now.Add(ttl)})
}

// changePassword is passwd: the caller's own password, checked with the
// old one. Every session of the user ends (a new generation), this one
// included; the answer carries a new session for the caller, so the
// terminal that changed the password stays logged in and every other
// session, and any copy of this session's token, is refused. A wrong old
// password counts as a failed login for the login throttle, so a stolen
// session cannot be used to guess the password faster than a login could.
func (a *API) changePassword(w http.ResponseWriter, r *http.Request) error {
	p, st, err := a.self(r)
	if err != nil {
		return err
	}
	var req apiv1.PasswordChangeRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if req.OldPassword == "" || req.NewPassword == "" {
		return errorf(http.StatusBadRequest, "old_password and new_password are required")
	}
	source := sourceAddr(r)
	if until := a.logins.wait(source, p.User, a.now()); !until.IsZero() {
		a.auditAs(r, p.User, store.AuditSecurity, "user.password-change-failed", p.User, "throttled after repeated failures from "+source)
		w.Header().Set("Retry-After", strconv.Itoa(int(until.Sub(a.now()).Seconds())+1))
		return errorf(http.StatusTooManyRequests, "too many wrong passwords from this address or for %q; try again after %s", p.User, until.UTC().Format(time.RFC3339))
	}
	u, err := a.opts.Store.GetUserByID(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	if err := auth.CheckPassword(u.PasswordHash, req.OldPassword); err != nil {
		if !errors.Is(err, auth.ErrWrongPassword) {
			return err
		}
		a.logins.failed(source, p.User, a.now())
		a.auditAs(r, p.User, store.AuditSecurity, "user.password-change-failed", p.User, "wrong old password")
		return errorf(http.StatusForbidden, "the old password is wrong; nothing changed")
	}
	if req.NewPassword == req.OldPassword {
		return errorf(http.StatusBadRequest, "the new password is the old one; choose another")
	}
	hash, err := auth.HashPassword(req.NewPassword)
	if err != nil {
		return errorf(http.StatusBadRequest, "%s", err.Error())
	}
	err = a.change(r, store.AuditSecurity, "user.password-change", p.User, "every session of the user ended; the caller's renewed", func(ctx context.Context, c *store.Change) error {
		if u, err = st.SetUserPassword(ctx, p.User, hash); err != nil {
			return err
		}
		if u.ID != p.UserID { // the name went to another user meanwhile
			return errorf(http.StatusUnauthorized, "the user of this session no longer exists; run `edgewarden login` again")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if a.opts.Sessions == nil {
		return errors.New("api: no session issuer configured")
	}
	token, exp, err := a.opts.Sessions.Issue(u.ID, u.SessionGen)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiv1.LoginResponse{Token: token, ExpiresAt: exp})
}

// logout ends the caller's session on the controller: the token is
// refused from now on, whoever holds a copy. With all=true it ends every
// session of the caller's user.
func (a *API) logout(w http.ResponseWriter, r *http.Request) error {
	p, st, err := a.self(r)
	if err != nil {
		return err
	}
	all := false
	if s := r.URL.Query().Get("all"); s != "" {
		if all, err = strconv.ParseBool(s); err != nil {
			return errorf(http.StatusBadRequest, "all=%q: want true or false", s)
		}
	}
	detail := "this session ended"
	if all {
		detail = "every session of the user ended"
	}
	err = a.change(r, store.AuditAccess, "user.logout", p.User, detail, func(ctx context.Context, c *store.Change) error {
		if !all {
			return st.EndSession(ctx, p.Session, p.UserID, p.Expires)
		}
		u, err := st.EndSessions(ctx, p.User)
		if err == nil && u.ID != p.UserID {
			return errorf(http.StatusUnauthorized, "the user of this session no longer exists; run `edgewarden login` again")
		}
		return err
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// whoami answers who the session's user is: name, immutable id, teams,
// and the grants to it or its teams.
func (a *API) whoami(w http.ResponseWriter, r *http.Request) error {
	actor, v, st, err := a.actor(r)
	if err != nil {
		return err
	}
	p, _ := principalOf(r)
	gs, err := st.ListGrants(r.Context())
	if err != nil {
		return err
	}
	out := apiv1.WhoAmI{Name: actor, ID: p.UserID, Teams: nonNil(v.TeamsOf(actor)), Grants: []apiv1.Grant{}, SessionExpiresAt: p.Expires}
	for _, g := range gs {
		if concerns(v, actor, g.Subject) && (g.Subject.Kind != access.SubjectUser || g.SubjectID == p.UserID) {
			out.Grants = append(out.Grants, grantView(g))
		}
	}
	return writeJSON(w, http.StatusOK, out)
}
