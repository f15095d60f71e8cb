package console

import (
	"net/http"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
)

// pageTable declares every page and form target of the console, by area.
// Forms post to their own path; every POST needs the form's CSRF token.
func pageTable() []Page {
	return []Page{
		{Method: "GET", Path: "/login", Access: Public, Calls: []string{"getBanner"}, Summary: "The system-use notification and the login form", h: (*Console).loginPage},
		{Method: "POST", Path: "/login", Access: Public, Calls: []string{"login", "getBanner"}, Summary: "Log in: sets the session cookie", h: (*Console).loginPost},
		{Method: "POST", Path: "/logout", Calls: []string{"logout"}, Summary: "Log out: ends the session on the controller and its cookie", h: (*Console).logoutPost},
		{Method: "GET", Path: "/me", Calls: []string{"checkAccess", "whoami", "getVersion"}, Summary: "Who I am (teams, grants, session), which versions run; change my password", h: (*Console).mePage},
		{Method: "POST", Path: "/me/password", Calls: []string{"changePassword", "whoami", "getVersion"}, Summary: "Change my password (with the old one); my other sessions end", h: (*Console).passwordPost},

		{Method: "GET", Path: "/{$}", Calls: []string{"checkAccess", "fleetStatus", "listDevices", "listGroups"}, Summary: "Fleet overview with filters", h: (*Console).overview},
		{Method: "GET", Path: "/devices/{id}", Calls: []string{"checkAccess", "getDevice", "listEvents"}, Summary: "One device: groups, labels, apps, revisions, events", h: (*Console).devicePage},

		{Method: "POST", Path: "/devices/{id}/approve", Calls: []string{"approveDevice"}, Summary: "Approve a device enrolled with an approval token", h: (*Console).deviceApprove},
		{Method: "POST", Path: "/devices/{id}/labels", Calls: []string{"setDeviceLabels"}, Summary: "Set or remove one label of a device", h: (*Console).deviceLabels},

		{Method: "GET", Path: "/groups", Calls: []string{"checkAccess", "listGroups"}, Summary: "Device groups", h: (*Console).groupsPage},
		{Method: "POST", Path: "/groups", Calls: []string{"createGroup"}, Summary: "Create a group", h: (*Console).groupCreate},
		{Method: "GET", Path: "/groups/{name}", Calls: []string{"checkAccess", "getGroup", "listDevices", "listGroups", "listRoles", "listApps", "listGrants", "getSettings"}, Summary: "One group: members, includes, sharing, what a delete removes", h: (*Console).groupPage},
		{Method: "POST", Path: "/groups/{name}/devices", Calls: []string{"addGroupDevices"}, Summary: "Add devices to a group", h: (*Console).groupAddDevices},
		{Method: "POST", Path: "/groups/{name}/devices/remove", Calls: []string{"removeGroupDevices"}, Summary: "Remove devices from a group", h: (*Console).groupRemoveDevices},
		{Method: "POST", Path: "/groups/{name}/includes", Calls: []string{"includeGroup"}, Summary: "Include another group", h: (*Console).groupInclude},
		{Method: "POST", Path: "/groups/{name}/includes/{child}/remove", Calls: []string{"excludeGroup"}, Summary: "Stop including a group", h: (*Console).groupExclude},
		{Method: "POST", Path: "/groups/{name}/share", Calls: []string{"share"}, Summary: "Share a template role on the group", h: (*Console).groupShare},
		{Method: "POST", Path: "/groups/{name}/rename", Calls: []string{"renameGroup"}, Summary: "Rename a group", h: (*Console).groupRename},
		{Method: "GET", Path: "/groups/{name}/selector", Calls: []string{"checkAccess", "setGroupSelector"}, Summary: "Preview what a label selector would match (the API's dry run; nothing changes)", h: (*Console).selectorPreview},
		{Method: "POST", Path: "/groups/{name}/selector", Calls: []string{"setGroupSelector"}, Summary: "Replace a group's label selector", h: (*Console).groupSelector},
		{Method: "POST", Path: "/groups/{name}/delete", Calls: []string{"deleteGroup"}, Summary: "Delete a group (typed confirmation)", h: (*Console).groupDelete},

		{Method: "GET", Path: "/apps", Calls: []string{"checkAccess", "listApps"}, Summary: "The app catalogue", h: (*Console).appsPage},
		{Method: "GET", Path: "/apps/{name}", Calls: []string{"checkAccess", "getApp", "listGroups", "checkApp"}, Summary: "One app: versions, guidance, assignments and their progress", h: (*Console).appPage},
		{Method: "POST", Path: "/apps/{name}/assign", Calls: []string{"assignApp"}, Summary: "Assign a version to a group", h: (*Console).appAssign},
		{Method: "POST", Path: "/apps/{name}/unassign", Calls: []string{"unassignApp"}, Summary: "Remove an assignment", h: (*Console).appUnassign},

		{Method: "POST", Path: "/apps/{name}/versions/{version}/delete", Calls: []string{"deleteAppVersion"}, Summary: "Delete a version assigned nowhere", h: (*Console).appDeleteVersion},

		{Method: "GET", Path: "/access", Calls: []string{"checkAccess", "listUsers", "listGrants", "listTeams", "listRoles"}, Summary: "Users, teams and grants", h: (*Console).accessPage},
		{Method: "POST", Path: "/access/invite", Calls: []string{"inviteUser", "listUsers", "listGrants", "listTeams", "listRoles"}, Summary: "Invite a user", h: (*Console).accessInvite},
		{Method: "POST", Path: "/access/users/{name}/disable", Calls: []string{"disableUser"}, Summary: "Disable a user", h: (*Console).accessDisable},
		{Method: "POST", Path: "/access/users/{name}/enable", Calls: []string{"enableUser"}, Summary: "Enable a disabled user", h: (*Console).accessEnable},
		{Method: "POST", Path: "/access/users/{name}/reset-password", Calls: []string{"resetUserPassword", "listUsers", "listGrants", "listTeams", "listRoles"}, Summary: "Reset a user's password: a one-time activation token, shown once", h: (*Console).accessReset},
		{Method: "POST", Path: "/access/grants", Calls: []string{"createGrant"}, Summary: "Give a role on a scope", h: (*Console).accessGrant},
		{Method: "POST", Path: "/access/grants/{id}/delete", Calls: []string{"deleteGrant"}, Summary: "Delete a grant", h: (*Console).accessGrantDelete},
		{Method: "POST", Path: "/access/teams", Calls: []string{"createTeam"}, Summary: "Create a team", h: (*Console).teamCreate},
		{Method: "POST", Path: "/access/teams/{name}/members", Calls: []string{"addTeamMembers", "removeTeamMembers"}, Summary: "Add or remove a team member", h: (*Console).teamMembers},
		{Method: "POST", Path: "/access/teams/{name}/delete", Calls: []string{"deleteTeam"}, Summary: "Delete a team", h: (*Console).teamDelete},
		{Method: "GET", Path: "/access/roles", Calls: []string{"checkAccess", "listRoles", "listActions"}, Summary: "Roles, and the action catalogue as a checklist per resource type", h: (*Console).rolesPage},
		{Method: "POST", Path: "/access/roles", Calls: []string{"createRole"}, Summary: "Create a custom role", h: (*Console).roleSave},
		{Method: "POST", Path: "/access/roles/{name}", Calls: []string{"updateRole"}, Summary: "Replace a custom role's description, actions and shareability", h: (*Console).roleSave},
		{Method: "POST", Path: "/access/roles/{name}/delete", Calls: []string{"deleteRole"}, Summary: "Delete a custom role", h: (*Console).roleDelete},
		{Method: "GET", Path: "/access/explain", Calls: []string{"checkAccess"}, Summary: "Explain a decision for any user, action and resource (or oneself)", h: (*Console).explainPage},

		{Method: "GET", Path: "/security", Calls: []string{"checkAccess", "listPublishers", "getSettings"}, Summary: "Publisher keys and the sideload policy", h: (*Console).securityPage},
		{Method: "POST", Path: "/security/publishers", Calls: []string{"addPublisherKey"}, Summary: "Trust a publisher key", h: (*Console).publisherAdd},
		{Method: "POST", Path: "/security/publishers/{name}/remove", Calls: []string{"removePublisher"}, Summary: "Stop trusting a publisher", h: (*Console).publisherRemove},
		{Method: "POST", Path: "/security/publishers/{name}/keys/{key}/remove", Calls: []string{"removePublisherKey"}, Summary: "Stop trusting one key", h: (*Console).publisherKeyRemove},
		{Method: "POST", Path: "/security/sideload", Calls: []string{"setSideload", "setGroupSideload", "deleteGroupSideload"}, Summary: "Set the global sideload policy or a group's override", h: (*Console).sideloadSet},
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
