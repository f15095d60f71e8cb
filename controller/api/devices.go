package api

import (
	"context"
	"fmt"
	"maps"
	"net/http"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/store"
)

// fleetView is what rendering devices needs besides the devices themselves.
type fleetView struct {
	deviceGroups map[string][]string
	groupMembers map[string][]string
	desired      map[string]uint64 // desired revision by device id
}

func (a *API) loadFleetView(ctx context.Context, withDesired bool) (fleetView, error) {
	members, groups, err := a.opts.Membership.Membership(ctx)
	if err != nil {
		return fleetView{}, fmt.Errorf("resolve group membership: %w", err)
	}
	v := fleetView{deviceGroups: groups, groupMembers: members}
	if withDesired {
		recs, err := a.opts.Store.ListDesired(ctx)
		if err != nil {
			return fleetView{}, fmt.Errorf("list desired revisions: %w", err)
		}
		v.desired = make(map[string]uint64, len(recs))
		for _, d := range recs {
			v.desired[d.DeviceID] = d.Revision
		}
	}
	return v, nil
}

func (v fleetView) device(d store.Device) apiv1.Device {
	out := apiv1.Device{
		ID:              d.ID,
		State:           d.State,
		Online:          d.Online,
		Groups:          nonNil(v.deviceGroups[d.ID]),
		Labels:          nonNilMap(d.Labels),
		DesiredRevision: v.desired[d.ID],
		AppliedRevision: d.AppliedRevision,
		Apps:            nonNil(d.Apps),
		LastRejected:    d.LastRejected,
		EnrolledAt:      d.EnrolledAt,
		PolicyExpiresAt: d.PolicyExpiresAt,
	}
	if !d.LastSeen.IsZero() {
		t := d.LastSeen
		out.LastSeen = &t
	}
	out.InSync = syncState(out) == syncInSync
	return out
}

type syncClass int

const (
	syncPending syncClass = iota
	syncInSync
	syncDrifting
	syncFailing
)

// syncState classifies a device: pending approval; in sync (it applied the
// latest document); failing (it rejected a document and is behind); or
// drifting (behind, nothing rejected: it has not caught up yet, or no
// document was compiled for it yet).
func syncState(d apiv1.Device) syncClass {
	switch {
	case d.State == apiv1.DevicePending:
		return syncPending
	case d.DesiredRevision > 0 && d.AppliedRevision >= d.DesiredRevision:
		return syncInSync
	case d.LastRejected != nil:
		return syncFailing
	}
	return syncDrifting
}

func (a *API) listDevices(w http.ResponseWriter, r *http.Request) error {
	if err := a.authorize(r, actDeviceView, resDevices()); err != nil {
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
	out := make([]apiv1.Device, 0, len(devs))
	for _, d := range devs {
		out = append(out, v.device(d))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) getDevice(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := a.authorize(r, actDeviceView, resDevice(id)); err != nil {
		return err
	}
	return a.writeDevice(w, r, id, http.StatusOK)
}

func (a *API) writeDevice(w http.ResponseWriter, r *http.Request, id string, status int) error {
	d, err := a.opts.Store.GetDevice(r.Context(), id)
	if err != nil {
		return err
	}
	v, err := a.loadFleetView(r.Context(), true)
	if err != nil {
		return err
	}
	return writeJSON(w, status, v.device(d))
}

func (a *API) approveDevice(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := a.authorize(r, actDeviceManage, resDevice(id)); err != nil {
		return err
	}
	if err := a.opts.Store.ApproveDevice(r.Context(), id); err != nil {
		return err
	}
	a.changed()
	a.audit(r, "device.approve", id, "")
	return a.writeDevice(w, r, id, http.StatusOK)
}

// setDeviceLabels merges the request into the device's labels (an empty
// value removes the key) and stores the result as the device's labels.
func (a *API) setDeviceLabels(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := a.authorize(r, actDeviceManage, resDevice(id)); err != nil {
		return err
	}
	var req apiv1.SetLabelsRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if len(req.Labels) == 0 {
		return errorf(http.StatusBadRequest, "labels is required: give at least one key (an empty value removes the key)")
	}
	d, err := a.opts.Store.GetDevice(r.Context(), id)
	if err != nil {
		return err
	}
	labels := maps.Clone(nonNilMap(d.Labels))
	for k, val := range req.Labels {
		if val == "" {
			delete(labels, k)
		} else {
			labels[k] = val
		}
	}
	if err := a.opts.Store.SetDeviceLabels(r.Context(), id, labels); err != nil {
		return err
	}
	a.changed()
	a.audit(r, "device.label", id, formatLabels(req.Labels))
	return a.writeDevice(w, r, id, http.StatusOK)
}

func (a *API) deleteDevice(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := a.authorize(r, actDeviceManage, resDevice(id)); err != nil {
		return err
	}
	if err := a.opts.Store.DeleteDevice(r.Context(), id); err != nil {
		return err
	}
	a.changed()
	a.audit(r, "device.delete", id, "")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) fleetStatus(w http.ResponseWriter, r *http.Request) error {
	if err := a.authorize(r, actFleetView, resController); err != nil {
		return err
	}
	devs, err := a.opts.Store.ListDevices(r.Context())
	if err != nil {
		return err
	}
	recs, err := a.opts.Store.ListDesired(r.Context())
	if err != nil {
		return fmt.Errorf("list desired revisions: %w", err)
	}
	v := fleetView{desired: make(map[string]uint64, len(recs))}
	for _, d := range recs {
		v.desired[d.DeviceID] = d.Revision
	}
	var st apiv1.FleetStatus
	for _, d := range devs {
		st.Devices++
		if d.Online {
			st.Online++
		}
		switch syncState(v.device(d)) {
		case syncPending:
			st.Pending++
		case syncInSync:
			st.InSync++
		case syncDrifting:
			st.Drifting++
		case syncFailing:
			st.Failing++
		}
	}
	return writeJSON(w, http.StatusOK, st)
}
