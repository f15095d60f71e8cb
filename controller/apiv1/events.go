package apiv1

import (
	"time"

	"github.com/edgewarden/edgewarden/protocol"
)

// SideloadOverride is a device group's override of the global sideload
// policy, set with `edgewarden settings sideload allow|deny --group G`
// (needs device:sideload on the group).
type SideloadOverride struct {
	Group  string    `json:"group"`
	Policy string    `json:"policy" openapi:"enum=allow|deny"` // "allow" or "deny"
	SetBy  string    `json:"set_by"`
	SetAt  time.Time `json:"set_at"`
}

// Event severities (protocol's).
const (
	SeverityInfo     = protocol.SeverityInfo
	SeverityWarning  = protocol.SeverityWarning
	SeveritySecurity = protocol.SeveritySecurity
)

// Event is an event a device reported (protocol.Event), as the controller
// stored it. ID is unique per device.
type Event struct {
	DeviceID   string            `json:"device_id"`
	ID         string            `json:"id"`                                            // Unique per device.
	At         time.Time         `json:"at"`                                            // when it happened, by the device's clock
	ReceivedAt time.Time         `json:"received_at"`                                   // when the controller stored it
	Kind       string            `json:"kind"`                                          // e.g. "sideload_blocked", "tamper_detected", "quarantined"
	Severity   string            `json:"severity" openapi:"enum=info|warning|security"` // "info", "warning" or "security"
	Message    string            `json:"message"`
	Details    map[string]string `json:"details,omitempty"`
}

// Origins of an AuditRecord.
const (
	OriginAudit  = "audit"  // an entry of the controller's audit log
	OriginDevice = "device" // an event a device reported
)

// AuditRecord is one line of the merged audit view: an audit log entry or
// a device event, in one shape. `edgewarden audit ls` prints a list of
// them; `edgewarden audit export` and the controller's --siem-log write one
// per line (JSON lines). For a device event, Kind is its severity (so
// "security" selects security events of both origins), Actor is
// "device:<id>", Action the event's kind (e.g. "tamper_detected"), Target
// the app it concerns (or the device) and Detail its message.
type AuditRecord struct {
	Origin string    `json:"origin" openapi:"enum=audit|device"` // OriginAudit or OriginDevice
	ID     int64     `json:"id,omitempty"`                       // the audit entry's id
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	Actor  string    `json:"actor"`
	// ActorID is the acting user's immutable id, for audit entries made by
	// a user.
	ActorID string `json:"actor_id,omitempty"`
	Action  string `json:"action"`
	Target  string `json:"target,omitempty"`
	Detail  string `json:"detail,omitempty"`
	Source  string `json:"source,omitempty"` // the client's address, for audit entries

	DeviceID   string            `json:"device_id,omitempty"`
	EventID    string            `json:"event_id,omitempty"`
	ReceivedAt time.Time         `json:"received_at,omitzero"`
	Details    map[string]string `json:"details,omitempty"`
}

// RecordOfAudit returns e as an AuditRecord.
func RecordOfAudit(e AuditEntry) AuditRecord {
	return AuditRecord{Origin: OriginAudit, ID: e.ID, At: e.At, Kind: e.Kind, Actor: e.Actor, ActorID: e.ActorID, Action: e.Action,
		Target: e.Target, Detail: e.Detail, Source: e.Source}
}

// RecordOfEvent returns a device event as an AuditRecord.
func RecordOfEvent(e Event) AuditRecord {
	target := e.Details["app"]
	if target == "" {
		target = "device:" + e.DeviceID
	}
	return AuditRecord{Origin: OriginDevice, At: e.At, Kind: e.Severity, Actor: "device:" + e.DeviceID, Action: e.Kind,
		Target: target, Detail: e.Message, DeviceID: e.DeviceID, EventID: e.ID, ReceivedAt: e.ReceivedAt, Details: e.Details}
}
