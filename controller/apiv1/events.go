package apiv1

import "time"

// SideloadOverride is a device group's override of the global sideload
// policy, set with `edgewarden settings sideload allow|deny --group G`
// (needs device:sideload on the group).
type SideloadOverride struct {
	Group  string    `json:"group"`
	Policy string    `json:"policy"` // "allow" or "deny"
	SetBy  string    `json:"set_by"`
	SetAt  time.Time `json:"set_at"`
}

// Event severities.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeveritySecurity = "security"
)

// Event is an event a device reported (protocol.Event), as the controller
// stored it. ID is unique per device.
type Event struct {
	DeviceID   string            `json:"device_id"`
	ID         string            `json:"id"`
	At         time.Time         `json:"at"`          // when it happened, by the device's clock
	ReceivedAt time.Time         `json:"received_at"` // when the controller stored it
	Kind       string            `json:"kind"`        // e.g. "sideload_blocked", "tamper_detected", "quarantined"
	Severity   string            `json:"severity"`    // "info", "warning" or "security"
	Message    string            `json:"message"`
	Details    map[string]string `json:"details,omitempty"`
}
