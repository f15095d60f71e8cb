package api

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
)

// fleetView is what rendering devices needs besides the devices themselves.
type fleetView struct {
	members MemberLookup      // nil: groups are not needed
	desired map[string]uint64 // desired revision by device id
	now     time.Time         // for how long devices have been silent
	// assigned are the app versions assigned to each group (app → versions),
	// to tell whether a device runs what it should; nil without an app store.
	assigned map[string]map[string][]string
}

func (a *API) loadFleetView(ctx context.Context, withDesired bool) (fleetView, error) {
	members, err := a.opts.Membership.Membership(ctx)
	if err != nil {
		return fleetView{}, fmt.Errorf("resolve group membership: %w", err)
	}
	v := fleetView{members: members, now: a.now()}
	if withDesired {
		if err := a.loadDesired(ctx, &v); err != nil {
			return fleetView{}, err
		}
	}
	return v, nil
}

// loadDesired fills v's desired revisions and app assignments.
func (a *API) loadDesired(ctx context.Context, v *fleetView) error {
	recs, err := a.opts.Store.ListDesired(ctx)
	if err != nil {
		return fmt.Errorf("list desired revisions: %w", err)
	}
	v.desired = make(map[string]uint64, len(recs))
	for _, d := range recs {
		v.desired[d.DeviceID] = d.Revision
	}
	if a.opts.Apps == nil {
		return nil
	}
	as, err := a.opts.Apps.ListAssignments(ctx)
	if err != nil {
		return fmt.Errorf("list app assignments: %w", err)
	}
	v.assigned = map[string]map[string][]string{}
	for _, x := range as {
		if v.assigned[x.Group] == nil {
			v.assigned[x.Group] = map[string][]string{}
		}
		v.assigned[x.Group][x.App] = append(v.assigned[x.Group][x.App], x.Version)
	}
	return nil
}

func (v fleetView) device(d store.Device) apiv1.Device {
	out := apiv1.Device{
		ID:              d.ID,
		State:           d.State,
		Online:          d.Online,
		Groups:          []string{},
		Labels:          nonNilMap(d.Labels),
		RequestedLabels: d.RequestedLabels,
		DesiredRevision: v.desired[d.ID],
		AppliedRevision: d.AppliedRevision,
		Apps:            nonNil(d.Apps),
		LastRejected:    d.LastRejected,
		AgentVersion:    d.AgentVersion,
		EnrolledAt:      d.EnrolledAt,
		PolicyExpiresAt: d.PolicyExpiresAt,
	}
	if v.members != nil {
		out.Groups = nonNil(v.members.GroupsOf(d.ID))
	}
	if !d.LastSeen.IsZero() {
		t := d.LastSeen
		out.LastSeen = &t
		silent := max(int64(v.now.Sub(t)/time.Second), 0)
		out.SilentSeconds = &silent
	}
	out.Sync, out.SyncReason = v.syncOf(out)
	out.InSync = out.Sync == apiv1.SyncInSync
	return out
}

// syncOf classifies a device against its desired state (the groups in d
// must be filled for the app check):
//
//   - pending: waiting for approval;
//   - in sync (converged): it applied the desired revision and every app
//     assigned to it is installed in an assigned version and running or
//     stopped (an operator may stop an app), none failed;
//   - failing: it rejected the desired document, or it applied it and an
//     app failed or was quarantined; the reason says which and why;
//   - drifting: not there yet (document or apps on their way), with what is
//     missing.
//
// Applied above desired is not in sync either: the device ran a newer
// controller's document (restored backup) until the next one reaches it.
func (v fleetView) syncOf(d apiv1.Device) (state, reason string) {
	switch {
	case d.State == apiv1.DevicePending:
		return apiv1.SyncPending, "waiting for approval (devices approve)"
	case d.DesiredRevision == 0:
		return apiv1.SyncDrifting, "no document compiled yet"
	case d.AppliedRevision != d.DesiredRevision:
		if r := d.LastRejected; r != nil {
			return apiv1.SyncFailing, fmt.Sprintf("rejected revision %d: %s (%s)", r.Revision, r.Message, r.Reason)
		}
		return apiv1.SyncDrifting, fmt.Sprintf("applied revision %d, desired %d", d.AppliedRevision, d.DesiredRevision)
	}
	reported := map[string]protocol.AppStatus{}
	for _, app := range d.Apps {
		if app.Sideloaded {
			continue
		}
		reported[app.Name] = app
		if app.State == protocol.AppFailed || app.State == protocol.AppQuarantined {
			why := app.Reason
			if why == "" {
				why = "no reason reported"
			}
			return apiv1.SyncFailing, fmt.Sprintf("app %s %s %s: %s", app.Name, app.Version, app.State, why)
		}
	}
	for _, g := range d.Groups {
		for name, versions := range v.assigned[g] {
			app, ok := reported[name]
			switch {
			case !ok:
				return apiv1.SyncDrifting, fmt.Sprintf("app %s not reported yet", name)
			case !slices.Contains(versions, app.Version):
				return apiv1.SyncDrifting, fmt.Sprintf("app %s at version %s, assigned %s", name, app.Version, strings.Join(versions, " or "))
			case app.State != protocol.AppRunning && app.State != protocol.AppStopped:
				return apiv1.SyncDrifting, fmt.Sprintf("app %s %s %s", name, app.Version, app.State)
			}
		}
	}
	return apiv1.SyncInSync, ""
}

func (a *API) listDevices(w http.ResponseWriter, r *http.Request) error {
	devs, err := a.opts.Store.ListDevices(r.Context())
	if err != nil {
		return err
	}
	v, err := a.loadFleetView(r.Context(), true)
	if err != nil {
		return err
	}
	may, err := a.visible(r)
	if err != nil {
		return err
	}
	out := make([]apiv1.Device, 0, len(devs))
	for _, d := range devs {
		if may(resDevice(d.ID)) {
			out = append(out, v.device(d))
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) getDevice(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	d, err := a.opts.Store.GetDevice(r.Context(), id)
	if err != nil {
		return err
	}
	return a.writeDevice(w, r, d)
}

// writeDevice answers with d as seen in the fleet (groups, desired revision).
func (a *API) writeDevice(w http.ResponseWriter, r *http.Request, d store.Device) error {
	v, err := a.loadFleetView(r.Context(), true)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v.device(d))
}

func (a *API) approveDevice(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	var d store.Device
	err := a.change(r, store.AuditChange, "device.approve", id, "", func(ctx context.Context, c *store.Change) error {
		c.DirtyDevices(id)
		var err error
		d, err = a.opts.Store.ApproveDevice(ctx, id)
		return err
	})
	if err != nil {
		return err
	}
	return a.writeDevice(w, r, d)
}

// setDeviceLabels sets the labels in the request; an empty value removes
// the key, labels not named stay.
func (a *API) setDeviceLabels(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	var req apiv1.SetLabelsRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if len(req.Labels) == 0 {
		return errorf(http.StatusBadRequest, "labels is required: give at least one key (an empty value removes the key)")
	}
	var d store.Device
	err := a.change(r, store.AuditChange, "device.label", id, formatLabels(req.Labels), func(ctx context.Context, c *store.Change) error {
		c.DirtyDevices(id)
		var err error
		d, err = a.opts.Store.SetDeviceLabels(ctx, id, req.Labels)
		return err
	})
	if err != nil {
		return err
	}
	return a.writeDevice(w, r, d)
}

func (a *API) deleteDevice(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	err := a.change(r, store.AuditChange, "device.delete", id, "", func(ctx context.Context, c *store.Change) error {
		c.DirtyDevices(id)
		return a.opts.Store.DeleteDevice(ctx, id)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) fleetStatus(w http.ResponseWriter, r *http.Request) error {
	may, err := a.visible(r)
	if err != nil {
		return err
	}
	devs, err := a.opts.Store.ListDevices(r.Context())
	if err != nil {
		return err
	}
	v, err := a.loadFleetView(r.Context(), true)
	if err != nil {
		return err
	}
	var st apiv1.FleetStatus
	for _, d := range devs {
		if !may(resDevice(d.ID)) {
			continue
		}
		st.Devices++
		view := v.device(d)
		if d.Online {
			st.Online++
		} else if d.State == store.DeviceActive {
			st.Offline = append(st.Offline, apiv1.DeviceSilence{Device: d.ID, SilentSeconds: view.SilentSeconds})
		}
		switch view.Sync {
		case apiv1.SyncPending:
			st.Pending++
		case apiv1.SyncInSync:
			st.InSync++
		case apiv1.SyncDrifting:
			st.Drifting++
		case apiv1.SyncFailing:
			st.Failing++
		}
	}
	// Most recently silent first (never seen last), at most maxOffline.
	slices.SortStableFunc(st.Offline, func(x, y apiv1.DeviceSilence) int {
		switch {
		case x.SilentSeconds == nil || y.SilentSeconds == nil:
			return cmp.Compare(boolInt(x.SilentSeconds == nil), boolInt(y.SilentSeconds == nil))
		}
		return cmp.Compare(*x.SilentSeconds, *y.SilentSeconds)
	})
	if len(st.Offline) > maxOffline {
		st.Offline = st.Offline[:maxOffline]
	}
	st.Offline = nonNil(st.Offline)
	if err := a.securitySummary(r.Context(), may, &st); err != nil { // events.go
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

// maxOffline bounds the offline devices listed in the fleet status; the
// count of all of them is Devices - Online.
const maxOffline = 50

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
