package apiv1

import (
	"time"

	"github.com/edgewarden/edgewarden/protocol/access"
)

// Access endpoints (users, teams, roles, grants, sharing, decisions,
// operator tokens, audit, settings):
//
//	POST   /api/v1/users                          InviteRequest → Invitation (201; Token only here)
//	POST   /api/v1/users/activate                 ActivateRequest → User (no auth; the activation token authenticates)
//	GET    /api/v1/users                          → []User
//	POST   /api/v1/users/{name}/disable           → User
//	DELETE /api/v1/users/{name}
//	POST   /api/v1/teams                          CreateTeamRequest → Team (201)
//	GET    /api/v1/teams                          → []Team
//	DELETE /api/v1/teams/{name}
//	POST   /api/v1/teams/{name}/members           TeamMembersRequest (add) → Team
//	POST   /api/v1/teams/{name}/members/remove    TeamMembersRequest (remove) → Team
//	GET    /api/v1/actions                        → []access.ActionInfo (the catalogue)
//	GET    /api/v1/roles                          → []Role
//	GET    /api/v1/roles/{name}                   → Role
//	POST   /api/v1/roles                          RoleRequest → Role (201)
//	PUT    /api/v1/roles/{name}                   RoleRequest → Role
//	DELETE /api/v1/roles/{name}
//	POST   /api/v1/grants                         CreateGrantRequest → Grant (201)
//	GET    /api/v1/grants                         → []Grant
//	DELETE /api/v1/grants/{id}
//	POST   /api/v1/share                          ShareRequest → Grant (201)
//	POST   /api/v1/access/check                   AccessCheckRequest → AccessDecision
//	POST   /api/v1/tokens                         IssueTokenRequest → OperatorToken (201; Token only here)
//	GET    /api/v1/tokens                         → []OperatorToken
//	DELETE /api/v1/tokens/{id}                    → OperatorToken (revoked)
//	GET    /api/v1/audit?since=RFC3339&kind=K&limit=N → []AuditEntry (newest first)
//	GET    /api/v1/settings                       → Settings
//	PUT    /api/v1/settings/banner                SetBannerRequest → Settings
//	PUT    /api/v1/settings/sideload              SetSideloadRequest → Settings
//	PUT    /api/v1/settings/sideload/groups/{name} SetSideloadRequest → Settings (a group override)
//	DELETE /api/v1/settings/sideload/groups/{name} → Settings (the group follows the global policy again)
//	GET    /api/v1/events?kind=K&severity=S&device=D&since=RFC3339&limit=N → []Event (newest first)

// User states.
const (
	UserActive   = "active"
	UserInvited  = "invited" // waiting for `users activate`
	UserDisabled = "disabled"
)

// User is a controller user.
type User struct {
	Name      string    `json:"name"`
	ID        string    `json:"id,omitempty"` // Immutable: a name can be reused, an id never.
	State     string    `json:"state" openapi:"enum=active|invited|disabled"`
	Teams     []string  `json:"teams"`
	CreatedAt time.Time `json:"created_at"`
}

// UserName is the answer of a user lookup: an active user of that name
// exists. It holds the name only: nothing of the user's state, teams or
// grants.
type UserName struct {
	Name string `json:"name"` // The user's name, as asked.
}

// InviteRequest invites a user. TTLSeconds is how long the activation token
// is valid; 0 means 7 days.
type InviteRequest struct {
	Name       string `json:"name"`
	TTLSeconds int64  `json:"ttl_seconds,omitempty" openapi:"minimum=0"` // Lifetime of the activation token; 0 means 7 days; at most 30 days.
}

// Invitation is the answer to an invitation: the activation token to hand
// to the user (shown once; the controller keeps only its hash).
type Invitation struct {
	User      string    `json:"user"`
	Token     string    `json:"token"` // The activation token (shown once).
	ExpiresAt time.Time `json:"expires_at"`
}

// ActivateRequest activates an invited user with its token and a password.
type ActivateRequest struct {
	Token    string `json:"token" openapi:"maxLength=256"`
	Password string `json:"password" openapi:"format=password"`
}

// Team is a named set of users.
type Team struct {
	Name      string    `json:"name"`
	Members   []string  `json:"members"`
	CreatedAt time.Time `json:"created_at"`
}

// CreateTeamRequest makes a team.
type CreateTeamRequest struct {
	Name string `json:"name"`
}

// TeamMembersRequest names users to add to or remove from a team.
type TeamMembersRequest struct {
	Users []string `json:"users" openapi:"minItems=1"`
}

// Role is a named set of actions. Builtin roles cannot be changed; Shareable
// roles are templates that holders of device-group:share may share.
type Role struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Actions     []access.Action `json:"actions"`
	Shareable   bool            `json:"shareable"` // A template that holders of device-group:share may share.
	Builtin     bool            `json:"builtin"`   // Built-in roles cannot be changed.
}

// RoleRequest creates a role (Name required) or replaces one (the name is
// in the path; Name, if set, must match).
type RoleRequest struct {
	Name        string   `json:"name,omitempty"` // Required to create; to replace
	Description string   `json:"description,omitempty"`
	Actions     []string `json:"actions"`
	Shareable   bool     `json:"shareable,omitempty"`
}

// Grant gives a role to a user or team on a scope.
type Grant struct {
	ID        string         `json:"id"`
	Subject   access.Subject `json:"subject"`
	Role      string         `json:"role"`
	Scope     access.Scope   `json:"scope"`
	CreatedBy string         `json:"created_by"`
	CreatedAt time.Time      `json:"created_at"`
}

// CreateGrantRequest creates a grant: exactly one of User and Team; at most
// one of Group, Device and App (none: global).
type CreateGrantRequest struct {
	Role   string `json:"role"`
	User   string `json:"user,omitempty"`
	Team   string `json:"team,omitempty"`
	Group  string `json:"group,omitempty"`
	Device string `json:"device,omitempty"`
	App    string `json:"app,omitempty"`
}

// ShareRequest shares a template role on a group with a user or a team
// (exactly one).
type ShareRequest struct {
	Group string `json:"group"`
	Role  string `json:"role"`
	User  string `json:"user,omitempty"`
	Team  string `json:"team,omitempty"`
}

// AccessCheckRequest asks whether User may do Action on exactly one of
// Device, Group or App (none: on the controller, i.e. everywhere). User
// empty means the caller.
type AccessCheckRequest struct {
	User   string `json:"user,omitempty"` // Empty means the caller.
	Action string `json:"action"`
	Device string `json:"device,omitempty"`
	Group  string `json:"group,omitempty"`
	App    string `json:"app,omitempty"`
}

// AccessDecision answers an AccessCheckRequest. Chain explains an allowed
// decision (grant → subject → role → scope → group path); Reason a denied
// one; Explanation is the whole decision in one line.
type AccessDecision struct {
	User        string        `json:"user"`
	Action      string        `json:"action"`
	Resource    string        `json:"resource"`
	Allowed     bool          `json:"allowed"`
	Chain       []access.Step `json:"chain,omitempty"`  // Explains an allowed decision (grant, subject, role, scope, group path).
	Reason      string        `json:"reason,omitempty"` // Explains a denied decision.
	Explanation string        `json:"explanation"`      // The whole decision in one line.
}

// IssueTokenRequest issues an operator token to the caller. TTLSeconds 0
// means 8 hours; at most 7 days.
type IssueTokenRequest struct {
	TTLSeconds int64 `json:"ttl_seconds,omitempty" openapi:"minimum=0"` // 0 means 8 hours; at most 7 days.
}

// OperatorToken describes an operator token for local access on devices.
// Token (the JWT) is returned only when it is issued.
type OperatorToken struct {
	ID        string     `json:"id"`
	User      string     `json:"user"`
	Token     string     `json:"token,omitempty"` // The JWT; only in the answer to its issue.
	IssuedAt  time.Time  `json:"issued_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	Revoked   bool       `json:"revoked"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	RevokedBy string     `json:"revoked_by,omitempty"`
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	ID    int64     `json:"id"`
	At    time.Time `json:"at"`
	Actor string    `json:"actor"`
	// ActorID is the acting user's immutable id, when a user acted: a name
	// can be reused, an id never.
	ActorID string `json:"actor_id,omitempty"`
	Action  string `json:"action"`
	Target  string `json:"target,omitempty"`
	Detail  string `json:"detail,omitempty"`
	Source  string `json:"source,omitempty"`
	Kind    string `json:"kind" openapi:"enum=change|security|access"`
}

// Sideload policies.
const (
	SideloadDeny  = "deny"
	SideloadAllow = "allow"
)

// Settings are the controller's global settings.
type Settings struct {
	Banner   string `json:"banner"`
	Sideload string `json:"sideload" openapi:"enum=deny|allow"` // "deny" (default) or "allow"
	// SideloadOverrides are the device groups that override the global
	// sideload policy, by group name (events.go). A device follows the
	// global policy unless one of its groups has an override; when its
	// groups disagree, deny wins.
	SideloadOverrides []SideloadOverride `json:"sideload_overrides"`
}

// SetBannerRequest sets the system-use banner; empty removes it.
type SetBannerRequest struct {
	Banner string `json:"banner" openapi:"maxLength=4096"` // Empty removes the banner.
}

// SetSideloadRequest sets the global sideload policy: "allow" or "deny".
type SetSideloadRequest struct {
	Policy string `json:"policy" openapi:"enum=allow|deny"`
}

// ResetPasswordRequest resets a user's password. TTLSeconds is how long
// the activation token is valid; 0 means 7 days.
type ResetPasswordRequest struct {
	TTLSeconds int64 `json:"ttl_seconds,omitempty" openapi:"minimum=0"` // Lifetime of the activation token; 0 means 7 days; at most 30 days.
}

// PasswordChangeRequest changes the caller's own password.
type PasswordChangeRequest struct {
	OldPassword string `json:"old_password" openapi:"format=password"`
	NewPassword string `json:"new_password" openapi:"format=password"` // At least 12 characters, not a common password.
}

// WhoAmI is the session's user: its name, immutable id, teams and the
// grants to it or its teams.
type WhoAmI struct {
	Name             string    `json:"name"`
	ID               string    `json:"id"`     // Immutable: a name can be reused, an id never.
	Teams            []string  `json:"teams"`  // The teams the user belongs to.
	Grants           []Grant   `json:"grants"` // The grants to the user or its teams.
	SessionExpiresAt time.Time `json:"session_expires_at"`
}
