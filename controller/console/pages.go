package console

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
)

// pageTable declares every page and form target of the console, by area.
// Forms post to their own path; every POST needs the form's CSRF token.
func pageTable() []Page {
	return []Page{
		{Method: "GET", Path: "/login", Access: Public, Calls: []string{"getBanner"}, Summary: "The system-use notification and the login form", h: (*Console).loginPage},
		{Method: "POST", Path: "/login", Access: Public, Calls: []string{"login", "getBanner"}, Summary: "Log in: sets the session cookie", h: (*Console).loginPost},
		{Method: "POST", Path: "/logout", Summary: "Log out: ends the session cookie", h: (*Console).logoutPost},
		{Method: "GET", Path: "/me", Calls: []string{"checkAccess", "getVersion"}, Summary: "Who I am and which versions run", h: (*Console).mePage},

		{Method: "GET", Path: "/{$}", Calls: []string{"checkAccess", "fleetStatus", "listDevices", "listGroups"}, Summary: "Fleet overview with filters", h: (*Console).overview},
		{Method: "GET", Path: "/devices/{id}", Calls: []string{"checkAccess", "getDevice", "listEvents"}, Summary: "One device: groups, labels, apps, revisions, events", h: (*Console).devicePage},

		{Method: "GET", Path: "/groups", Calls: []string{"checkAccess", "listGroups"}, Summary: "Device groups", h: (*Console).groupsPage},
		{Method: "POST", Path: "/groups", Calls: []string{"createGroup"}, Summary: "Create a group", h: (*Console).groupCreate},
		{Method: "GET", Path: "/groups/{name}", Calls: []string{"checkAccess", "getGroup", "listDevices", "listGroups", "listRoles", "listApps", "listGrants", "getSettings"}, Summary: "One group: members, includes, sharing, what a delete removes", h: (*Console).groupPage},
		{Method: "POST", Path: "/groups/{name}/devices", Calls: []string{"addGroupDevices"}, Summary: "Add devices to a group", h: (*Console).groupAddDevices},
		{Method: "POST", Path: "/groups/{name}/devices/remove", Calls: []string{"removeGroupDevices"}, Summary: "Remove devices from a group", h: (*Console).groupRemoveDevices},
		{Method: "POST", Path: "/groups/{name}/includes", Calls: []string{"includeGroup"}, Summary: "Include another group", h: (*Console).groupInclude},
		{Method: "POST", Path: "/groups/{name}/share", Calls: []string{"share"}, Summary: "Share a template role on the group", h: (*Console).groupShare},
		{Method: "POST", Path: "/groups/{name}/delete", Calls: []string{"deleteGroup"}, Summary: "Delete a group (typed confirmation)", h: (*Console).groupDelete},

		{Method: "GET", Path: "/apps", Calls: []string{"checkAccess", "listApps"}, Summary: "The app catalogue", h: (*Console).appsPage},
		{Method: "GET", Path: "/apps/{name}", Calls: []string{"checkAccess", "getApp", "listGroups", "checkApp"}, Summary: "One app: versions, guidance, assignments and their progress", h: (*Console).appPage},
		{Method: "POST", Path: "/apps/{name}/assign", Calls: []string{"assignApp"}, Summary: "Assign a version to a group", h: (*Console).appAssign},
		{Method: "POST", Path: "/apps/{name}/unassign", Calls: []string{"unassignApp"}, Summary: "Remove an assignment", h: (*Console).appUnassign},

		{Method: "GET", Path: "/access", Calls: []string{"checkAccess", "listUsers", "listGrants", "listRoles"}, Summary: "Users and grants", h: (*Console).accessPage},
		{Method: "POST", Path: "/access/invite", Calls: []string{"inviteUser"}, Summary: "Invite a user", h: (*Console).accessInvite},
		{Method: "POST", Path: "/access/users/{name}/disable", Calls: []string{"disableUser"}, Summary: "Disable a user", h: (*Console).accessDisable},
		{Method: "POST", Path: "/access/grants", Calls: []string{"createGrant"}, Summary: "Give a role on a scope", h: (*Console).accessGrant},
		{Method: "POST", Path: "/access/grants/{id}/delete", Calls: []string{"deleteGrant"}, Summary: "Delete a grant", h: (*Console).accessGrantDelete},
		{Method: "GET", Path: "/access/explain", Calls: []string{"checkAccess"}, Summary: "Explain a decision for any user, action and resource (or oneself)", h: (*Console).explainPage},

		{Method: "GET", Path: "/security", Calls: []string{"checkAccess", "listPublishers", "getSettings"}, Summary: "Publisher keys and the sideload policy", h: (*Console).securityPage},
		{Method: "GET", Path: "/security/audit", Calls: []string{"checkAccess", "listAudit"}, Summary: "The audit log with filters", h: (*Console).auditPage},
		{Method: "GET", Path: "/security/audit.jsonl", Calls: []string{"listAudit"}, Summary: "The filtered audit log as JSON lines", h: (*Console).auditExport},
	}
}

// me is the logged-in user and the controller-wide actions the navigation
// offers. It decides nothing: each page's API calls do.
type me struct {
	User string
	Can  map[string]bool
}

// navActions are the controller-wide actions the console asks about for
// the navigation and the forms it offers.
var navActions = []string{
	"controller:manage-users", "controller:manage-roles", "controller:audit", "controller:trust",
	"controller:settings", "controller:create-device-group",
}

func (c *Console) whoami(rq *request) (*me, error) {
	if rq.me != nil {
		return rq.me, nil
	}
	m := &me{Can: map[string]bool{}}
	for _, a := range navActions {
		d, err := rq.api.CheckAccess(rq.ctx(), apiv1.AccessCheckRequest{Action: a})
		if err != nil {
			return nil, err
		}
		m.User, m.Can[a] = d.User, d.Allowed
	}
	rq.me = m
	return m, nil
}

// page renders a session page: the user first, so a stale session goes
// back to the login page before anything else is asked.
func (c *Console) page(rq *request, name, title string, data any) error {
	if _, err := c.whoami(rq); err != nil {
		return err
	}
	c.render(rq.w, rq.r, rq, http.StatusOK, name, pageData{Title: title, Data: data})
	return nil
}

// forbidden reports whether err is the API's refusal (403): a section the
// user may not see is left out, not an error of the page.
func forbidden(err error) bool { return client.IsStatus(err, http.StatusForbidden) }

// --- session ---

type loginData struct {
	Banner, Next, Msg, User, Error string
}

func (c *Console) loginPage(rq *request) error {
	ck, err := rq.r.Cookie(loginCookie)
	if err != nil || ck.Value == "" {
		secret := randomToken()
		http.SetCookie(rq.w, &http.Cookie{Name: loginCookie, Value: secret, Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode, MaxAge: 3600})
		rq.csrf = c.csrfToken("login", secret)
	}
	b, err := rq.api.Banner(rq.ctx())
	if err != nil {
		return err
	}
	c.render(rq.w, rq.r, rq, http.StatusOK, "login", pageData{Title: "Log in", Data: loginData{Banner: b.Banner, Next: safeNext(rq.r.FormValue("next")), Msg: rq.r.FormValue("msg")}})
	return nil
}

func (c *Console) loginPost(rq *request) error {
	f := rq.r.PostForm
	resp, err := rq.api.Login(rq.ctx(), f.Get("user"), f.Get("password"))
	if err != nil {
		var ce *client.Error
		if !asClientError(err, &ce) {
			return err
		}
		b, berr := rq.api.Banner(rq.ctx())
		if berr != nil {
			return berr
		}
		c.render(rq.w, rq.r, rq, ce.Status, "login", pageData{Title: "Log in", Data: loginData{Banner: b.Banner, Next: safeNext(f.Get("next")), User: f.Get("user"), Error: ce.Message}})
		return nil
	}
	http.SetCookie(rq.w, &http.Cookie{Name: sessionCookie, Value: resp.Token, Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode, Expires: resp.ExpiresAt})
	clearCookie(rq.w, loginCookie)
	next := safeNext(f.Get("next"))
	if next == "" {
		next = "/"
	}
	http.Redirect(rq.w, rq.r, next, http.StatusSeeOther)
	return nil
}

func (c *Console) logoutPost(rq *request) error {
	clearCookie(rq.w, sessionCookie)
	http.Redirect(rq.w, rq.r, "/login?msg="+strings.ReplaceAll("Logged out.", " ", "+"), http.StatusSeeOther)
	return nil
}

// safeNext keeps a post-login target only if it is a path on this
// controller (no scheme, no host, no protocol-relative //).
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return ""
	}
	return next
}

type meData struct {
	Version *apiv1.Version
}

func (c *Console) mePage(rq *request) error {
	v, err := rq.api.Version(rq.ctx())
	if err != nil {
		return err
	}
	return c.page(rq, "me", "Me", meData{Version: v})
}

// --- fleet ---

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

// --- groups ---

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
	if err := rq.api.DeleteGroup(rq.ctx(), name); err != nil {
		return err
	}
	return redirect(rq, "/groups", "Group "+name+" deleted.")
}

// --- apps ---

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

// --- access ---

type accessData struct {
	Users  []apiv1.User
	Grants []apiv1.Grant
	Roles  []apiv1.Role
	// Invitation is shown once, right after an invite.
	Invitation *apiv1.Invitation
}

func (c *Console) accessData(rq *request) (accessData, error) {
	var d accessData
	var err error
	if d.Users, err = rq.api.ListUsers(rq.ctx()); err != nil {
		return d, err
	}
	if d.Grants, err = rq.api.ListGrants(rq.ctx()); err != nil {
		return d, err
	}
	d.Roles, err = rq.api.ListRoles(rq.ctx())
	return d, err
}

func (c *Console) accessPage(rq *request) error {
	d, err := c.accessData(rq)
	if err != nil {
		return err
	}
	return c.page(rq, "access", "Access", d)
}

func (c *Console) accessInvite(rq *request) error {
	inv, err := rq.api.InviteUser(rq.ctx(), apiv1.InviteRequest{Name: strings.TrimSpace(rq.r.PostForm.Get("name"))})
	if err != nil {
		return err
	}
	// The activation token is shown once, on this answer, never in a URL.
	d, err := c.accessData(rq)
	if err != nil {
		return err
	}
	d.Invitation = inv
	return c.page(rq, "access", "Access", d)
}

func (c *Console) accessDisable(rq *request) error {
	name := rq.r.PathValue("name")
	if _, err := rq.api.DisableUser(rq.ctx(), name); err != nil {
		return err
	}
	return redirect(rq, "/access", "User "+name+" disabled.")
}

func (c *Console) accessGrant(rq *request) error {
	f := rq.r.PostForm
	req := apiv1.CreateGrantRequest{Role: f.Get("role")}
	if f.Get("kind") == "team" {
		req.Team = strings.TrimSpace(f.Get("subject"))
	} else {
		req.User = strings.TrimSpace(f.Get("subject"))
	}
	scope := strings.TrimSpace(f.Get("scope"))
	switch f.Get("scope_kind") {
	case "group":
		req.Group = scope
	case "device":
		req.Device = scope
	case "app":
		req.App = scope
	}
	gr, err := rq.api.CreateGrant(rq.ctx(), req)
	if err != nil {
		return err
	}
	return redirect(rq, "/access", "Granted "+gr.Role+" to "+gr.Subject.Name+".")
}

func (c *Console) accessGrantDelete(rq *request) error {
	if err := rq.api.DeleteGrant(rq.ctx(), rq.r.PathValue("id")); err != nil {
		return err
	}
	return redirect(rq, "/access", "Grant deleted.")
}

type explainData struct {
	Req      apiv1.AccessCheckRequest
	Decision *apiv1.AccessDecision
	Error    string
}

// explainPage asks the API's explain (POST /access/check, which changes
// nothing) from a GET form, so a result can be linked.
func (c *Console) explainPage(rq *request) error {
	q := rq.r.URL.Query()
	d := explainData{Req: apiv1.AccessCheckRequest{User: q.Get("user"), Action: q.Get("action"), Device: q.Get("device"), Group: q.Get("group"), App: q.Get("app")}}
	if d.Req.Action != "" {
		var err error
		d.Decision, err = rq.api.CheckAccess(rq.ctx(), d.Req)
		var ce *client.Error
		if asClientError(err, &ce) && ce.Status != http.StatusUnauthorized && ce.Status != http.StatusForbidden {
			d.Error, err = ce.Message, nil
		}
		if err != nil {
			return err
		}
	}
	return c.page(rq, "explain", "Explain", d)
}

// --- security ---

type securityData struct {
	Publishers []apiv1.Publisher
	Settings   *apiv1.Settings
}

func (c *Console) securityPage(rq *request) error {
	var d securityData
	var err error
	d.Publishers, err = rq.api.ListPublishers(rq.ctx())
	if err != nil && !client.IsStatus(err, http.StatusServiceUnavailable) {
		return err
	}
	if d.Settings, err = rq.api.Settings(rq.ctx()); err != nil {
		return err
	}
	return c.page(rq, "security", "Security", d)
}

type auditData struct {
	Entries []apiv1.AuditEntry
	Filter  auditFilter
	Export  string
}

type auditFilter struct{ Kind, Since, Actor, Action string }

// auditEntries reads the audit log with the API's filters (kind, since)
// and narrows it by actor and action.
func (c *Console) auditEntries(rq *request) ([]apiv1.AuditEntry, auditFilter, error) {
	q := rq.r.URL.Query()
	f := auditFilter{Kind: q.Get("kind"), Since: q.Get("since"), Actor: strings.TrimSpace(q.Get("actor")), Action: strings.TrimSpace(q.Get("action"))}
	af := client.AuditFilter{Kind: f.Kind}
	if f.Since != "" {
		t, err := parseSince(f.Since, c.now())
		if err != nil {
			return nil, f, &client.Error{Status: http.StatusBadRequest, Message: err.Error()}
		}
		af.Since = t
	}
	es, err := rq.api.ListAudit(rq.ctx(), af)
	if err != nil {
		return nil, f, err
	}
	out := es[:0]
	for _, e := range es {
		if (f.Actor == "" || e.Actor == f.Actor) && (f.Action == "" || strings.HasPrefix(e.Action, f.Action)) {
			out = append(out, e)
		}
	}
	return out, f, nil
}

func (c *Console) auditPage(rq *request) error {
	es, f, err := c.auditEntries(rq)
	if err != nil {
		return err
	}
	return c.page(rq, "audit", "Audit log", auditData{Entries: es, Filter: f, Export: "/security/audit.jsonl?" + rq.r.URL.RawQuery})
}

// auditExport writes the filtered audit log as JSON lines, one entry a
// line, as a download.
func (c *Console) auditExport(rq *request) error {
	es, _, err := c.auditEntries(rq)
	if err != nil {
		return err
	}
	rq.w.Header().Set("Content-Type", "application/jsonl; charset=utf-8")
	rq.w.Header().Set("Content-Disposition", `attachment; filename="edgewarden-audit.jsonl"`)
	return writeJSONLines(rq.w, es)
}

// parseSince reads an RFC 3339 time, a date (2006-01-02) or a duration
// back from now ("24h").
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errSince(s)
}
