package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/store"
)

// EventStore reads the events devices reported; *store.DB implements it.
// The API finds it by asserting Options.Store; without it the events
// endpoint answers 501 and the fleet status counts no security events.
type EventStore interface {
	ListEvents(ctx context.Context, f store.EventFilter) ([]store.DeviceEvent, error)
	SecurityEventCounts(ctx context.Context, since time.Time) (map[string]int, error)
}

var _ EventStore = (*store.DB)(nil)

// SideloadStore holds the per-group sideload overrides; *store.DB
// implements it. The API finds it by asserting Options.Store; without it
// the override endpoints answer 501 and settings list none.
type SideloadStore interface {
	SetSideloadOverride(ctx context.Context, o store.SideloadOverride) (store.SideloadOverride, error)
	DeleteSideloadOverride(ctx context.Context, group string) (bool, error)
	ListSideloadOverrides(ctx context.Context) ([]store.SideloadOverride, error)
}

var _ SideloadStore = (*store.DB)(nil)

const (
	// recentSecurityEvents is how many of the latest security events the
	// fleet status carries.
	recentSecurityEvents = 5
	// securityWindow is the period the fleet status counts security
	// events over.
	securityWindow = 24 * time.Hour
)

func (a *API) eventStore() (EventStore, error) {
	es, ok := a.opts.Store.(EventStore)
	if !ok {
		return nil, errorf(http.StatusNotImplemented, "this controller's store does not keep device events")
	}
	return es, nil
}

func (a *API) sideloadStore() (SideloadStore, error) {
	ss, ok := a.opts.Store.(SideloadStore)
	if !ok {
		return nil, errorf(http.StatusNotImplemented, "this controller's store does not keep sideload overrides")
	}
	return ss, nil
}

func eventView(e store.DeviceEvent) apiv1.Event {
	return apiv1.Event{DeviceID: e.DeviceID, ID: e.ID, At: e.At, ReceivedAt: e.ReceivedAt, Kind: e.Kind,
		Severity: e.Severity, Message: e.Message, Details: e.Details}
}

// listEvents serves GET /api/v1/events: device events, newest first.
func (a *API) listEvents(w http.ResponseWriter, r *http.Request) error {
	es, err := a.eventStore()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.EventFilter{Kind: q.Get("kind"), Severity: q.Get("severity"), DeviceID: q.Get("device")}
	switch f.Severity {
	case "", apiv1.SeverityInfo, apiv1.SeverityWarning, apiv1.SeveritySecurity:
	default:
		return errorf(http.StatusBadRequest, "severity %q: want info, warning or security", f.Severity)
	}
	if len(f.Kind) > 64 || len(f.DeviceID) > 128 {
		return errorf(http.StatusBadRequest, "kind or device is too long")
	}
	if f.Since, f.Limit, err = sinceLimit(q); err != nil {
		return err
	}
	evs, err := es.ListEvents(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]apiv1.Event, 0, len(evs))
	for _, e := range evs {
		out = append(out, eventView(e))
	}
	return writeJSON(w, http.StatusOK, out)
}

// securitySummary fills in the fleet status's security events: those of
// the devices may allows (device:view), counted over the last 24 hours,
// and the latest few.
func (a *API) securitySummary(ctx context.Context, may func(resource string) bool, st *apiv1.FleetStatus) error {
	st.RecentSecurityEvents = []apiv1.Event{}
	es, ok := a.opts.Store.(EventStore)
	if !ok {
		return nil
	}
	since := a.now().Add(-securityWindow)
	counts, err := es.SecurityEventCounts(ctx, since)
	if err != nil {
		return err
	}
	for id, n := range counts {
		if may(resDevice(id)) {
			st.SecurityEvents24h += n
		}
	}
	if st.SecurityEvents24h == 0 {
		return nil
	}
	evs, err := es.ListEvents(ctx, store.EventFilter{Severity: store.SeveritySecurity, Since: since, Limit: 200})
	if err != nil {
		return err
	}
	for _, e := range evs {
		if len(st.RecentSecurityEvents) == recentSecurityEvents {
			break
		}
		if may(resDevice(e.DeviceID)) {
			st.RecentSecurityEvents = append(st.RecentSecurityEvents, eventView(e))
		}
	}
	return nil
}

// sideloadOverrides lists the overrides for Settings (none without a
// SideloadStore).
func (a *API) sideloadOverrides(ctx context.Context) ([]apiv1.SideloadOverride, error) {
	out := []apiv1.SideloadOverride{}
	ss, ok := a.opts.Store.(SideloadStore)
	if !ok {
		return out, nil
	}
	os, err := ss.ListSideloadOverrides(ctx)
	if err != nil {
		return nil, err
	}
	for _, o := range os {
		out = append(out, apiv1.SideloadOverride{Group: o.Group, Policy: o.Policy, SetBy: o.SetBy, SetAt: o.SetAt})
	}
	return out, nil
}

// setGroupSideload serves PUT /api/v1/settings/sideload/groups/{name}: a
// group's override of the global policy. It needs device:sideload on the
// group (not controller:settings, which the global policy needs).
func (a *API) setGroupSideload(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	ss, err := a.sideloadStore()
	if err != nil {
		return err
	}
	var req apiv1.SetSideloadRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if req.Policy != apiv1.SideloadAllow && req.Policy != apiv1.SideloadDeny {
		return errorf(http.StatusBadRequest, "policy %q: want allow or deny (to remove the override: DELETE, or `edgewarden settings sideload inherit --group %s`)", req.Policy, name)
	}
	user := principalName(r)
	err = a.change(r, store.AuditSecurity, "settings.sideload", resGroup(name), req.Policy+" (group override)", func(ctx context.Context, c *store.Change) error {
		if err := c.DirtyGroups(ctx, name); err != nil {
			return err
		}
		c.Before, c.After = a.groupSideloadState(ctx, ss, name), sideloadState(req.Policy)
		_, err := ss.SetSideloadOverride(ctx, store.SideloadOverride{Group: name, Policy: req.Policy, SetBy: user, SetAt: a.now()})
		return err
	})
	if err != nil {
		return err
	}
	return a.writeSettings(w, r)
}

// deleteGroupSideload serves DELETE /api/v1/settings/sideload/groups/{name}:
// the group follows the global policy again. Removing an override the
// group does not have changes nothing and is not audited.
func (a *API) deleteGroupSideload(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	ss, err := a.sideloadStore()
	if err != nil {
		return err
	}
	err = a.change(r, store.AuditSecurity, "settings.sideload", resGroup(name), "inherit (group override removed)", func(ctx context.Context, c *store.Change) error {
		if err := c.DirtyGroups(ctx, name); err != nil {
			return err
		}
		c.Before = a.groupSideloadState(ctx, ss, name)
		had, err := ss.DeleteSideloadOverride(ctx, name)
		if err == nil && !had {
			return errNothingToChange
		}
		return err
	})
	if err != nil && !errors.Is(err, errNothingToChange) {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// errNothingToChange rolls back a change that turned out to change nothing,
// so it leaves no audit entry.
var errNothingToChange = errors.New("nothing to change")

// groupSideloadState is a group's sideload override as audit entries record
// it: its policy, or "inherit" without one.
func (a *API) groupSideloadState(ctx context.Context, ss SideloadStore, group string) map[string]string {
	os, err := ss.ListSideloadOverrides(ctx)
	if err != nil {
		return nil
	}
	for _, o := range os {
		if o.Group == group {
			return map[string]string{"policy": o.Policy}
		}
	}
	return map[string]string{"policy": "inherit"}
}

func (a *API) writeSettings(w http.ResponseWriter, r *http.Request) error {
	st, err := a.accessStore()
	if err != nil {
		return err
	}
	s, err := a.settings(r.Context(), st)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s)
}

// sinceLimit reads the since (RFC 3339) and limit (1 to
// store.DefaultListLimit) query parameters of the listing endpoints; absent
// means zero (all, and the default limit).
func sinceLimit(q url.Values) (since time.Time, limit int, err error) {
	if s := q.Get("since"); s != "" {
		if since, err = time.Parse(time.RFC3339, s); err != nil {
			return time.Time{}, 0, errorf(http.StatusBadRequest, "since %q: want an RFC 3339 time, e.g. 2026-11-22T10:00:00Z", s)
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.DefaultListLimit {
			return time.Time{}, 0, errorf(http.StatusBadRequest, "limit %q: want 1-%d", s, store.DefaultListLimit)
		}
		limit = n
	}
	return since, limit, nil
}
