package console

import (
	"net/http"
	"slices"
	"strings"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
)

type overviewData struct {
	Status  *apiv1.FleetStatus
	Devices []apiv1.Device
	Groups  []apiv1.Group
	Filter  struct{ Group, Label, State string }
	// Events is false when the user may not read security events.
	Events bool
}

// deviceStates are the overview's state filter values.
var deviceStates = []string{"online", "offline", apiv1.SyncInSync, apiv1.SyncDrifting, apiv1.SyncFailing, apiv1.SyncPending}

func (c *Console) overview(rq *request) error {
	m, err := c.whoami(rq)
	if err != nil {
		return err
	}
	var d overviewData
	q := rq.r.URL.Query()
	d.Filter.Group, d.Filter.Label, d.Filter.State = q.Get("group"), strings.TrimSpace(q.Get("label")), q.Get("state")
	d.Events = m.Can["controller:audit"]
	if d.Status, err = rq.api.FleetStatus(rq.ctx()); err != nil {
		return err
	}
	devs, err := rq.api.ListDevices(rq.ctx())
	if err != nil {
		return err
	}
	for _, dv := range devs {
		if matchDevice(dv, d.Filter.Group, d.Filter.Label, d.Filter.State) {
			d.Devices = append(d.Devices, dv)
		}
	}
	if d.Groups, err = rq.api.ListGroups(rq.ctx()); err != nil {
		return err
	}
	return c.page(rq, "overview", "Fleet", d)
}

// matchDevice applies the overview's filters: a group the device is in, a
// label "k=v" (or a key "k"), and a state.
func matchDevice(d apiv1.Device, group, label, state string) bool {
	if group != "" && !slices.Contains(d.Groups, group) {
		return false
	}
	if label != "" {
		k, v, hasValue := strings.Cut(label, "=")
		got, ok := d.Labels[strings.TrimSpace(k)]
		if !ok || (hasValue && got != strings.TrimSpace(v)) {
			return false
		}
	}
	switch state {
	case "":
	case "online":
		return d.Online
	case "offline":
		return !d.Online
	default:
		return d.Sync == state
	}
	return true
}

type deviceData struct {
	Device *apiv1.Device
	Events []apiv1.Event
	// EventsHidden: the user may not read events (controller:audit).
	EventsHidden bool
}

func (c *Console) devicePage(rq *request) error {
	id := rq.r.PathValue("id")
	d, err := rq.api.GetDevice(rq.ctx(), id)
	if err != nil {
		return err
	}
	data := deviceData{Device: d}
	data.Events, err = rq.api.ListEvents(rq.ctx(), client.EventFilter{Device: id, Limit: 20})
	if forbidden(err) {
		data.EventsHidden, err = true, nil
	}
	if err != nil {
		return err
	}
	return c.page(rq, "device", "Device "+id, data)
}

func (c *Console) deviceApprove(rq *request) error {
	id := rq.r.PathValue("id")
	if _, err := rq.api.ApproveDevice(rq.ctx(), id); err != nil {
		return err
	}
	return redirect(rq, "/devices/"+pathEscape(id), "Device "+id+" approved.")
}

// deviceLabels sets one label; an empty value removes it.
func (c *Console) deviceLabels(rq *request) error {
	id, f := rq.r.PathValue("id"), rq.r.PostForm
	key := strings.TrimSpace(f.Get("key"))
	if key == "" {
		return &client.Error{Status: http.StatusBadRequest, Message: "Give the label's key; nothing was changed."}
	}
	if _, err := rq.api.SetDeviceLabels(rq.ctx(), id, map[string]string{key: strings.TrimSpace(f.Get("value"))}); err != nil {
		return err
	}
	return redirect(rq, "/devices/"+pathEscape(id), "Labels of "+id+" changed.")
}
