package console

import (
	"net/http"
	"slices"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
)

func (c *Console) appsPage(rq *request) error {
	apps, err := rq.api.ListApps(rq.ctx())
	if err != nil {
		return err
	}
	return c.page(rq, "apps", "Apps", apps)
}

type appData struct {
	App    *apiv1.App
	Groups []apiv1.Group
	// Progress per assignment: how many of the group's devices run it.
	Progress map[string]progress
	Check    *apiv1.CheckResult
	CheckErr string
	Pick     struct{ Version, Group string }
}

type progress struct{ Running, Failed, Total int }

func (c *Console) appPage(rq *request) error {
	name := rq.r.PathValue("name")
	app, err := rq.api.GetApp(rq.ctx(), name)
	if err != nil {
		return err
	}
	d := appData{App: app, Progress: map[string]progress{}}
	if d.Groups, err = rq.api.ListGroups(rq.ctx()); err != nil {
		return err
	}
	members := map[string][]string{}
	for _, g := range d.Groups {
		members[g.Name] = g.Members
	}
	for _, as := range app.Assignments {
		var p progress
		for _, dv := range app.Devices {
			if !slices.Contains(members[as.Group], dv.Device) {
				continue
			}
			p.Total++
			switch {
			case dv.Version == as.Version && dv.State == "running":
				p.Running++
			case dv.State == "failed" || dv.State == "quarantined":
				p.Failed++
			}
		}
		d.Progress[as.Group] = p
	}
	q := rq.r.URL.Query()
	d.Pick.Version, d.Pick.Group = q.Get("version"), q.Get("group")
	if d.Pick.Version != "" && d.Pick.Group != "" {
		d.Check, err = rq.api.CheckApp(rq.ctx(), name, d.Pick.Version, d.Pick.Group, false)
		var ce *client.Error
		if asClientError(err, &ce) && ce.Status != http.StatusUnauthorized {
			d.CheckErr, err = ce.Message, nil
		}
		if err != nil {
			return err
		}
	}
	return c.page(rq, "app", "App "+name, d)
}

func (c *Console) appAssign(rq *request) error {
	name, f := rq.r.PathValue("name"), rq.r.PostForm
	req := apiv1.AssignRequest{Version: f.Get("version"), Group: f.Get("group"), Force: f.Get("force") == "on"}
	res, err := rq.api.AssignApp(rq.ctx(), name, req)
	if err != nil {
		return err
	}
	return redirect(rq, "/apps/"+pathEscape(name), "Assigned "+name+" "+res.Assignment.Version+" to "+res.Assignment.Group+" ("+res.Check.Verdict+").")
}

func (c *Console) appUnassign(rq *request) error {
	name, group := rq.r.PathValue("name"), rq.r.PostForm.Get("group")
	if err := rq.api.UnassignApp(rq.ctx(), name, group); err != nil {
		return err
	}
	return redirect(rq, "/apps/"+pathEscape(name), "Unassigned "+name+" from "+group+".")
}

func (c *Console) appDeleteVersion(rq *request) error {
	name, version := rq.r.PathValue("name"), rq.r.PathValue("version")
	if err := rq.api.DeleteAppVersion(rq.ctx(), name, version); err != nil {
		return err
	}
	return redirect(rq, "/apps/"+pathEscape(name), "Deleted "+name+" "+version+".")
}
