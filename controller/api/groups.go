package api

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
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
	if err := a.mayTakeName(r, req.Name); err != nil {
		return err
	}
	// A selector pulls devices in as surely as adding them by name.
	var match store.SelectorChange
	if req.Selector != "" {
		var err error
		if match, err = a.opts.Store.PreviewSelector(r.Context(), req.Name, req.Selector); err != nil {
			return err
		}
		if err := a.mayAdd(r, req.Name, match.Added); err != nil {
			return err
		}
	}
	var g store.Group
	err := a.change(r, store.AuditChange, "group.create", req.Name, "selector="+req.Selector, func(ctx context.Context, c *store.Change) error {
		if req.Selector != "" {
			if err := sameAdded(ctx, a.opts.Store, req.Name, req.Selector, match.Added); err != nil {
				return err
			}
		}
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

// deleteGroup deletes a group. One that carries what others rely on (a
// sideload override, grants to others, app assignments, inclusion in
// another group) is refused, naming it, unless force=true; a forced
// deletion removes only what the caller could remove one by one (the
// sideload override needs device:sideload on the group, each assignment
// app:deploy on its app, each inclusion device-group:manage-members on the
// including group, and the grants are the executor's no-escalation rule),
// and its audit entry names everything removed. Removing a deny override
// is a security event.
func (a *API) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	force, err := queryBool(r, "force")
	if err != nil {
		return err
	}
	deps, err := a.opts.Store.GroupDependents(r.Context(), name)
	if err != nil {
		return err
	}
	if prot := deps.Protected(principalName(r)); len(prot) > 0 && !force {
		return errorf(http.StatusConflict, "group %s was not deleted: deleting it would also remove %s. Check with `edgewarden groups show %s`, then pass --force (API: force=true) to delete it with all of that",
			name, strings.Join(prot, "; "), name)
	}
	if deps.Sideload != nil {
		if err := a.authorize(r, access.DeviceSideload, access.ResourceDeviceGroup, name); err != nil {
			return err
		}
	}
	for _, as := range deps.Assignments {
		if err := a.authorize(r, access.AppDeploy, access.ResourceApp, as.App); err != nil {
			return err
		}
	}
	for _, p := range deps.IncludedBy {
		if err := a.authorize(r, access.DeviceGroupManageMembers, access.ResourceDeviceGroup, p); err != nil {
			return err
		}
	}
	err = a.change(r, store.AuditChange, "group.delete", name, "", func(ctx context.Context, c *store.Change) error {
		// What was checked is what goes: a grant or override added
		// meanwhile fails the deletion instead of going unnamed.
		now, err := a.opts.Store.GroupDependents(ctx, name)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(now, deps) {
			return errorf(http.StatusConflict, "group %s changed while it was being deleted, so nothing was deleted; run the command again", name)
		}
		if removed := deps.Removed(); len(removed) > 0 {
			c.Audit.Detail = "removed: " + strings.Join(removed, "; ")
			if force {
				c.Audit.Detail = "forced; " + c.Audit.Detail
			}
			c.Before = deps
		}
		if deps.Sideload != nil && deps.Sideload.Policy == store.SideloadDeny {
			c.Audit.Kind = store.AuditSecurity
		}
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

// renameGroup renames a group; everything that names it follows (see
// store.DB.RenameGroup), so no one's rights change.
func (a *API) renameGroup(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	var req apiv1.RenameGroupRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if req.Name == "" {
		return errorf(http.StatusBadRequest, "name is required: the group's new name")
	}
	if err := a.mayTakeName(r, req.Name); err != nil {
		return err
	}
	var g store.Group
	err := a.change(r, store.AuditChange, "group.rename", name, "renamed to "+req.Name, func(ctx context.Context, c *store.Change) error {
		// Documents name the groups of each device: its members' change.
		if err := c.DirtyGroups(ctx, name); err != nil {
			return err
		}
		var err error
		if g, err = a.opts.Store.RenameGroup(ctx, name, req.Name); err != nil {
			return err
		}
		c.Before, c.After = map[string]string{"name": name}, map[string]string{"name": req.Name}
		return c.DirtyGroups(ctx, req.Name)
	})
	if err != nil {
		return err
	}
	return a.writeGroup(w, r, g, http.StatusOK)
}

// setGroupSelector replaces a group's selector. Every device the new
// selector pulls in needs device:manage, as adding it by name does; with
// dry_run=true it answers what the change would do and changes nothing
// (refusing just as the change would).
func (a *API) setGroupSelector(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	dry, err := queryBool(r, "dry_run")
	if err != nil {
		return err
	}
	var req apiv1.SetSelectorRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	g, err := a.opts.Store.GetGroup(r.Context(), name)
	if err != nil {
		return err
	}
	p, err := a.opts.Store.PreviewSelector(r.Context(), name, req.Selector)
	if err != nil {
		return err
	}
	if err := a.mayAdd(r, name, p.Added); err != nil {
		return err
	}
	out := apiv1.SelectorChange{Added: p.Added, Removed: p.Removed, DryRun: dry}
	if dry {
		g.Selector = p.Selector
		out.Group = apiv1.Group{Name: g.Name, Selector: p.Selector, Devices: nonNil(g.Devices), Includes: nonNil(g.Includes), Members: p.Members, CreatedAt: g.CreatedAt}
		return writeJSON(w, http.StatusOK, out)
	}
	detail := fmt.Sprintf("selector %q -> %q", g.Selector, p.Selector)
	if len(p.Added) > 0 {
		detail += "; added: " + strings.Join(p.Added, ", ")
	}
	if len(p.Removed) > 0 {
		detail += "; removed: " + strings.Join(p.Removed, ", ")
	}
	err = a.change(r, store.AuditChange, "group.set-selector", name, detail, func(ctx context.Context, c *store.Change) error {
		if err := sameAdded(ctx, a.opts.Store, name, req.Selector, p.Added); err != nil {
			return err
		}
		if err := c.DirtyGroups(ctx, name); err != nil {
			return err
		}
		c.Before, c.After = map[string]string{"selector": g.Selector}, map[string]string{"selector": p.Selector}
		var err error
		g, err = a.opts.Store.SetGroupSelector(ctx, name, req.Selector)
		return err
	})
	if err != nil {
		return err
	}
	v, err := a.loadFleetView(r.Context(), false)
	if err != nil {
		return err
	}
	out.Group = v.group(g)
	return writeJSON(w, http.StatusOK, out)
}

// mayTakeName refuses a group name that a live enrollment token still
// assigns (its group was deleted) to a user without controller:enroll:
// whoever creates the group receives the devices the token enrolls, so
// taking the name is for those who may see and revoke the token.
func (a *API) mayTakeName(r *http.Request, name string) error {
	ids, err := a.opts.Store.LiveTokensNaming(r.Context(), name)
	if err != nil || len(ids) == 0 {
		return err
	}
	v, err := a.view(r.Context())
	if err != nil {
		return err
	}
	user := principalName(r)
	if v.Allowed(user, access.ControllerEnroll, access.ControllerResource()) {
		return nil
	}
	a.auditAs(r, user, store.AuditAccess, "access.denied", "device-group:"+name, "group name held by live enrollment token(s) "+strings.Join(ids, ", "))
	return errorf(http.StatusForbidden, "the group name %s is held by %d live enrollment token(s) that still assign devices to it; a group by that name would receive the devices they enroll, so it needs %s to take it: choose another name, or ask an enrollment admin to revoke them (`edgewarden enroll-tokens ls`)",
		name, len(ids), access.ControllerEnroll)
}

// sameAdded fails, inside a change, when the selector would now add other
// devices than those authorized before the change began (a device was
// labelled meanwhile): what was checked is what is committed.
func sameAdded(ctx context.Context, st Store, group, selector string, checked []string) error {
	p, err := st.PreviewSelector(ctx, group, selector)
	if err != nil {
		return err
	}
	if !slices.Equal(p.Added, checked) {
		return errorf(http.StatusConflict, "the devices selector %q matches changed while group %s was being changed, so nothing changed; run the command again", selector, group)
	}
	return nil
}

// mayAdd checks that the request's user may manage every device in ids, the
// devices a change would add to group: adding a device to a group (by name
// or by selector) hands it to everyone holding grants on the group. A
// refusal names the devices the user may see and only counts the rest, and
// is audited.
func (a *API) mayAdd(r *http.Request, group string, ids []string) error {
	p, ok := principalOf(r)
	if !ok {
		return errorf(http.StatusUnauthorized, "not logged in; run `edgewarden login`")
	}
	v, err := a.view(r.Context())
	if err != nil {
		return err
	}
	var named []string
	hidden := 0
	for _, id := range ids {
		res := v.Device(id)
		if v.Allowed(p.User, access.DeviceManage, res) {
			continue
		}
		if v.Allowed(p.User, access.DeviceView, res) {
			named = append(named, id)
		} else {
			hidden++
		}
	}
	if len(named) == 0 && hidden == 0 {
		return nil
	}
	which := strings.Join(named, ", ")
	switch {
	case hidden > 0 && len(named) > 0:
		which += fmt.Sprintf(" and %d device(s) you cannot see", hidden)
	case hidden > 0:
		which = fmt.Sprintf("%d device(s) you cannot see", hidden)
	}
	a.auditAs(r, p.User, store.AuditAccess, "access.denied", "device-group:"+group, fmt.Sprintf("%s: would add %s", access.DeviceManage, which))
	hint := explainHint(access.DeviceManage, access.ResourceDevice, "DEVICE")
	if len(named) > 0 {
		hint = explainHint(access.DeviceManage, access.ResourceDevice, named[0])
	}
	return errorf(http.StatusForbidden, "%s may not add %s to group %s: adding a device to a group, by name or by selector, hands it to everyone holding grants on the group, so it needs %s on the device; nothing changed. `%s` shows which grant is missing",
		p.User, which, group, access.DeviceManage, hint)
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

// queryBool reads a boolean query parameter: absent is false; a value
// strconv.ParseBool refuses is 400.
func queryBool(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errorf(http.StatusBadRequest, "query parameter %s=%q: want true or false", name, v)
	}
	return b, nil
}
