// Package localwire holds the JSON messages of the agent's local API (see
// agent/localapi): what the agent serves on its unix socket and what
// `edgewarden local` decodes. It imports only protocol packages, so the CLI
// can use it without linking the agent.
//
// Field names are a stable contract (snake_case). Absent or empty fields
// mean what each comment says.
package localwire

import (
	"time"

	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/access"
)

// Paths of the local API. Every path but PathBanner needs
// "Authorization: Bearer <operator token>".
const (
	PathBanner    = "/v1/banner"       // GET
	PathStatus    = "/v1/status"       // GET; device:view
	PathApps      = "/v1/apps"         // GET; device:view
	PathInstall   = "/v1/apps/install" // POST, body = package; device:sideload and the ban lifted
	PathAuthorize = "/v1/authorize"    // POST {action} or GET ?action=A; the action asked
	// App operations: PathApps + "/" + name + "/start" (POST), "/stop"
	// (POST): device:app-operate; "/logs" (GET, ?lines=N): device:logs.
)

// DefaultSocket is where the agent listens unless configured otherwise.
const DefaultSocket = "/run/edgewarden/agent.sock"

// HeaderUser is set on allowed authorize responses to the user the token
// names, for a reverse proxy to pass on (nginx: auth_request_set).
const HeaderUser = "X-Edgewarden-User"

// Error is the body of every failed request: what failed, why, and what to
// do. Denials of an authorize request carry the Decision too.
type Error struct {
	Error string `json:"error"`
	// Decision is set when the grants refused the action.
	Decision *access.Decision `json:"decision,omitempty"`
}

// Banner is the system-use notification. Empty Banner: none is configured
// (or no policy has been received yet).
type Banner struct {
	Banner string `json:"banner"`
}

// Status is the device as the local API shows it.
type Status struct {
	DeviceID     string `json:"device_id"`
	AgentVersion string `json:"agent_version"`
	// AppliedRevision is 0 before any document was applied (then every
	// request but the banner is refused, so a Status is never sent).
	AppliedRevision uint64    `json:"applied_revision"`
	PolicyIssuedAt  time.Time `json:"policy_issued_at"`
	PolicyExpiresAt time.Time `json:"policy_expires_at"`
	// Groups are every device group the device is in.
	Groups []string `json:"groups"`
	// SideloadAllowed is false while the sideload ban is on.
	SideloadAllowed bool `json:"sideload_allowed"`
	// User is the user the token names; Permissions the device actions the
	// current grants give them here, in catalogue order.
	User        string          `json:"user"`
	Permissions []access.Action `json:"permissions"`
}

// Apps lists the apps on the device.
type Apps struct {
	Apps []protocol.AppStatus `json:"apps"`
}

// AppResult is the answer to start, stop and install.
type AppResult struct {
	App protocol.AppStatus `json:"app"`
}

// Logs are the last lines of an app's log, oldest first.
type Logs struct {
	App   string   `json:"app"`
	Lines []string `json:"lines"`
}

// AuthorizeRequest asks whether the token's user may perform Action on this
// device.
type AuthorizeRequest struct {
	Action string `json:"action"`
}

// Authorization is the answer to an authorize request whose token was
// valid: status 200 when allowed; 403 when the grants deny it, then with
// Error set too. (A bad token or no policy is a plain Error, 401 or 403.)
type Authorization struct {
	// Error is the denial in one line (empty when allowed).
	Error    string          `json:"error,omitempty"`
	Allowed  bool            `json:"allowed"`
	User     string          `json:"user"`
	Action   access.Action   `json:"action"`
	Device   string          `json:"device_id"`
	Decision access.Decision `json:"decision"`
	// Explanation is Decision in one line.
	Explanation string `json:"explanation"`
}
