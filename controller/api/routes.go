package api

import (
	"context"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/protocol/access"
)

// Auth is how a route authenticates and authorizes its caller.
type Auth int

const (
	// Authorized (the default): a session whose user holds the route's
	// Action on its resource. The middleware decides before the handler
	// runs; a refusal is 403 and is audited.
	Authorized Auth = iota
	// Public: no session (login, banner, enrollment, activation, the
	// OpenAPI document).
	Public
	// Authenticated: any active user's session. What the handler then
	// allows is the route's Rule: self-service (the session's own user)
	// or a decision that depends on the body (grants, shares).
	Authenticated
	// Device: the device's client certificate (mutual TLS), for agents.
	Device
)

func (a Auth) String() string {
	switch a {
	case Public:
		return "public"
	case Authenticated:
		return "authenticated"
	case Device:
		return "device"
	}
	return "authorized"
}

// Check is a further permission a handler checks once it has read the
// request body, on top of the route's own Action.
type Check struct {
	// Action is the permission; empty when the rule is not one action
	// (e.g. "no escalation": every action of a role).
	Action access.Action
	// On says on what it is checked, and why.
	On string
}

// Param is a query or header parameter of a route.
type Param struct {
	Name     string
	In       string // "query" or "header"
	Doc      string
	Schema   string // its JSON Schema, as JSON
	Required bool
}

// Route is one endpoint: its contract (method, path, types, statuses) and
// who may call it. The route table (routeTable) is the one place both are
// declared: the mux, the authorization middleware, the OpenAPI document
// and the tests all read it.
type Route struct {
	Method, Path string
	// Op is the OpenAPI operationId; Tag groups operations.
	Op, Tag string
	// Summary is one line; Doc more, when needed.
	Summary, Doc string

	// Request and Response are the apiv1 types of the JSON bodies; nil
	// for none. RequestMedia and ResponseMedia name a body that is not
	// JSON (multipart push, artifact bytes, the YAML document).
	Request, Response           reflect.Type
	RequestMedia, ResponseMedia string
	// RequestSchema is the JSON Schema (as JSON) of a RequestMedia body.
	RequestSchema string
	// Status is the status of success and Result what it means.
	Status int
	Result string
	// Errors are the error statuses the handler answers besides those
	// the middleware and decoder give (401, 403, 405, 413, 415, 500);
	// Responses describe statuses whose meaning is particular to the
	// route.
	Errors    []int
	Responses map[int]string
	Query     []Param

	Auth Auth
	// Action is what an Authorized route needs. Its resource is:
	//   - List: none; the handler shows only what the user holds Action on
	//     (filtered with visible, through the same evaluator);
	//   - Body: the object the body names (the handler calls authorizeBody);
	//   - Param: the object named by that path parameter, of type On
	//     (default: the action's own resource type);
	//   - otherwise the controller.
	Action access.Action
	Param  string
	On     access.ResourceType
	List   bool
	Body   string
	// Also lists the permissions the handler checks further, once the
	// body says on what.
	Also []Check
	// Rule says who may call an Authenticated route.
	Rule string

	h func(*API, http.ResponseWriter, *http.Request) error
}

// Pattern is the route's http.ServeMux pattern.
func (rt *Route) Pattern() string { return rt.Method + " " + rt.Path }

// resourceType is the type of the resource the middleware decides on.
func (rt *Route) resourceType() access.ResourceType {
	switch {
	case rt.Param == "":
		return access.ResourceController
	case rt.On != "":
		return rt.On
	}
	return rt.Action.ResourceType()
}

// Permission describes, in words, what calling the route takes.
func (rt *Route) Permission() string {
	switch rt.Auth {
	case Public:
		return "public: no session"
	case Device:
		return "the device's client certificate (mutual TLS)"
	case Authenticated:
		return "any session; " + rt.Rule
	}
	var s string
	switch {
	case rt.List:
		s = string(rt.Action) + ", filtered: lists what the caller holds it on"
	case rt.Body != "":
		s = string(rt.Action) + " on " + rt.Body
	case rt.Param != "":
		s = string(rt.Action) + " on the " + string(rt.resourceType()) + " {" + rt.Param + "}"
	default:
		s = string(rt.Action) + " (global)"
	}
	for _, c := range rt.Also {
		if c.Action != "" {
			s += "; and " + string(c.Action) + " on " + c.On
		} else {
			s += "; and " + c.On
		}
	}
	return s
}

// Routes returns the route table.
func Routes() []Route { return routeTable() }

type routeKey struct{}

// routeOf returns the route serving r.
func routeOf(r *http.Request) *Route {
	rt, _ := r.Context().Value(routeKey{}).(*Route)
	return rt
}

// routes registers every route of the table, and the fallback that answers
// 405 (with Allow) for a known path with another method and 404 otherwise.
func (a *API) routes() {
	for _, rt := range a.table {
		a.mux.Handle(rt.Pattern(), a.serve(rt))
	}
	a.mux.Handle("/", a.serve(&Route{Auth: Public, h: (*API).notFound}))
}

// serve is the one middleware: it authenticates and authorizes the request
// as rt declares, then runs the handler, and writes any error as an
// apiv1.Error.
func (a *API) serve(rt *Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		r = r.WithContext(context.WithValue(r.Context(), routeKey{}, rt))
		r, err := a.admit(r, rt)
		if err == nil {
			err = rt.h(a, w, r)
		}
		if err != nil {
			a.writeError(w, r, err)
		}
	})
}

// admit authenticates and authorizes r for rt, returning r with its
// principal.
func (a *API) admit(r *http.Request, rt *Route) (*http.Request, error) {
	switch rt.Auth {
	case Public:
		return r, nil
	case Device:
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			return r, errorf(http.StatusUnauthorized, "this endpoint is for devices: it needs the device's client certificate (mutual TLS)")
		}
		return r, nil
	}
	p, err := a.authenticate(r)
	if err != nil {
		return r, err
	}
	r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
	if rt.Auth == Authenticated || rt.List || rt.Body != "" {
		return r, nil
	}
	id := ""
	if rt.Param != "" {
		id = r.PathValue(rt.Param)
	}
	return r, a.authorize(r, rt.Action, rt.resourceType(), id)
}

// notFound answers a request no route matches: 405 with Allow when the
// path exists with other methods, 404 otherwise.
func (a *API) notFound(w http.ResponseWriter, r *http.Request) error {
	var allow []string
	for _, rt := range a.table {
		if pathMatches(rt.Path, r.URL.Path) && !slices.Contains(allow, rt.Method) {
			allow = append(allow, rt.Method)
			if rt.Method == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
	}
	if len(allow) > 0 {
		slices.Sort(allow)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return errorf(http.StatusMethodNotAllowed, "%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allow, ", "))
	}
	return errorf(http.StatusNotFound, "no such endpoint: %s %s (GET /api/v1/openapi.json lists the endpoints)", r.Method, r.URL.Path)
}

// pathMatches reports whether path matches pattern, whose {name} segments
// match any one non-empty segment.
func pathMatches(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i, p := range ps {
		if strings.HasPrefix(p, "{") {
			if xs[i] == "" {
				return false
			}
			continue
		}
		if p != xs[i] {
			return false
		}
	}
	return true
}

// routeTable declares every endpoint. Keep it in the order of the OpenAPI
// document: by area, then listing, creation, reading, change, deletion.
func routeTable() []Route {
	return []Route{
		{
			Method: "POST", Path: "/api/v1/login", Op: "login", Tag: "session",
			Summary: "Log in with a user name and password",
			Doc: `Returns a session token (a JWT) and the system-use banner. After 5 failed
logins from one source address, each further attempt from it waits a delay that
doubles from 1 s to 15 min (429 with Retry-After); after 10 failures for one
account, the same applies to it from every source that has failed before. A
source with no failures is never slowed.`,
			Request:  reflect.TypeFor[apiv1.LoginRequest](),
			Response: reflect.TypeFor[apiv1.LoginResponse](),
			Status:   200, Result: "Logged in.",
			Errors: []int{400, 401, 413, 415, 429},
			Auth:   Public,
			h:      (*API).login,
		},
		{
			Method: "GET", Path: "/api/v1/whoami", Op: "whoami", Tag: "session",
			Summary:  "Who the session's user is: name, id, teams and the grants to it or its teams",
			Response: reflect.TypeFor[apiv1.WhoAmI](),
			Status:   200, Result: "The session's user.",
			Errors: []int{401, 501},
			Auth:   Authenticated, Rule: "self-service: about the session's own user",
			h: (*API).whoami,
		},
		{
			Method: "POST", Path: "/api/v1/logout", Op: "logout", Tag: "session",
			Summary: "End the session on the controller (all=true: every session of its user)",
			Doc: `The session token is refused from then on, also for anyone holding a copy of
it. With all=true every session of the user ends (a new session generation).`,
			Status: 204, Result: "Logged out.",
			Errors: []int{400, 401, 501},
			Query:  []Param{{Name: "all", In: "query", Doc: "End every session of the user, not only this one.", Schema: `{"type": "boolean"}`}},
			Auth:   Authenticated, Rule: "self-service: the session's own user",
			h: (*API).logout,
		},
		{
			Method: "POST", Path: "/api/v1/password", Op: "changePassword", Tag: "session",
			Summary: "Change one's own password, with the old one",
			Doc: `The new password must meet the policy (at least 12 characters, not a common
password). Every session of the user ends; the answer carries a new session
for the caller. A wrong old password counts as a failed login for the login
throttle (429 once it applies).`,
			Request:  reflect.TypeFor[apiv1.PasswordChangeRequest](),
			Response: reflect.TypeFor[apiv1.LoginResponse](),
			Status:   200, Result: "Changed; token is the caller's new session.",
			Errors:    []int{400, 401, 413, 415, 429, 501},
			Responses: map[int]string{403: "The old password is wrong; nothing changed."},
			Auth:      Authenticated, Rule: "self-service: the session's own user, who must give the old password",
			h: (*API).changePassword,
		},
		{
			Method: "GET", Path: "/api/v1/version", Op: "getVersion", Tag: "session",
			Summary:  "Which controller answers: build version, API version, document schema",
			Response: reflect.TypeFor[apiv1.Version](),
			Status:   200, Result: "The versions.",
			Errors: []int{401},
			Auth:   Authenticated, Rule: "every logged-in user: versions hold nothing secret, but tell a stranger which build to aim at",
			h: (*API).version,
		},
		{
			Method: "GET", Path: "/api/v1/banner", Op: "getBanner", Tag: "session",
			Summary:  "Read the system-use banner (shown before login)",
			Response: reflect.TypeFor[apiv1.Banner](),
			Status:   200, Result: "The banner; empty when none is set.",
			Auth: Public,
			h:    (*API).banner,
		},
		{
			Method: "POST", Path: "/api/v1/enroll", Op: "enroll", Tag: "enrollment",
			Summary: "Enroll a device with an enrollment token and a certificate request",
			Doc: `Called by the agent. The enrollment token authenticates the request; the CSR's
common name is the device id (ECDSA P-256 or Ed25519 key). Returns the device
certificate, the controller CA and the controller's document-signing keys.`,
			Request:  reflect.TypeFor[apiv1.EnrollRequest](),
			Response: reflect.TypeFor[apiv1.EnrollResponse](),
			Status:   200, Result: "Enrolled (pending_approval tells whether an admin must approve it first).",
			Errors:    []int{400, 409, 413, 415},
			Responses: map[int]string{401: "The enrollment token is not valid.", 403: "The enrollment token is revoked, expired or used up."},
			Auth:      Public,
			h:         (*API).enroll,
		},
		{
			Method: "POST", Path: "/api/v1/enroll-tokens", Op: "createEnrollToken", Tag: "enrollment",
			Summary:  "Create an enrollment token",
			Doc:      "The token secret is in the answer only; the controller keeps its hash.",
			Request:  reflect.TypeFor[apiv1.CreateEnrollTokenRequest](),
			Response: reflect.TypeFor[apiv1.EnrollToken](),
			Status:   201, Result: "Created; token holds the secret.",
			Errors: []int{400, 401, 403, 409, 413, 415},
			Action: access.ControllerEnroll,
			h:      (*API).createEnrollToken,
		},
		{
			Method: "GET", Path: "/api/v1/enroll-tokens", Op: "listEnrollTokens", Tag: "enrollment",
			Summary:  "List enrollment tokens",
			Response: reflect.TypeFor[[]apiv1.EnrollToken](),
			Status:   200, Result: "Every enrollment token, without secrets.",
			Errors: []int{401, 403},
			Action: access.ControllerEnroll,
			h:      (*API).listEnrollTokens,
		},
		{
			Method: "DELETE", Path: "/api/v1/enroll-tokens/{id}", Op: "revokeEnrollToken", Tag: "enrollment",
			Summary: "Revoke an enrollment token",
			Status:  204, Result: "Revoked.",
			Errors: []int{401, 403, 404},
			Action: access.ControllerEnroll,
			h:      (*API).revokeEnrollToken,
		},
		{
			Method: "GET", Path: "/api/v1/devices", Op: "listDevices", Tag: "devices",
			Summary:  "List the devices the caller may view (device:view)",
			Response: reflect.TypeFor[[]apiv1.Device](),
			Status:   200, Result: "Devices, filtered to those the caller holds device:view on.",
			Errors: []int{401},
			Action: access.DeviceView, List: true,
			h: (*API).listDevices,
		},
		{
			Method: "GET", Path: "/api/v1/devices/{id}", Op: "getDevice", Tag: "devices",
			Summary:  "Show one device",
			Response: reflect.TypeFor[apiv1.Device](),
			Status:   200, Result: "The device.",
			Errors: []int{401, 403, 404},
			Action: access.DeviceView, Param: "id",
			h: (*API).getDevice,
		},
		{
			Method: "DELETE", Path: "/api/v1/devices/{id}", Op: "deleteDevice", Tag: "devices",
			Summary: "Delete a device",
			Status:  204, Result: "Deleted.",
			Errors: []int{401, 403, 404},
			Action: access.DeviceManage, Param: "id",
			h: (*API).deleteDevice,
		},
		{
			Method: "POST", Path: "/api/v1/devices/{id}/approve", Op: "approveDevice", Tag: "devices",
			Summary:  "Approve a device enrolled with an approval token",
			Response: reflect.TypeFor[apiv1.Device](),
			Status:   200, Result: "The approved device.",
			Errors: []int{401, 403, 404},
			Action: access.DeviceManage, Param: "id",
			h: (*API).approveDevice,
		},
		{
			Method: "PUT", Path: "/api/v1/devices/{id}/labels", Op: "setDeviceLabels", Tag: "devices",
			Summary:  "Set or remove device labels",
			Doc:      "Keys with an empty value are removed; other labels are kept.",
			Request:  reflect.TypeFor[apiv1.SetLabelsRequest](),
			Response: reflect.TypeFor[apiv1.Device](),
			Status:   200, Result: "The device with its new labels.",
			Errors: []int{400, 401, 403, 404, 413, 415},
			Action: access.DeviceManage, Param: "id",
			h: (*API).setDeviceLabels,
		},
		{
			Method: "POST", Path: "/api/v1/groups", Op: "createGroup", Tag: "groups",
			Summary:  "Create a device group",
			Doc:      "The creator receives the built-in group-owner role on the new group.",
			Request:  reflect.TypeFor[apiv1.CreateGroupRequest](),
			Response: reflect.TypeFor[apiv1.Group](),
			Status:   201, Result: "Created.",
			Errors: []int{400, 401, 403, 409, 413, 415, 501},
			Action: access.ControllerCreateDeviceGroup,
			Also:   []Check{{access.DeviceManage, "each device the selector matches"}, {access.ControllerEnroll, "a name a live enrollment token still assigns (its group was deleted)"}},
			h:      (*API).createGroup,
		},
		{
			Method: "GET", Path: "/api/v1/groups", Op: "listGroups", Tag: "groups",
			Summary:  "List the device groups the caller may view (device-group:view)",
			Response: reflect.TypeFor[[]apiv1.Group](),
			Status:   200, Result: "Groups, filtered to those the caller holds device-group:view on.",
			Errors: []int{401},
			Action: access.DeviceGroupView, List: true,
			h: (*API).listGroups,
		},
		{
			Method: "GET", Path: "/api/v1/groups/{name}", Op: "getGroup", Tag: "groups",
			Summary:  "Show a device group",
			Response: reflect.TypeFor[apiv1.Group](),
			Status:   200, Result: "The group with all its members.",
			Errors: []int{401, 403, 404},
			Action: access.DeviceGroupView, Param: "name",
			h: (*API).getGroup,
		},
		{
			Method: "DELETE", Path: "/api/v1/groups/{name}", Op: "deleteGroup", Tag: "groups",
			Summary: "Delete a device group",
			Doc: `A group that carries what others rely on (a sideload override, grants to others
than the caller, app assignments, inclusion in another group) is refused with
409 naming all of it, unless force is true. A forced deletion removes only what
the caller could remove one by one, and its audit entry names everything
removed; removing a deny sideload override is audited as kind security.`,
			Status: 204, Result: "Deleted.",
			Errors:    []int{400, 401, 403, 404},
			Responses: map[int]string{409: "The group carries what others rely on (the message names it); nothing was deleted. Repeat with force=true."},
			Query:     []Param{{Name: "force", In: "query", Doc: "Delete the group with its sideload override, grants, app assignments and inclusions.", Schema: `{"type": "boolean", "default": false}`}},
			Action:    access.DeviceGroupDelete, Param: "name",
			Also: []Check{{access.DeviceSideload, "the group, when it has a sideload override"}, {access.AppDeploy, "each app assigned to the group"}, {access.DeviceGroupManageMembers, "each group that includes it"}},
			h:    (*API).deleteGroup,
		},
		{
			Method: "POST", Path: "/api/v1/groups/{name}/rename", Op: "renameGroup", Tag: "groups",
			Summary:  "Rename a device group",
			Doc:      "Grants, the sideload override, app assignments, includes and enrollment tokens follow the group: no one's rights change.",
			Request:  reflect.TypeFor[apiv1.RenameGroupRequest](),
			Response: reflect.TypeFor[apiv1.Group](),
			Status:   200, Result: "The group under its new name.",
			Errors: []int{400, 401, 403, 404, 409, 413, 415},
			Action: access.DeviceGroupDelete, Param: "name",
			Also: []Check{{access.ControllerEnroll, "a new name a live enrollment token still assigns (its group was deleted)"}},
			h:    (*API).renameGroup,
		},
		{
			Method: "PUT", Path: "/api/v1/groups/{name}/selector", Op: "setGroupSelector", Tag: "groups",
			Summary: "Replace a group's label selector, or preview what it would match",
			Doc: `Every device the new selector adds needs device:manage, as adding it by name
does (403 names the devices the caller may see and counts the others). With
dry_run=true the answer is what the change would do, and nothing changes.`,
			Request:  reflect.TypeFor[apiv1.SetSelectorRequest](),
			Response: reflect.TypeFor[apiv1.SelectorChange](),
			Status:   200, Result: "The group after the change (or as it would be) and the devices that join and leave it.",
			Errors: []int{400, 401, 403, 404, 409, 413, 415},
			Query:  []Param{{Name: "dry_run", In: "query", Doc: "Only answer what the change would do.", Schema: `{"type": "boolean", "default": false}`}},
			Action: access.DeviceGroupManageMembers, Param: "name",
			Also: []Check{{access.DeviceManage, "each device the new selector adds to the group"}},
			h:    (*API).setGroupSelector,
		},
		{
			Method: "POST", Path: "/api/v1/groups/{name}/devices", Op: "addGroupDevices", Tag: "groups",
			Summary:  "Add devices to a group",
			Request:  reflect.TypeFor[apiv1.DevicesRequest](),
			Response: reflect.TypeFor[apiv1.Group](),
			Status:   200, Result: "The group after the change.",
			Errors: []int{400, 401, 403, 404, 413, 415},
			Action: access.DeviceGroupManageMembers, Param: "name",
			Also: []Check{{access.DeviceManage, "each device in the body: adding a device hands it to everyone holding grants on the group"}},
			h:    (*API).addGroupDevices,
		},
		{
			Method: "POST", Path: "/api/v1/groups/{name}/devices/remove", Op: "removeGroupDevices", Tag: "groups",
			Summary:  "Remove devices from a group",
			Request:  reflect.TypeFor[apiv1.DevicesRequest](),
			Response: reflect.TypeFor[apiv1.Group](),
			Status:   200, Result: "The group after the change.",
			Errors: []int{400, 401, 403, 404, 413, 415},
			Action: access.DeviceGroupManageMembers, Param: "name",
			h: (*API).removeGroupDevices,
		},
		{
			Method: "POST", Path: "/api/v1/groups/{name}/includes", Op: "includeGroup", Tag: "groups",
			Summary:  "Make a group include another",
			Doc:      "Membership flows upward; a change that would close a cycle is refused with 409.",
			Request:  reflect.TypeFor[apiv1.IncludeRequest](),
			Response: reflect.TypeFor[apiv1.Group](),
			Status:   200, Result: "The group after the change.",
			Errors: []int{400, 401, 403, 404, 409, 413, 415},
			Action: access.DeviceGroupManageMembers, Param: "name",
			Also: []Check{{access.DeviceGroupShare, "the included group (body): including it hands its devices to everyone holding grants on the parent"}},
			h:    (*API).includeGroup,
		},
		{
			Method: "DELETE", Path: "/api/v1/groups/{name}/includes/{child}", Op: "excludeGroup", Tag: "groups",
			Summary: "Stop a group including another",
			Status:  204, Result: "Excluded; GET the group for its members now.",
			Errors: []int{401, 403, 404},
			Action: access.DeviceGroupManageMembers, Param: "name",
			h: (*API).excludeGroup,
		},
		{
			Method: "GET", Path: "/api/v1/status", Op: "fleetStatus", Tag: "devices",
			Summary:  "Summarize the devices the caller may view",
			Response: reflect.TypeFor[apiv1.FleetStatus](),
			Status:   200, Result: "Counts over the devices the caller holds device:view on.",
			Errors: []int{401},
			Action: access.DeviceView, List: true,
			h: (*API).fleetStatus,
		},
		{
			Method: "POST", Path: "/api/v1/publishers", Op: "addPublisherKey", Tag: "publishers",
			Summary:  "Trust a publisher key, creating the publisher if needed",
			Request:  reflect.TypeFor[apiv1.AddPublisherKeyRequest](),
			Response: reflect.TypeFor[apiv1.Publisher](),
			Status:   201, Result: "The publisher with all its keys.",
			Errors: []int{400, 401, 403, 409, 413, 415, 503},
			Action: access.ControllerTrust,
			h:      (*API).addPublisherKey,
		},
		{
			Method: "GET", Path: "/api/v1/publishers", Op: "listPublishers", Tag: "publishers",
			Summary:  "List trusted (and removed) publishers",
			Response: reflect.TypeFor[[]apiv1.Publisher](),
			Status:   200, Result: "Every publisher with every key it ever had.",
			Errors: []int{401, 503},
			Auth:   Authenticated, Rule: "every active user: publishers and their public keys are what devices trust, not secrets",
			h: (*API).listPublishers,
		},
		{
			Method: "DELETE", Path: "/api/v1/publishers/{name}", Op: "removePublisher", Tag: "publishers",
			Summary: "Stop trusting a publisher and all its keys",
			Doc:     "Its app versions stop being installable.",
			Status:  204, Result: "Removed.",
			Errors: []int{401, 403, 404, 503},
			Action: access.ControllerTrust,
			h:      (*API).removePublisher,
		},
		{
			Method: "DELETE", Path: "/api/v1/publishers/{name}/keys/{key}", Op: "removePublisherKey", Tag: "publishers",
			Summary: "Stop trusting one key of a publisher",
			Status:  204, Result: "Removed; GET /api/v1/publishers for what the publisher still has.",
			Errors: []int{401, 403, 404, 503},
			Action: access.ControllerTrust,
			h:      (*API).removePublisherKey,
		},
		{
			Method: "POST", Path: "/api/v1/apps", Op: "pushApp", Tag: "apps",
			Summary: "Push a signed app version",
			Doc: `Checkpoint 1. A multipart/form-data body whose parts come in this order: the
manifest (the exact bytes that were signed), the signature (base64 text or a
cosign bundle), then one artifact part per artifact whose Content-Disposition
filename is the artifact's path as the manifest writes it. The signature is
verified against the publisher's trusted keys before any artifact is read, and
each artifact's size and SHA-256 while it streams; on any failure nothing is
stored. Versions are immutable (409 if already pushed).`,
			RequestMedia: "multipart/form-data",
			RequestSchema: `{"type": "object", "required": ["manifest", "signature"], "properties": {
				"manifest": {"type": "string", "contentMediaType": "application/json", "description": "The app manifest, exactly the signed bytes (at most 64 KiB)."},
				"signature": {"type": "string", "description": "The cosign signature, base64 text or a bundle (at most 64 KiB)."},
				"artifact": {"type": "array", "items": {"type": "string", "contentMediaType": "application/octet-stream"}, "description": "One part per artifact; its filename is the artifact's path in the manifest."}}}`,
			Response: reflect.TypeFor[apiv1.AppVersion](),
			Status:   201, Result: "Stored and verified.",
			Errors: []int{400, 401, 403, 409, 413, 415, 503},
			Action: access.AppPublish, Body: "the app named in the manifest",
			h: (*API).pushApp,
		},
		{
			Method: "GET", Path: "/api/v1/apps", Op: "listApps", Tag: "apps",
			Summary:  "List the apps the caller may view (app:view)",
			Response: reflect.TypeFor[[]apiv1.AppSummary](),
			Status:   200, Result: "One line per app, filtered to those the caller holds app:view on.",
			Errors: []int{401, 503},
			Action: access.AppView, List: true,
			h: (*API).listApps,
		},
		{
			Method: "GET", Path: "/api/v1/apps/{name}", Op: "getApp", Tag: "apps",
			Summary:  "Show an app with its versions, assignments and per-device state",
			Response: reflect.TypeFor[apiv1.App](),
			Status:   200, Result: "The app.",
			Errors: []int{401, 403, 404, 503},
			Action: access.AppView, Param: "name",
			h: (*API).getApp,
		},
		{
			Method: "DELETE", Path: "/api/v1/apps/{name}/versions/{version}", Op: "deleteAppVersion", Tag: "apps",
			Summary: "Delete an app version that is assigned nowhere",
			Doc:     "Artifacts no other version references are deleted too.",
			Status:  204, Result: "Deleted.",
			Errors: []int{401, 403, 404, 409, 503},
			Action: access.AppDeleteVersion, Param: "name",
			h: (*API).deleteAppVersion,
		},
		{
			Method: "GET", Path: "/api/v1/apps/{name}/versions/{version}/check", Op: "checkApp", Tag: "apps",
			Summary:  "Installation guidance for a version on a group's devices",
			Response: reflect.TypeFor[apiv1.CheckResult](),
			Status:   200, Result: "The verdict per device and overall.",
			Errors: []int{400, 401, 403, 404, 503},
			Query:  []Param{{Name: "group", In: "query", Doc: "The device group whose devices are checked.", Schema: `{"type": "string"}`, Required: true}, {Name: "allow_downgrade", In: "query", Doc: "A downgrade the manifest does not permit becomes Warn instead of Block.", Schema: `{"type": "boolean", "default": false}`}},
			Action: access.AppView, Param: "name",
			h: (*API).checkApp,
		},
		{
			Method: "POST", Path: "/api/v1/apps/{name}/assignments", Op: "assignApp", Tag: "apps",
			Summary: "Assign a version to a device group",
			Doc: `The installation guidance decides: Block is refused (409); Warn is refused (409)
unless force is set, and a forced assignment is audited as a security event.`,
			Request:  reflect.TypeFor[apiv1.AssignRequest](),
			Response: reflect.TypeFor[apiv1.AssignResponse](),
			Status:   200, Result: "The assignment made and the guidance it was made on.",
			Errors: []int{400, 401, 403, 404, 409, 413, 415, 503},
			Action: access.AppDeploy, Param: "name",
			Also: []Check{{access.DeviceAppInstall, "the target group (body): deploying also needs the right to install on its devices"}},
			h:    (*API).assignApp,
		},
		{
			Method: "DELETE", Path: "/api/v1/apps/{name}/assignments/{group}", Op: "unassignApp", Tag: "apps",
			Summary: "Remove an app's assignment from a device group",
			Status:  204, Result: "Unassigned.",
			Errors: []int{401, 403, 404, 503},
			Action: access.AppDeploy, Param: "name",
			h: (*API).unassignApp,
		},
		{
			Method: "GET", Path: "/api/v1/artifacts/{sha256}", Op: "downloadArtifact", Tag: "apps",
			Summary: "Download an artifact (devices, by client certificate)",
			Doc: `For agents. The device is identified by its client certificate (mutual TLS; the
certificate's common name is the device id and its serial must be the one it
enrolled with). The device must be active and the artifact must belong to a
version assigned to one of its groups. Range requests are supported; the
content is immutable (ETag "sha256:<digest>").`,
			ResponseMedia: "application/octet-stream",
			Status:        200, Result: "The artifact's bytes.",
			Errors:    []int{403, 404, 503},
			Responses: map[int]string{206: "The requested byte range.", 304: "Not modified (If-None-Match matched the ETag).", 401: "No verified client certificate.", 416: "The range cannot be satisfied."},
			Query:     []Param{{Name: "Range", In: "header", Doc: "A byte range, to resume a download.", Schema: `{"type": "string"}`}},
			Auth:      Device,
			h:         (*API).downloadArtifact,
		},
		{
			Method: "POST", Path: "/api/v1/users", Op: "inviteUser", Tag: "users",
			Summary:  "Invite a user",
			Doc:      "The activation token is in the answer only; hand it to the user.",
			Request:  reflect.TypeFor[apiv1.InviteRequest](),
			Response: reflect.TypeFor[apiv1.Invitation](),
			Status:   201, Result: "Invited; the user is pending until activated.",
			Errors: []int{400, 401, 403, 409, 413, 415, 501},
			Action: access.ControllerManageUsers,
			h:      (*API).inviteUser,
		},
		{
			Method: "GET", Path: "/api/v1/users", Op: "listUsers", Tag: "users",
			Summary:  "List users",
			Response: reflect.TypeFor[[]apiv1.User](),
			Status:   200, Result: "Every user.",
			Errors: []int{401, 403, 501},
			Action: access.ControllerManageUsers,
			h:      (*API).listUsers,
		},
		{
			Method: "POST", Path: "/api/v1/users/activate", Op: "activateUser", Tag: "users",
			Summary:  "Activate an invited user with its activation token and a password",
			Doc:      "Needs no session; the activation token authenticates.",
			Request:  reflect.TypeFor[apiv1.ActivateRequest](),
			Response: reflect.TypeFor[apiv1.User](),
			Status:   200, Result: "The activated user.",
			Errors: []int{400, 403, 413, 415, 501},
			Auth:   Public,
			h:      (*API).activateUser,
		},
		{
			Method: "GET", Path: "/api/v1/users/lookup", Op: "lookupUser", Tag: "users",
			Summary:  "Does an active user of this exact name exist? (to share a group with them)",
			Doc:      "The answer holds the name only. Disabled, pending, deleted and unknown users are the same 404.",
			Response: reflect.TypeFor[apiv1.UserName](),
			Status:   200, Result: "An active user of that name exists.",
			Errors: []int{400, 401, 403, 404},
			Query:  []Param{{Name: "name", In: "query", Doc: "The exact user name.", Schema: `{"type": "string", "maxLength": 64}`, Required: true}},
			Auth:   Authenticated, Rule: "users who may share: device-group:share on some group, or controller:manage-users or controller:manage-roles",
			h: (*API).lookupUser,
		},
		{
			Method: "DELETE", Path: "/api/v1/users/{name}", Op: "deleteUser", Tag: "users",
			Summary: "Delete a user",
			Doc:     "The user's grants stop working on every device with its next document.",
			Status:  204, Result: "Deleted.",
			Errors: []int{400, 401, 403, 404, 501},
			Action: access.ControllerManageUsers,
			h:      (*API).deleteUser,
		},
		{
			Method: "POST", Path: "/api/v1/users/{name}/disable", Op: "disableUser", Tag: "users",
			Summary:  "Disable a user",
			Response: reflect.TypeFor[apiv1.User](),
			Status:   200, Result: "The disabled user.",
			Errors: []int{400, 401, 403, 404, 501},
			Action: access.ControllerManageUsers,
			h:      (*API).disableUser,
		},
		{
			Method: "POST", Path: "/api/v1/users/{name}/enable", Op: "enableUser", Tag: "users",
			Summary:  "Enable a disabled user",
			Doc:      "The user's grants work again; the sessions it had when disabled stay ended.",
			Response: reflect.TypeFor[apiv1.User](),
			Status:   200, Result: "The active user.",
			Errors:    []int{401, 403, 404, 501},
			Responses: map[int]string{409: "The user is not disabled (active, or waiting for activation)."},
			Action:    access.ControllerManageUsers,
			h:         (*API).enableUser,
		},
		{
			Method: "POST", Path: "/api/v1/users/{name}/reset-password", Op: "resetUserPassword", Tag: "users",
			Summary: "Reset a user's password: a new activation token, as an invitation gives",
			Doc: `The user's password stops working, its sessions end and its operator tokens
are revoked at once; it waits for activation (its grants give nothing) until it
redeems the token with POST /api/v1/users/activate. Refused for oneself (use POST /api/v1/password),
for a disabled user (enable it first) and for a user whose rights exceed the
caller's (no escalation).`,
			Request:  reflect.TypeFor[apiv1.ResetPasswordRequest](),
			Response: reflect.TypeFor[apiv1.Invitation](),
			Status:   200, Result: "Reset; token holds the activation token (shown once).",
			Errors:    []int{400, 401, 403, 404, 413, 415, 501},
			Responses: map[int]string{409: "The user is disabled, or the reset would leave no one who can administer."},
			Action:    access.ControllerManageUsers,
			h:         (*API).resetPassword,
		},
		{
			Method: "POST", Path: "/api/v1/teams", Op: "createTeam", Tag: "teams",
			Summary:  "Create a team",
			Request:  reflect.TypeFor[apiv1.CreateTeamRequest](),
			Response: reflect.TypeFor[apiv1.Team](),
			Status:   201, Result: "Created.",
			Errors: []int{400, 401, 403, 409, 413, 415, 501},
			Action: access.ControllerManageUsers,
			h:      (*API).createTeam,
		},
		{
			Method: "GET", Path: "/api/v1/teams", Op: "listTeams", Tag: "teams",
			Summary:  "List teams",
			Response: reflect.TypeFor[[]apiv1.Team](),
			Status:   200, Result: "Every team with its members.",
			Errors: []int{401, 403, 501},
			Action: access.ControllerManageUsers,
			h:      (*API).listTeams,
		},
		{
			Method: "DELETE", Path: "/api/v1/teams/{name}", Op: "deleteTeam", Tag: "teams",
			Summary: "Delete a team",
			Status:  204, Result: "Deleted.",
			Errors: []int{401, 403, 404, 501},
			Action: access.ControllerManageUsers,
			h:      (*API).deleteTeam,
		},
		{
			Method: "POST", Path: "/api/v1/teams/{name}/members", Op: "addTeamMembers", Tag: "teams",
			Summary:  "Add users to a team",
			Request:  reflect.TypeFor[apiv1.TeamMembersRequest](),
			Response: reflect.TypeFor[apiv1.Team](),
			Status:   200, Result: "The team after the change.",
			Errors: []int{400, 401, 403, 404, 413, 415, 501},
			Action: access.ControllerManageUsers,
			Also:   []Check{{On: "every right the team's grants give (no escalation by joining a team)"}},
			h:      (*API).addTeamMembers,
		},
		{
			Method: "POST", Path: "/api/v1/teams/{name}/members/remove", Op: "removeTeamMembers", Tag: "teams",
			Summary:  "Remove users from a team",
			Request:  reflect.TypeFor[apiv1.TeamMembersRequest](),
			Response: reflect.TypeFor[apiv1.Team](),
			Status:   200, Result: "The team after the change.",
			Errors: []int{400, 401, 403, 404, 413, 415, 501},
			Action: access.ControllerManageUsers,
			h:      (*API).removeTeamMembers,
		},
		{
			Method: "GET", Path: "/api/v1/actions", Op: "listActions", Tag: "roles",
			Summary:  "The action catalogue (any logged-in user)",
			Response: reflect.TypeFor[[]access.ActionInfo](),
			Status:   200, Result: "Every action, in catalogue order.",
			Errors: []int{401},
			Auth:   Authenticated, Rule: "every active user: the catalogue is public knowledge",
			h: (*API).listActions,
		},
		{
			Method: "GET", Path: "/api/v1/roles", Op: "listRoles", Tag: "roles",
			Summary:  "List roles, built-in and custom (any logged-in user)",
			Response: reflect.TypeFor[[]apiv1.Role](),
			Status:   200, Result: "Every role.",
			Errors: []int{401, 501},
			Auth:   Authenticated, Rule: "every active user: roles name sets of actions, no one's rights",
			h: (*API).listRoles,
		},
		{
			Method: "POST", Path: "/api/v1/roles", Op: "createRole", Tag: "roles",
			Summary:  "Create a custom role",
			Request:  reflect.TypeFor[apiv1.RoleRequest](),
			Response: reflect.TypeFor[apiv1.Role](),
			Status:   201, Result: "Created.",
			Errors: []int{400, 401, 403, 409, 413, 415, 501},
			Action: access.ControllerManageRoles,
			Also:   []Check{{On: "every action the role holds, everywhere (no escalation)"}},
			h:      (*API).createRole,
		},
		{
			Method: "GET", Path: "/api/v1/roles/{name}", Op: "getRole", Tag: "roles",
			Summary:  "Show a role (any logged-in user)",
			Response: reflect.TypeFor[apiv1.Role](),
			Status:   200, Result: "The role.",
			Errors: []int{401, 404, 501},
			Auth:   Authenticated, Rule: "every active user: roles name sets of actions, no one's rights",
			h: (*API).getRole,
		},
		{
			Method: "PUT", Path: "/api/v1/roles/{name}", Op: "updateRole", Tag: "roles",
			Summary:  "Replace a custom role's description, actions and shareability",
			Doc:      "Built-in roles cannot be changed (403); roles cannot be renamed (400).",
			Request:  reflect.TypeFor[apiv1.RoleRequest](),
			Response: reflect.TypeFor[apiv1.Role](),
			Status:   200, Result: "The role after the change.",
			Errors: []int{400, 401, 403, 404, 413, 415, 501},
			Action: access.ControllerManageRoles,
			Also:   []Check{{On: "every action the role holds, everywhere (no escalation)"}},
			h:      (*API).updateRole,
		},
		{
			Method: "DELETE", Path: "/api/v1/roles/{name}", Op: "deleteRole", Tag: "roles",
			Summary: "Delete a custom role no grant uses",
			Status:  204, Result: "Deleted.",
			Errors: []int{401, 403, 404, 409, 501},
			Action: access.ControllerManageRoles,
			h:      (*API).deleteRole,
		},
		{
			Method: "POST", Path: "/api/v1/grants", Op: "createGrant", Tag: "grants",
			Summary:  "Give a role to a user or team on a scope",
			Request:  reflect.TypeFor[apiv1.CreateGrantRequest](),
			Response: reflect.TypeFor[apiv1.Grant](),
			Status:   201, Result: "Created.",
			Errors: []int{400, 401, 403, 404, 409, 413, 415, 501},
			Auth:   Authenticated, Rule: "a user may grant a role on a scope only if they hold every action of it there (no escalation); a grant to oneself or one's teams needs controller:manage-roles",
			h: (*API).createGrant,
		},
		{
			Method: "GET", Path: "/api/v1/grants", Op: "listGrants", Tag: "grants",
			Summary: "List grants",
			Doc: `Every grant for holders of controller:manage-roles; for others, the grants to
them or their teams and those on groups where they hold device-group:share.`,
			Response: reflect.TypeFor[[]apiv1.Grant](),
			Status:   200, Result: "The grants the caller may see.",
			Errors: []int{401, 501},
			Auth:   Authenticated, Rule: "holders of controller:manage-roles see every grant; others the grants to them or their teams and those on groups where they hold device-group:share",
			h: (*API).listGrants,
		},
		{
			Method: "DELETE", Path: "/api/v1/grants/{id}", Op: "deleteGrant", Tag: "grants",
			Summary: "Delete a grant (controller:manage-roles, or device-group:share for a share on that group)",
			Status:  204, Result: "Deleted.",
			Errors: []int{401, 403, 404, 501},
			Auth:   Authenticated, Rule: "controller:manage-roles; or, for a share (a template role on a group, to someone else), device-group:share on that group",
			h: (*API).deleteGrant,
		},
		{
			Method: "POST", Path: "/api/v1/share", Op: "share", Tag: "grants",
			Summary:  "Share a template role on a device group",
			Request:  reflect.TypeFor[apiv1.ShareRequest](),
			Response: reflect.TypeFor[apiv1.Grant](),
			Status:   201, Result: "The grant made.",
			Errors: []int{400, 401, 403, 404, 409, 413, 415, 501},
			Auth:   Authenticated, Rule: "device-group:share on the group of the body, for a shareable (template) role whose actions the sharer holds there, to someone else",
			h: (*API).share,
		},
		{
			Method: "POST", Path: "/api/v1/access/check", Op: "checkAccess", Tag: "grants",
			Summary:  "Explain whether a user may do an action on a resource",
			Doc:      "About oneself needs nothing; about others, controller:manage-roles or controller:audit.",
			Request:  reflect.TypeFor[apiv1.AccessCheckRequest](),
			Response: reflect.TypeFor[apiv1.AccessDecision](),
			Status:   200, Result: "The decision and its explanation.",
			Errors: []int{400, 401, 403, 404, 413, 415, 501},
			Auth:   Authenticated, Rule: "about oneself: every active user; about others: controller:manage-roles or controller:audit",
			h: (*API).checkAccess,
		},
		{
			Method: "POST", Path: "/api/v1/tokens", Op: "issueToken", Tag: "tokens",
			Summary:  "Issue an operator token to the caller, for local access on devices",
			Doc:      "The token (a JWT) is in the answer only. Default lifetime 8 hours, at most 7 days.",
			Request:  reflect.TypeFor[apiv1.IssueTokenRequest](),
			Response: reflect.TypeFor[apiv1.OperatorToken](),
			Status:   201, Result: "Issued; token holds the JWT.",
			Errors: []int{400, 401, 413, 415, 501},
			Auth:   Authenticated, Rule: "self-service: a token for the session's own user",
			h: (*API).issueToken,
		},
		{
			Method: "GET", Path: "/api/v1/tokens", Op: "listTokens", Tag: "tokens",
			Summary:  "List the caller's operator tokens (everyone's with controller:manage-tokens)",
			Response: reflect.TypeFor[[]apiv1.OperatorToken](),
			Status:   200, Result: "Tokens, without the JWTs.",
			Errors: []int{401, 501},
			Auth:   Authenticated, Rule: "self-service: the caller's own tokens; with controller:manage-tokens, everyone's",
			h: (*API).listTokens,
		},
		{
			Method: "DELETE", Path: "/api/v1/tokens/{id}", Op: "revokeToken", Tag: "tokens",
			Summary: "Revoke an operator token (one's own, or anyone's with controller:manage-tokens)",
			Doc: `Devices refuse the token with their next document. Another user's token and an
unknown id both answer 403 for callers without controller:manage-tokens.`,
			Status: 204, Result: "Revoked; devices refuse the token with their next document.",
			Errors: []int{401, 403, 404, 409, 501},
			Auth:   Authenticated, Rule: "self-service: one of the caller's own tokens; with controller:manage-tokens, anyone's",
			h: (*API).revokeToken,
		},
		{
			Method: "GET", Path: "/api/v1/audit", Op: "listAudit", Tag: "settings",
			Summary:  "Read the audit log, newest first",
			Response: reflect.TypeFor[[]apiv1.AuditEntry](),
			Status:   200, Result: "Audit entries, newest first.",
			Errors: []int{400, 401, 403, 501},
			Query:  []Param{{Name: "since", In: "query", Doc: "Only entries at or after this time (RFC 3339).", Schema: `{"type": "string", "format": "date-time"}`}, {Name: "kind", In: "query", Doc: "Only entries of this kind.", Schema: `{"type": "string", "enum": ["change", "security", "access"]}`}, {Name: "limit", In: "query", Doc: "At most this many entries (default and maximum 1000).", Schema: `{"type": "integer", "minimum": 1, "maximum": 1000}`}},
			Action: access.ControllerAudit,
			h:      (*API).listAudit,
		},
		{
			Method: "GET", Path: "/api/v1/settings", Op: "getSettings", Tag: "settings",
			Summary:  "Read the global settings (any logged-in user)",
			Response: reflect.TypeFor[apiv1.Settings](),
			Status:   200, Result: "The settings.",
			Errors: []int{401, 501},
			Auth:   Authenticated, Rule: "every active user: the banner and the sideload policy hold nothing secret",
			h: (*API).getSettings,
		},
		{
			Method: "PUT", Path: "/api/v1/settings/banner", Op: "setBanner", Tag: "settings",
			Summary:  "Set the system-use banner; empty removes it",
			Request:  reflect.TypeFor[apiv1.SetBannerRequest](),
			Response: reflect.TypeFor[apiv1.Settings](),
			Status:   200, Result: "The settings after the change.",
			Errors: []int{400, 401, 403, 413, 415, 501},
			Action: access.ControllerSettings,
			h:      (*API).setBanner,
		},
		{
			Method: "PUT", Path: "/api/v1/settings/sideload", Op: "setSideload", Tag: "settings",
			Summary:  "Set the global sideload policy",
			Request:  reflect.TypeFor[apiv1.SetSideloadRequest](),
			Response: reflect.TypeFor[apiv1.Settings](),
			Status:   200, Result: "The settings after the change.",
			Errors: []int{400, 401, 403, 413, 415, 501},
			Action: access.ControllerSettings,
			h:      (*API).setSideload,
		},
		{
			Method: "PUT", Path: "/api/v1/settings/sideload/groups/{name}", Op: "setGroupSideload", Tag: "settings",
			Summary:  "Override the global sideload policy for a device group",
			Doc:      "A device follows the global policy unless one of its groups (directly, by selector or through an included group) has an override; when its groups disagree, deny wins. The change is audited (kind security) and reaches the devices in their next signed documents.",
			Request:  reflect.TypeFor[apiv1.SetSideloadRequest](),
			Response: reflect.TypeFor[apiv1.Settings](),
			Status:   200, Result: "The settings after the change.",
			Errors: []int{400, 401, 403, 404, 413, 415, 501},
			Action: access.DeviceSideload, Param: "name", On: access.ResourceDeviceGroup,
			h: (*API).setGroupSideload,
		},
		{
			Method: "DELETE", Path: "/api/v1/settings/sideload/groups/{name}", Op: "deleteGroupSideload", Tag: "settings",
			Summary: "Remove a device group's sideload override; its devices follow the global policy again",
			Status:  204, Result: "Removed, or the group had no override; GET /api/v1/settings for the policy now.",
			Errors: []int{401, 403, 404, 501},
			Action: access.DeviceSideload, Param: "name", On: access.ResourceDeviceGroup,
			h: (*API).deleteGroupSideload,
		},
		{
			Method: "GET", Path: "/api/v1/events", Op: "listEvents", Tag: "settings",
			Summary:  "Read the events devices reported, newest first",
			Response: reflect.TypeFor[[]apiv1.Event](),
			Status:   200, Result: "Events, newest first.",
			Errors: []int{400, 401, 403, 501},
			Query:  []Param{{Name: "kind", In: "query", Doc: "Only events of this kind (e.g. sideload_blocked, tamper_detected, quarantined, integrity_failure, sideload_installed).", Schema: `{"type": "string", "maxLength": 64}`}, {Name: "severity", In: "query", Doc: "Only events of this severity.", Schema: `{"type": "string", "enum": ["info", "warning", "security"]}`}, {Name: "device", In: "query", Doc: "Only events of this device.", Schema: `{"type": "string", "maxLength": 128}`}, {Name: "since", In: "query", Doc: "Only events that happened at or after this time (RFC 3339).", Schema: `{"type": "string", "format": "date-time"}`}, {Name: "limit", In: "query", Doc: "At most this many events (default and maximum 1000).", Schema: `{"type": "integer", "minimum": 1, "maximum": 1000}`}},
			Action: access.ControllerAudit,
			h:      (*API).listEvents,
		},
		{
			Method: "GET", Path: "/api/v1/openapi.yaml", Op: "getOpenAPIYAML", Tag: "meta",
			Summary:       "This document (OpenAPI 3.1, YAML)",
			ResponseMedia: "application/yaml",
			Status:        200, Result: "The document.",
			Auth: Public,
			h:    (*API).serveOpenAPIYAML,
		},
		{
			Method: "GET", Path: "/api/v1/openapi.json", Op: "getOpenAPIJSON", Tag: "meta",
			Summary:       "This document (OpenAPI 3.1, JSON)",
			ResponseMedia: "application/json",
			Status:        200, Result: "The document.",
			Auth: Public,
			h:    (*API).serveOpenAPIJSON,
		},
	}
}
