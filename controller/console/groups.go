package console

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
)

func (c *Console) groupsPage(rq *request) error {
	gs, err := rq.api.ListGroups(rq.ctx())
	if err != nil {
		return err
	}
	return c.page(rq, "groups", "Groups", gs)
}

func (c *Console) groupCreate(rq *request) error {
	f := rq.r.PostForm
	g, err := rq.api.CreateGroup(rq.ctx(), strings.TrimSpace(f.Get("name")), strings.TrimSpace(f.Get("selector")))
	if err != nil {
		return err
	}
	return redirect(rq, "/groups/"+pathEscape(g.Name), "Group "+g.Name+" created.")
}

type groupData struct {
	Group *apiv1.Group
	// Candidates are the devices the user sees that are not direct
	// members, filtered by the search Q.
	Candidates []apiv1.Device
	Q          string
	Others     []apiv1.Group
	Roles      []apiv1.Role
	// What a delete removes.
	Assignments []apiv1.AppAssignment
	Grants      []apiv1.Grant
	Sideload    string
}

func (c *Console) groupPage(rq *request) error {
	name := rq.r.PathValue("name")
	g, err := rq.api.GetGroup(rq.ctx(), name)
	if err != nil {
		return err
	}
	d := groupData{Group: g, Q: strings.TrimSpace(rq.r.URL.Query().Get("q"))}
	devs, err := rq.api.ListDevices(rq.ctx())
	if err != nil {
		return err
	}
	for _, dv := range devs {
		if !slices.Contains(g.Devices, dv.ID) && (d.Q == "" || strings.Contains(dv.ID, d.Q)) {
			d.Candidates = append(d.Candidates, dv)
		}
	}
	gs, err := rq.api.ListGroups(rq.ctx())
	if err != nil {
		return err
	}
	for _, o := range gs {
		if o.Name != g.Name && !slices.Contains(g.Includes, o.Name) {
			d.Others = append(d.Others, o)
		}
	}
	roles, err := rq.api.ListRoles(rq.ctx())
	if err != nil {
		return err
	}
	for _, r := range roles {
		if r.Shareable {
			d.Roles = append(d.Roles, r)
		}
	}
	apps, err := rq.api.ListApps(rq.ctx())
	if err != nil && !client.IsStatus(err, http.StatusServiceUnavailable) {
		return err
	}
	for _, a := range apps {
		for _, as := range a.Assignments {
			if as.Group == g.Name {
				d.Assignments = append(d.Assignments, as)
			}
		}
	}
	grants, err := rq.api.ListGrants(rq.ctx())
	if err != nil {
		return err
	}
	for _, gr := range grants {
		if gr.Scope.Name == g.Name && string(gr.Scope.Kind) == "device-group" {
			d.Grants = append(d.Grants, gr)
		}
	}
	st, err := rq.api.Settings(rq.ctx())
	if err != nil {
		return err
	}
	for _, o := range st.SideloadOverrides {
		if o.Group == g.Name {
			d.Sideload = o.Policy
		}
	}
	return c.page(rq, "group", "Group "+g.Name, d)
}

func (c *Console) groupAddDevices(rq *request) error {
	name := rq.r.PathValue("name")
	devs := rq.r.PostForm["device"]
	if len(devs) == 0 {
		return &client.Error{Status: http.StatusBadRequest, Message: "Select at least one device to add."}
	}
	g, err := rq.api.AddGroupDevices(rq.ctx(), name, devs)
	if err != nil {
		return err
	}
	return redirect(rq, "/groups/"+pathEscape(g.Name), "Added "+strings.Join(devs, ", ")+".")
}

func (c *Console) groupRemoveDevices(rq *request) error {
	name := rq.r.PathValue("name")
	devs := rq.r.PostForm["device"]
	if len(devs) == 0 {
		return &client.Error{Status: http.StatusBadRequest, Message: "Select at least one device to remove."}
	}
	g, err := rq.api.RemoveGroupDevices(rq.ctx(), name, devs)
	if err != nil {
		return err
	}
	return redirect(rq, "/groups/"+pathEscape(g.Name), "Removed "+strings.Join(devs, ", ")+".")
}

func (c *Console) groupInclude(rq *request) error {
	name, child := rq.r.PathValue("name"), rq.r.PostForm.Get("group")
	g, err := rq.api.IncludeGroup(rq.ctx(), name, child)
	if err != nil {
		return err
	}
	return redirect(rq, "/groups/"+pathEscape(g.Name), g.Name+" now includes "+child+".")
}

func (c *Console) groupShare(rq *request) error {
	f := rq.r.PostForm
	req := apiv1.ShareRequest{Group: rq.r.PathValue("name"), Role: f.Get("role")}
	if f.Get("kind") == "team" {
		req.Team = strings.TrimSpace(f.Get("subject"))
	} else {
		req.User = strings.TrimSpace(f.Get("subject"))
	}
	gr, err := rq.api.Share(rq.ctx(), req)
	if err != nil {
		return err
	}
	return redirect(rq, "/groups/"+pathEscape(req.Group), "Shared "+gr.Role+" with "+string(gr.Subject.Kind)+" "+gr.Subject.Name+".")
}

func (c *Console) groupDelete(rq *request) error {
	name := rq.r.PathValue("name")
	if rq.r.PostForm.Get("confirm") != name {
		return &client.Error{Status: http.StatusBadRequest, Message: "Type the group's name (" + name + ") to confirm the delete; nothing was deleted."}
	}
	// The page listed what goes with the group and the user typed its
	// name: that is the explicit --force of the CLI.
	if err := rq.api.DeleteGroup(rq.ctx(), name, true); err != nil {
		return err
	}
	return redirect(rq, "/groups", "Group "+name+" deleted.")
}

func (c *Console) groupExclude(rq *request) error {
	name, child := rq.r.PathValue("name"), rq.r.PathValue("child")
	if err := rq.api.ExcludeGroup(rq.ctx(), name, child); err != nil {
		return err
	}
	return redirect(rq, "/groups/"+pathEscape(name), name+" no longer includes "+child+".")
}

func (c *Console) groupRename(rq *request) error {
	name, to := rq.r.PathValue("name"), strings.TrimSpace(rq.r.PostForm.Get("to"))
	g, err := rq.api.RenameGroup(rq.ctx(), name, to)
	if err != nil {
		return err
	}
	return redirect(rq, "/groups/"+pathEscape(g.Name), "Group "+name+" is now "+g.Name+".")
}

type selectorData struct {
	Selector string
	Change   *apiv1.SelectorChange
	Error    string
}

// selectorPreview answers what a selector would match, from the API's
// dry run (nothing changes); htmx shows it under the selector field as the
// user types.
func (c *Console) selectorPreview(rq *request) error {
	d := selectorData{Selector: strings.TrimSpace(rq.r.URL.Query().Get("selector"))}
	var err error
	d.Change, err = rq.api.SetGroupSelector(rq.ctx(), rq.r.PathValue("name"), d.Selector, true)
	var ce *client.Error
	if asClientError(err, &ce) && ce.Status != http.StatusUnauthorized {
		d.Change, d.Error, err = nil, ce.Message, nil
	}
	if err != nil {
		return err
	}
	return c.page(rq, "selector", "Selector preview", d)
}

func (c *Console) groupSelector(rq *request) error {
	name, sel := rq.r.PathValue("name"), strings.TrimSpace(rq.r.PostForm.Get("selector"))
	ch, err := rq.api.SetGroupSelector(rq.ctx(), name, sel, false)
	if err != nil {
		return err
	}
	return redirect(rq, "/groups/"+pathEscape(name), fmt.Sprintf("Selector set: %d device(s) joined, %d left.", len(ch.Added), len(ch.Removed)))
}
