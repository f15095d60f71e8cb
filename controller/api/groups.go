package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol/access"
)

func (v fleetView) group(g store.Group) apiv1.Group {
	return apiv1.Group{
		Name:      g.Name,
		Selector:  g.Selector,
		Devices:   nonNil(g.Devices),
		Includes:  nonNil(g.Includes),
		Members:   nonNil(v.members.Members(g.Name)),
		CreatedAt: g.CreatedAt,
	}
}

// writeGroup answers with g and its full member list.
func (a *API) writeGroup(w http.ResponseWriter, r *http.Request, g store.Group, status int) error {
	v, err := a.loadFleetView(r.Context(), false)
	if err != nil {
		return err
	}
	return writeJSON(w, status, v.group(g))
}

func (a *API) createGroup(w http.ResponseWriter, r *http.Request) error {
	var req apiv1.CreateGroupRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if req.Name == "" {
		return errorf(http.StatusBadRequest, "name is required")
	}
	var g store.Group
	err := a.change(r, store.AuditChange, "group.create", req.Name, "selector="+req.Selector, func(ctx context.Context, c *store.Change) error {
		var err error
		if g, err = a.opts.Store.CreateGroup(ctx, req.Name, req.Selector); err != nil {
			return err
		}
		if err := c.DirtyGroups(ctx, req.Name); err != nil {
			return err
		}
		return a.ownGroup(ctx, r, c, req.Name)
	})
	if err != nil {
		return err
	}
	return a.writeGroup(w, r, g, http.StatusCreated)
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request) error {
	gs, err := a.opts.Store.ListGroups(r.Context())
	if err != nil {
		return err
	}
	v, err := a.loadFleetView(r.Context(), false)
	if err != nil {
		return err
	}
	may, err := a.visible(r)
	if err != nil {
		return err
	}
	out := make([]apiv1.Group, 0, len(gs))
	for _, g := range gs {
		if may(resGroup(g.Name)) {
			out = append(out, v.group(g))
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) getGroup(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	g, err := a.opts.Store.GetGroup(r.Context(), name)
	if err != nil {
		return err
	}
	return a.writeGroup(w, r, g, http.StatusOK)
}

func (a *API) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	err := a.change(r, store.AuditChange, "group.delete", name, "", func(ctx context.Context, c *store.Change) error {
		if err := c.DirtyGroups(ctx, name); err != nil {
			return err
		}
		return a.opts.Store.DeleteGroup(ctx, name)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) addGroupDevices(w http.ResponseWriter, r *http.Request) error {
	return a.changeGroupDevices(w, r, true)
}

func (a *API) removeGroupDevices(w http.ResponseWriter, r *http.Request) error {
	return a.changeGroupDevices(w, r, false)
}

func (a *API) changeGroupDevices(w http.ResponseWriter, r *http.Request, add bool) error {
	name := r.PathValue("name")
	var req apiv1.DevicesRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if len(req.Devices) == 0 {
		return errorf(http.StatusBadRequest, "devices is required: name at least one device")
	}
	if add {
		// Adding a device hands it to everyone holding grants on the group.
		for _, id := range req.Devices {
			if err := a.authorize(r, access.DeviceManage, access.ResourceDevice, id); err != nil {
				return err
			}
		}
	}
	action, change := "group.add-devices", a.opts.Store.AddGroupDevices
	if !add {
		action, change = "group.remove-devices", a.opts.Store.RemoveGroupDevices
	}
	var g store.Group
	err := a.change(r, store.AuditChange, action, name, strings.Join(req.Devices, ","), func(ctx context.Context, c *store.Change) error {
		c.DirtyDevices(req.Devices...)
		var err error
		g, err = change(ctx, name, req.Devices)
		return err
	})
	if err != nil {
		return err
	}
	return a.writeGroup(w, r, g, http.StatusOK)
}

func (a *API) includeGroup(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	var req apiv1.IncludeRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if req.Group == "" {
		return errorf(http.StatusBadRequest, "group is required: name the group to include")
	}
	if req.Group == name {
		return errorf(http.StatusBadRequest, "group %q cannot include itself", name)
	}
	// Including a group hands its devices to everyone holding grants on the
	// parent: that is sharing the child.
	if err := a.authorize(r, access.DeviceGroupShare, access.ResourceDeviceGroup, req.Group); err != nil {
		return err
	}
	var g store.Group
	err := a.change(r, store.AuditChange, "group.include", name, req.Group, func(ctx context.Context, c *store.Change) error {
		if err := c.DirtyGroups(ctx, req.Group); err != nil {
			return err
		}
		var err error
		g, err = a.opts.Store.IncludeGroup(ctx, name, req.Group)
		return err
	})
	if err != nil {
		return err
	}
	return a.writeGroup(w, r, g, http.StatusOK)
}

func (a *API) excludeGroup(w http.ResponseWriter, r *http.Request) error {
	name, child := r.PathValue("name"), r.PathValue("child")
	err := a.change(r, store.AuditChange, "group.exclude", name, child, func(ctx context.Context, c *store.Change) error {
		if err := c.DirtyGroups(ctx, child); err != nil {
			return err
		}
		_, err := a.opts.Store.ExcludeGroup(ctx, name, child)
		return err
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
