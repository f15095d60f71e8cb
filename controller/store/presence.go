package store

import (
	"sync/atomic"
	"time"
)

// presenceAndLabelsSchema is migration 6: when the controller last received
// an offline presence or last will of a device (its clock, like last_seen),
// the labels a device asked for at enrollment that its token did not allow,
// the label keys a token allows, and the agent run (StartedAt) of the status
// stored (see RecordStatus).
const presenceAndLabelsSchema = `
ALTER TABLE devices ADD COLUMN offline_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN requested_labels TEXT NOT NULL DEFAULT '{}';
ALTER TABLE enroll_tokens ADD COLUMN label_keys TEXT NOT NULL DEFAULT '[]';
ALTER TABLE devices ADD COLUMN status_epoch INTEGER NOT NULL DEFAULT 0;
`

// DefaultPresenceTimeout is how long a device may stay silent before it is
// shown offline: three heartbeats of an agent with the default 30 s
// heartbeat, so one or two lost reports do not make it flap.
const DefaultPresenceTimeout = 90 * time.Second

// presenceTimeout holds the timeout in nanoseconds; zero means the default.
type presenceTimeout struct{ ns atomic.Int64 }

// SetPresenceTimeout sets how long a device may be silent before it counts
// as offline (zero or less: DefaultPresenceTimeout). Choose at least twice
// the agents' heartbeat interval.
func (db *DB) SetPresenceTimeout(d time.Duration) {
	if d <= 0 {
		d = 0
	}
	db.presence.ns.Store(int64(d))
}

// PresenceTimeout returns the timeout in force.
func (db *DB) PresenceTimeout() time.Duration {
	if d := time.Duration(db.presence.ns.Load()); d > 0 {
		return d
	}
	return DefaultPresenceTimeout
}

// online decides whether d counts as online now. Only the controller's own
// clock is used: a device heard from after its last offline presence (a
// last will included) and within the timeout. A device that crashes, hangs
// or loses its network stops being heard from, so it is shown offline within
// the timeout even when its last will never arrives (a broker restart loses
// it) or arrives out of order; a last will from an older connection that
// arrives after the new connection's first messages shows the device
// offline only until its next heartbeat.
func (db *DB) online(d Device) bool {
	if d.LastSeen.IsZero() || !d.LastSeen.After(d.OfflineAt) {
		return false
	}
	return db.now().Sub(d.LastSeen) < db.PresenceTimeout()
}
