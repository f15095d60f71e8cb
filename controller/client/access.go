package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/protocol/access"
)

// InviteUser invites a user; the answer holds the activation token.
func (c *Client) InviteUser(ctx context.Context, req apiv1.InviteRequest) (*apiv1.Invitation, error) {
	return call[apiv1.Invitation](ctx, c, http.MethodPost, "/users", req)
}

// ActivateUser activates an invited user; it needs no session.
func (c *Client) ActivateUser(ctx context.Context, token, password string) (*apiv1.User, error) {
	return call[apiv1.User](ctx, c, http.MethodPost, "/users/activate", apiv1.ActivateRequest{Token: token, Password: password})
}

// ListUsers lists users.
func (c *Client) ListUsers(ctx context.Context) ([]apiv1.User, error) {
	return list[apiv1.User](ctx, c, http.MethodGet, "/users", nil)
}

// LookupUser asks whether an active user of that name exists (to share a
// group with them); 404 when none does. The answer holds the name only.
func (c *Client) LookupUser(ctx context.Context, name string) (*apiv1.UserName, error) {
	return call[apiv1.UserName](ctx, c, http.MethodGet, "/users/lookup?"+url.Values{"name": {name}}.Encode(), nil)
}

// DisableUser disables a user.
func (c *Client) DisableUser(ctx context.Context, name string) (*apiv1.User, error) {
	return call[apiv1.User](ctx, c, http.MethodPost, "/users/"+esc(name)+"/disable", nil)
}

// DeleteUser deletes a user with its grants and team memberships.
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/users/"+esc(name), nil, nil)
}

// EnableUser re-activates a disabled user.
func (c *Client) EnableUser(ctx context.Context, name string) (*apiv1.User, error) {
	return call[apiv1.User](ctx, c, http.MethodPost, "/users/"+esc(name)+"/enable", nil)
}

// ResetPassword resets a user's password; the answer holds the activation
// token with which the user chooses a new one (ActivateUser).
func (c *Client) ResetPassword(ctx context.Context, name string, ttl time.Duration) (*apiv1.Invitation, error) {
	return call[apiv1.Invitation](ctx, c, http.MethodPost, "/users/"+esc(name)+"/reset-password", apiv1.ResetPasswordRequest{TTLSeconds: int64(ttl / time.Second)})
}

// ChangePassword changes the session user's own password. Every session of
// the user ends; the answer is the caller's new session.
func (c *Client) ChangePassword(ctx context.Context, oldPassword, newPassword string) (*apiv1.LoginResponse, error) {
	return call[apiv1.LoginResponse](ctx, c, http.MethodPost, "/password", apiv1.PasswordChangeRequest{OldPassword: oldPassword, NewPassword: newPassword})
}

// Logout ends the session on the controller; all ends every session of
// its user.
func (c *Client) Logout(ctx context.Context, all bool) error {
	path := "/logout"
	if all {
		path += "?all=true"
	}
	return c.do(ctx, http.MethodPost, path, nil, nil)
}

// WhoAmI returns the session's user: name, id, teams and grants.
func (c *Client) WhoAmI(ctx context.Context) (*apiv1.WhoAmI, error) {
	return call[apiv1.WhoAmI](ctx, c, http.MethodGet, "/whoami", nil)
}

// CreateTeam makes a team.
func (c *Client) CreateTeam(ctx context.Context, name string) (*apiv1.Team, error) {
	return call[apiv1.Team](ctx, c, http.MethodPost, "/teams", apiv1.CreateTeamRequest{Name: name})
}

// ListTeams lists teams.
func (c *Client) ListTeams(ctx context.Context) ([]apiv1.Team, error) {
	return list[apiv1.Team](ctx, c, http.MethodGet, "/teams", nil)
}

// DeleteTeam deletes a team.
func (c *Client) DeleteTeam(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/teams/"+esc(name), nil, nil)
}

// AddTeamMembers adds users to a team.
func (c *Client) AddTeamMembers(ctx context.Context, team string, users []string) (*apiv1.Team, error) {
	return call[apiv1.Team](ctx, c, http.MethodPost, "/teams/"+esc(team)+"/members", apiv1.TeamMembersRequest{Users: users})
}

// RemoveTeamMembers removes users from a team.
func (c *Client) RemoveTeamMembers(ctx context.Context, team string, users []string) (*apiv1.Team, error) {
	return call[apiv1.Team](ctx, c, http.MethodPost, "/teams/"+esc(team)+"/members/remove", apiv1.TeamMembersRequest{Users: users})
}

// ListActions returns the action catalogue.
func (c *Client) ListActions(ctx context.Context) ([]access.ActionInfo, error) {
	return list[access.ActionInfo](ctx, c, http.MethodGet, "/actions", nil)
}

// ListRoles lists the built-in and custom roles.
func (c *Client) ListRoles(ctx context.Context) ([]apiv1.Role, error) {
	return list[apiv1.Role](ctx, c, http.MethodGet, "/roles", nil)
}

// GetRole returns one role.
func (c *Client) GetRole(ctx context.Context, name string) (*apiv1.Role, error) {
	return call[apiv1.Role](ctx, c, http.MethodGet, "/roles/"+esc(name), nil)
}

// CreateRole makes a custom role.
func (c *Client) CreateRole(ctx context.Context, req apiv1.RoleRequest) (*apiv1.Role, error) {
	return call[apiv1.Role](ctx, c, http.MethodPost, "/roles", req)
}

// UpdateRole replaces a custom role's actions, description and flag.
func (c *Client) UpdateRole(ctx context.Context, name string, req apiv1.RoleRequest) (*apiv1.Role, error) {
	return call[apiv1.Role](ctx, c, http.MethodPut, "/roles/"+esc(name), req)
}

// DeleteRole deletes a custom role no grant uses.
func (c *Client) DeleteRole(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/roles/"+esc(name), nil, nil)
}

// CreateGrant gives a role to a user or team on a scope.
func (c *Client) CreateGrant(ctx context.Context, req apiv1.CreateGrantRequest) (*apiv1.Grant, error) {
	return call[apiv1.Grant](ctx, c, http.MethodPost, "/grants", req)
}

// ListGrants lists the grants the caller may see.
func (c *Client) ListGrants(ctx context.Context) ([]apiv1.Grant, error) {
	return list[apiv1.Grant](ctx, c, http.MethodGet, "/grants", nil)
}

// DeleteGrant deletes a grant.
func (c *Client) DeleteGrant(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/grants/"+esc(id), nil, nil)
}

// Share shares a template role on a group.
func (c *Client) Share(ctx context.Context, req apiv1.ShareRequest) (*apiv1.Grant, error) {
	return call[apiv1.Grant](ctx, c, http.MethodPost, "/share", req)
}

// CheckAccess asks whether a user may do an action on a resource.
func (c *Client) CheckAccess(ctx context.Context, req apiv1.AccessCheckRequest) (*apiv1.AccessDecision, error) {
	return call[apiv1.AccessDecision](ctx, c, http.MethodPost, "/access/check", req)
}

// IssueToken issues an operator token to the caller; ttl 0 means the
// controller's default.
func (c *Client) IssueToken(ctx context.Context, ttl time.Duration) (*apiv1.OperatorToken, error) {
	return call[apiv1.OperatorToken](ctx, c, http.MethodPost, "/tokens", apiv1.IssueTokenRequest{TTLSeconds: int64(ttl / time.Second)})
}

// ListTokens lists operator tokens (the caller's, or everyone's with
// controller:manage-tokens).
func (c *Client) ListTokens(ctx context.Context) ([]apiv1.OperatorToken, error) {
	return list[apiv1.OperatorToken](ctx, c, http.MethodGet, "/tokens", nil)
}

// RevokeToken revokes an operator token.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/tokens/"+esc(id), nil, nil)
}

// AuditFilter selects audit entries; zero fields do not filter.
type AuditFilter struct {
	Since time.Time
	Kind  string
	Limit int
}

// ListAudit returns audit entries, newest first.
func (c *Client) ListAudit(ctx context.Context, f AuditFilter) ([]apiv1.AuditEntry, error) {
	q := url.Values{}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	if f.Kind != "" {
		q.Set("kind", f.Kind)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	path := "/audit"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return list[apiv1.AuditEntry](ctx, c, http.MethodGet, path, nil)
}

// Settings returns the global settings.
func (c *Client) Settings(ctx context.Context) (*apiv1.Settings, error) {
	return call[apiv1.Settings](ctx, c, http.MethodGet, "/settings", nil)
}

// SetBanner sets the system-use banner ("" removes it).
func (c *Client) SetBanner(ctx context.Context, banner string) (*apiv1.Settings, error) {
	return call[apiv1.Settings](ctx, c, http.MethodPut, "/settings/banner", apiv1.SetBannerRequest{Banner: banner})
}

// SetSideload sets the global sideload policy ("allow" or "deny").
func (c *Client) SetSideload(ctx context.Context, policy string) (*apiv1.Settings, error) {
	return call[apiv1.Settings](ctx, c, http.MethodPut, "/settings/sideload", apiv1.SetSideloadRequest{Policy: policy})
}
