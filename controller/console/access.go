package console

import (
	"net/http"
	"strings"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/edgewarden/edgewarden/protocol/access"
)

type accessData struct {
	Users  []apiv1.User
	Grants []apiv1.Grant
	Roles  []apiv1.Role
	Teams  []apiv1.Team
	// Invitation is shown once, right after an invite or (Reset) a
	// password reset.
	Invitation *apiv1.Invitation
	Reset      bool
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
	if d.Teams, err = rq.api.ListTeams(rq.ctx()); err != nil {
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

func (c *Console) accessEnable(rq *request) error {
	name := rq.r.PathValue("name")
	if _, err := rq.api.EnableUser(rq.ctx(), name); err != nil {
		return err
	}
	return redirect(rq, "/access", "User "+name+" enabled.")
}

// accessReset resets a user's password: the one-time activation token is
// shown on this answer only, as after an invite.
func (c *Console) accessReset(rq *request) error {
	inv, err := rq.api.ResetPassword(rq.ctx(), rq.r.PathValue("name"), 0)
	if err != nil {
		return err
	}
	d, err := c.accessData(rq)
	if err != nil {
		return err
	}
	d.Invitation, d.Reset = inv, true
	return c.page(rq, "access", "Access", d)
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

func (c *Console) teamCreate(rq *request) error {
	name := strings.TrimSpace(rq.r.PostForm.Get("name"))
	if _, err := rq.api.CreateTeam(rq.ctx(), name); err != nil {
		return err
	}
	return redirect(rq, "/access", "Team "+name+" created.")
}

// teamMembers adds (or with remove=on removes) one user.
func (c *Console) teamMembers(rq *request) error {
	team, f := rq.r.PathValue("name"), rq.r.PostForm
	user := strings.TrimSpace(f.Get("user"))
	var err error
	if f.Get("remove") == "on" {
		_, err = rq.api.RemoveTeamMembers(rq.ctx(), team, []string{user})
	} else {
		_, err = rq.api.AddTeamMembers(rq.ctx(), team, []string{user})
	}
	if err != nil {
		return err
	}
	return redirect(rq, "/access", "Team "+team+" changed.")
}

func (c *Console) teamDelete(rq *request) error {
	team := rq.r.PathValue("name")
	if err := rq.api.DeleteTeam(rq.ctx(), team); err != nil {
		return err
	}
	return redirect(rq, "/access", "Team "+team+" deleted.")
}

type rolesData struct {
	Roles []apiv1.Role
	// Catalogue is the action catalogue by resource type, in catalogue
	// order: the checklist of the role form.
	Catalogue []actionGroup
	// Edit is the role the form edits; nil for a new one.
	Edit *apiv1.Role
}

type actionGroup struct {
	Resource string
	Actions  []access.ActionInfo
}

func (c *Console) rolesPage(rq *request) error {
	var d rolesData
	var err error
	if d.Roles, err = rq.api.ListRoles(rq.ctx()); err != nil {
		return err
	}
	acts, err := rq.api.ListActions(rq.ctx())
	if err != nil {
		return err
	}
	for _, a := range acts {
		if n := len(d.Catalogue); n == 0 || d.Catalogue[n-1].Resource != string(a.Resource) {
			d.Catalogue = append(d.Catalogue, actionGroup{Resource: string(a.Resource)})
		}
		d.Catalogue[len(d.Catalogue)-1].Actions = append(d.Catalogue[len(d.Catalogue)-1].Actions, a)
	}
	if name := rq.r.URL.Query().Get("edit"); name != "" {
		for i := range d.Roles {
			if d.Roles[i].Name == name && !d.Roles[i].Builtin {
				d.Edit = &d.Roles[i]
			}
		}
	}
	return c.page(rq, "roles", "Roles", d)
}

// roleSave creates a role, or replaces the custom role named in the path.
func (c *Console) roleSave(rq *request) error {
	f := rq.r.PostForm
	req := apiv1.RoleRequest{Description: strings.TrimSpace(f.Get("description")), Actions: f["action"], Shareable: f.Get("shareable") == "on"}
	if req.Actions == nil {
		req.Actions = []string{}
	}
	name := rq.r.PathValue("name")
	var err error
	if name == "" {
		req.Name = strings.TrimSpace(f.Get("name"))
		name = req.Name
		_, err = rq.api.CreateRole(rq.ctx(), req)
	} else {
		_, err = rq.api.UpdateRole(rq.ctx(), name, req)
	}
	if err != nil {
		return err
	}
	return redirect(rq, "/access/roles", "Role "+name+" saved.")
}

func (c *Console) roleDelete(rq *request) error {
	name := rq.r.PathValue("name")
	if err := rq.api.DeleteRole(rq.ctx(), name); err != nil {
		return err
	}
	return redirect(rq, "/access/roles", "Role "+name+" deleted.")
}
