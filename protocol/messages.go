package protocol

import (
	"encoding/json"
	"fmt"
	"time"
)

// StatusReport is what an agent publishes (retained) after every apply and on
// a heartbeat. Seq grows with every report from one agent, so the controller
// can ignore a report older than one it already stored.
type StatusReport struct {
	Schema   int       `json:"schema"`
	DeviceID string    `json:"device_id"`
	Seq      uint64    `json:"seq"`
	At       time.Time `json:"at"`
	// AppliedRevision is the revision of the document in force (0: none yet).
	AppliedRevision uint64 `json:"applied_revision"`
	// PolicyExpiresAt is when the document in force expires.
	PolicyExpiresAt time.Time `json:"policy_expires_at,omitzero"`
	// LastRejected describes the most recent document the agent refused,
	// if any since it last applied one.
	LastRejected *Rejection  `json:"last_rejected,omitempty"`
	Apps         []AppStatus `json:"apps,omitempty"`
	AgentVersion string      `json:"agent_version,omitempty"`
	// StartedAt is when the agent process started.
	StartedAt time.Time `json:"started_at,omitzero"`
	// DiskFull is set while the agent's state directory is full: nothing
	// the device receives or produces can be stored until space is freed
	// (its apps keep running and the document in force stays enforced; a
	// document that arrives meanwhile is applied once space returns).
	// Absent: not full.
	DiskFull *DiskFull `json:"disk_full,omitempty"`
}

// DiskFull describes a full agent state directory (StatusReport, the
// agent's `status` and /healthz, the disk_full event).
type DiskFull struct {
	Path      string    `json:"path"`       // the state directory
	FreeBytes uint64    `json:"free_bytes"` // space left for the agent when last looked at
	Since     time.Time `json:"since,omitzero"`
}

// Rejection records why a document was refused.
type Rejection struct {
	Revision uint64    `json:"revision,omitempty" openapi:"minimum=0"` // 0 when the document could not be read
	Reason   string    `json:"reason"`                                 // a code from Reason
	Message  string    `json:"message"`
	At       time.Time `json:"at"`
}

// App states as reported in AppStatus.State.
const (
	AppPending     = "pending"
	AppDownloading = "downloading"
	AppVerifying   = "verifying"
	AppInstalling  = "installing"
	AppInstalled   = "installed" // in place, not started
	AppRunning     = "running"
	AppStopped     = "stopped"
	AppFailed      = "failed"
	AppQuarantined = "quarantined"
)

// AppStatus is the state of one app on a device.
type AppStatus struct {
	Name       string `json:"name"`
	Version    string `json:"version"`
	State      string `json:"state" openapi:"enum=pending|downloading|verifying|installing|installed|running|stopped|failed|quarantined"`
	Reason     string `json:"reason,omitempty"`
	Sideloaded bool   `json:"sideloaded,omitempty"`
}

// Event is one thing that happened on a device. ID is unique (the agent makes
// it); the controller stores each id once, so a batch delivered twice
// (QoS 1) is harmless.
type Event struct {
	ID       string            `json:"id"`
	At       time.Time         `json:"at"`
	Kind     string            `json:"kind"`     // one of the Event* kinds in events.go
	Severity string            `json:"severity"` // SeverityInfo, SeverityWarning or SeveritySecurity
	Message  string            `json:"message"`
	Details  map[string]string `json:"details,omitempty"`
}

// EventBatch carries events from the agent's outbox.
type EventBatch struct {
	Schema   int     `json:"schema"`
	DeviceID string  `json:"device_id"`
	Events   []Event `json:"events"`
	// First and Last are the outbox positions the batch covers (every
	// event the outbox held between them, in order; positions of events
	// dropped earlier are simply absent). The controller echoes them in an
	// Ack once the batch is stored. Both 0 (an agent of schema 1): no Ack
	// is sent, the agent relies on the broker.
	First uint64 `json:"first,omitempty"`
	Last  uint64 `json:"last,omitempty"`
}

// Presence states.
const (
	Online  = "online"
	Offline = "offline"
)

// Presence is published retained on connect (online) and registered as the
// last will (offline), so the broker announces a device that vanishes.
type Presence struct {
	Schema   int       `json:"schema"`
	DeviceID string    `json:"device_id"`
	State    string    `json:"state"`
	At       time.Time `json:"at"`
}

func decodeLimited(raw []byte, limit int, what string, v any) error {
	if len(raw) > limit {
		return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, what, len(raw), limit)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformed, what, err)
	}
	return nil
}

// DecodeStatus parses a StatusReport published on deviceID's status topic.
func DecodeStatus(raw []byte, deviceID string) (*StatusReport, error) {
	var s StatusReport
	if err := decodeLimited(raw, MaxStatusBytes, "status report", &s); err != nil {
		return nil, err
	}
	if s.DeviceID != deviceID {
		return nil, fmt.Errorf("%w: status report names device %q on the topic of %q", ErrWrongDevice, s.DeviceID, deviceID)
	}
	if len(s.Apps) > MaxAppsPerDevice {
		return nil, fmt.Errorf("%w: status report lists %d apps, limit %d", ErrMalformed, len(s.Apps), MaxAppsPerDevice)
	}
	return &s, nil
}

// DecodeEvents parses an EventBatch published on deviceID's events topic.
func DecodeEvents(raw []byte, deviceID string) (*EventBatch, error) {
	var b EventBatch
	if err := decodeLimited(raw, MaxEventsBytes, "event batch", &b); err != nil {
		return nil, err
	}
	if b.DeviceID != deviceID {
		return nil, fmt.Errorf("%w: event batch names device %q on the topic of %q", ErrWrongDevice, b.DeviceID, deviceID)
	}
	if len(b.Events) > MaxEventsPerBatch {
		return nil, fmt.Errorf("%w: %d events in one batch, limit %d", ErrMalformed, len(b.Events), MaxEventsPerBatch)
	}
	if b.First > b.Last || b.Last > MaxSeq || (b.First == 0) != (b.Last == 0) {
		return nil, fmt.Errorf("%w: event batch range %d-%d: want 1 ≤ first ≤ last ≤ %d, or neither", ErrMalformed, b.First, b.Last, uint64(MaxSeq))
	}
	for i, e := range b.Events {
		if e.ID == "" || len(e.ID) > 64 {
			return nil, fmt.Errorf("%w: event %d has an empty or over-long id", ErrMalformed, i)
		}
	}
	return &b, nil
}

// DecodePresence parses a Presence published on deviceID's presence topic.
func DecodePresence(raw []byte, deviceID string) (*Presence, error) {
	var p Presence
	if err := decodeLimited(raw, MaxPresenceBytes, "presence", &p); err != nil {
		return nil, err
	}
	if p.DeviceID != deviceID {
		return nil, fmt.Errorf("%w: presence names device %q on the topic of %q", ErrWrongDevice, p.DeviceID, deviceID)
	}
	if p.State != Online && p.State != Offline {
		return nil, fmt.Errorf("%w: presence state %q, want online or offline", ErrMalformed, p.State)
	}
	return &p, nil
}
