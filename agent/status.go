package agent

import (
	"context"
	"time"

	"github.com/edgewarden/edgewarden/agent/apply"
	"github.com/edgewarden/edgewarden/agent/identity"
	"github.com/edgewarden/edgewarden/agent/state"
	"github.com/edgewarden/edgewarden/protocol"
)

// LocalStatus is the local view printed by `edgewarden-agent status`. The
// JSON field names are a stable contract.
type LocalStatus struct {
	DeviceID        string `json:"device_id"`
	MQTTURL         string `json:"mqtt_url"`
	ControllerURL   string `json:"controller_url"`
	AppliedRevision uint64 `json:"applied_revision"`
	// PolicyExpiresAt is null when no document was applied.
	PolicyExpiresAt *time.Time `json:"policy_expires_at"`
	PolicyExpired   bool       `json:"policy_expired"`
	// AppliedAt is when the revision in force was applied.
	AppliedAt    time.Time           `json:"applied_at,omitzero"`
	LastRejected *protocol.Rejection `json:"last_rejected,omitempty"`
	// PendingEvents is how many events wait in the outbox.
	PendingEvents int `json:"pending_events"`
	// LastStatusSeq and LastStatusAt describe the last status report the
	// broker acknowledged (zero: none yet).
	LastStatusSeq uint64    `json:"last_status_seq"`
	LastStatusAt  time.Time `json:"last_status_at,omitzero"`
	// DiskFull is set when the state directory has less than MinFreeBytes
	// free: nothing can be stored (apps keep running).
	DiskFull *DiskFull `json:"disk_full,omitempty"`
	// Socket is the local API socket; AppsDir where apps are installed.
	Socket  string               `json:"socket"`
	AppsDir string               `json:"apps_dir"`
	Apps    []protocol.AppStatus `json:"apps"`
}

// StatusOptions are the inputs of Status.
type StatusOptions struct {
	StateDir string
	// Socket and AppsDir are reported as given. Empty: DefaultSocket and
	// AppsDir(StateDir).
	Socket, AppsDir string
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Status reads the local view of an enrolled state directory. It works
// whether or not the agent is running.
func Status(ctx context.Context, opts StatusOptions) (*LocalStatus, error) {
	id, err := identity.Load(opts.StateDir)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	st := &LocalStatus{
		DeviceID:      id.DeviceID,
		MQTTURL:       id.MQTTURL,
		ControllerURL: id.HTTPURL,
		Socket:        opts.Socket,
		AppsDir:       opts.AppsDir,
		Apps:          []protocol.AppStatus{},
	}
	if st.Socket == "" {
		st.Socket = DefaultSocket
	}
	st.DiskFull = diskFullAt(opts.StateDir)
	if st.AppsDir == "" {
		st.AppsDir = AppsDir(opts.StateDir)
	}
	store, err := state.Open(ctx, identity.Path(opts.StateDir, identity.DBFile))
	if err != nil {
		return nil, err
	}
	defer store.Close()
	applied, err := store.Applied(ctx)
	if err != nil {
		return nil, err
	}
	if applied != nil {
		st.AppliedRevision = applied.Revision
		exp := applied.ExpiresAt.UTC()
		st.PolicyExpiresAt = &exp
		st.PolicyExpired = (&apply.Policy{ExpiresAt: applied.ExpiresAt}).Expired(now())
		st.AppliedAt = applied.AppliedAt.UTC()
	}
	rej, err := store.LastRejection(ctx)
	if err != nil {
		return nil, err
	}
	if rej != nil {
		st.LastRejected = &rej.Rejection
	}
	if st.PendingEvents, err = store.CountEvents(ctx); err != nil {
		return nil, err
	}
	last, err := store.LastStatus(ctx)
	if err != nil {
		return nil, err
	}
	if last != nil {
		st.LastStatusSeq, st.LastStatusAt = last.Seq, last.At
		if last.Apps != nil {
			st.Apps = last.Apps
		}
	}
	return st, nil
}
