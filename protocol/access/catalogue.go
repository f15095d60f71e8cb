package access

import (
	"fmt"
	"strings"
)

// CatalogueVersion is the version of the action catalogue. It only grows:
// actions are added, never renamed or given a new meaning. A device policy
// records the version it was compiled against; an agent built with an older
// catalogue ignores actions it does not know (they can only take rights away,
// never add them).
//
// History:
//
//	1 (2026-11-22) first catalogue: controller, device-group, device and app actions.
const CatalogueVersion = 1

// ResourceType is a kind of thing actions apply to.
type ResourceType string

// Resource types.
const (
	// ResourceController is the controller itself: users, roles, settings,
	// trust. As a Resource it also means "everywhere": only global grants
	// cover it.
	ResourceController ResourceType = "controller"
	// ResourceDeviceGroup is a device group.
	ResourceDeviceGroup ResourceType = "device-group"
	// ResourceDevice is one device.
	ResourceDevice ResourceType = "device"
	// ResourceApp is an app (all its versions).
	ResourceApp ResourceType = "app"
)

// ResourceTypes lists the resource types in catalogue order.
func ResourceTypes() []ResourceType {
	return []ResourceType{ResourceController, ResourceDeviceGroup, ResourceDevice, ResourceApp}
}

// Action names something a subject may do, as "resource-type:verb", e.g.
// "device:app-install". The prefix is the resource type it applies to.
type Action string

// The action catalogue. Descriptions are in catalogue (and Actions).
const (
	ControllerManageUsers       Action = "controller:manage-users"
	ControllerManageRoles       Action = "controller:manage-roles"
	ControllerSettings          Action = "controller:settings"
	ControllerAudit             Action = "controller:audit"
	ControllerTrust             Action = "controller:trust"
	ControllerCreateDeviceGroup Action = "controller:create-device-group"
	ControllerEnroll            Action = "controller:enroll"
	ControllerManageTokens      Action = "controller:manage-tokens"

	DeviceGroupView          Action = "device-group:view"
	DeviceGroupManageMembers Action = "device-group:manage-members"
	DeviceGroupShare         Action = "device-group:share"
	DeviceGroupDelete        Action = "device-group:delete"

	DeviceView       Action = "device:view"
	DeviceAppInstall Action = "device:app-install"
	DeviceAppOperate Action = "device:app-operate"
	DeviceAppAccess  Action = "device:app-access"
	DeviceLogs       Action = "device:logs"
	DeviceSideload   Action = "device:sideload"
	DeviceManage     Action = "device:manage"

	AppView          Action = "app:view"
	AppPublish       Action = "app:publish"
	AppDeploy        Action = "app:deploy"
	AppDeleteVersion Action = "app:delete-version"
)

// ActionInfo describes one action of the catalogue.
type ActionInfo struct {
	Name        Action       `json:"name"` // e.g. "device:app-install".
	Resource    ResourceType `json:"resource" openapi:"enum=controller|device-group|device|app"`
	Description string       `json:"description"`
}

// catalogue is the action catalogue, in the order `edgewarden actions ls`
// prints it. The position of an action is its bit in an actionSet: append
// only, never reorder.
var catalogue = []ActionInfo{
	{ControllerManageUsers, ResourceController, "invite, disable and delete users; manage teams; list and revoke any user's operator tokens"},
	{ControllerManageRoles, ResourceController, "create, update and delete custom roles; create and delete grants (never beyond the rights one holds)"},
	{ControllerSettings, ResourceController, "change global settings: the sideload policy and the system-use banner"},
	{ControllerAudit, ResourceController, "read the audit log"},
	{ControllerTrust, ResourceController, "add and remove trusted app publisher keys"},
	{ControllerCreateDeviceGroup, ResourceController, "create device groups; the creator receives the group-owner role on each group it creates"},
	{ControllerEnroll, ResourceController, "create, list and revoke enrollment tokens; approve enrolled devices"},
	{ControllerManageTokens, ResourceController, "list and revoke the operator tokens of other users (everyone may issue and revoke their own)"},

	{DeviceGroupView, ResourceDeviceGroup, "see the group: its selector, direct members, included groups and all member devices"},
	{DeviceGroupManageMembers, ResourceDeviceGroup, "add and remove devices, change the selector, include and exclude child groups"},
	{DeviceGroupShare, ResourceDeviceGroup, "share a template (shareable) role on the group with other users or teams, within one's own rights"},
	{DeviceGroupDelete, ResourceDeviceGroup, "rename or delete the group (its devices stay enrolled)"},

	{DeviceView, ResourceDevice, "see the device: labels, groups, status, apps and security events"},
	{DeviceAppInstall, ResourceDevice, "assign, upgrade and remove managed app versions on the device (together with app:deploy on the app)"},
	{DeviceAppOperate, ResourceDevice, "start, stop and restart apps on the device"},
	{DeviceAppAccess, ResourceDevice, "use the apps on the device (their web UIs and local APIs, checked through the agent's authorize call)"},
	{DeviceLogs, ResourceDevice, "read the logs of apps on the device"},
	{DeviceSideload, ResourceDevice, "install local packages where the sideload ban is lifted; lift or restore the ban for a device group"},
	{DeviceManage, ResourceDevice, "approve, label and delete the device"},

	{AppView, ResourceApp, "see the app, its versions and their manifests"},
	{AppPublish, ResourceApp, "upload new signed versions of the app"},
	{AppDeploy, ResourceApp, "assign versions of the app to devices and groups (together with device:app-install there)"},
	{AppDeleteVersion, ResourceApp, "delete a version of the app"},
}

// actionBit maps each action to its position in catalogue.
var actionBit = func() map[Action]uint8 {
	if len(catalogue) > 64 {
		panic("access: the action catalogue outgrew the 64-bit action set")
	}
	m := make(map[Action]uint8, len(catalogue))
	for i, a := range catalogue {
		if _, dup := m[a.Name]; dup {
			panic("access: duplicate action " + string(a.Name))
		}
		if a.Name.ResourceType() != a.Resource {
			panic("access: action " + string(a.Name) + " has the wrong resource type")
		}
		m[a.Name] = uint8(i)
	}
	return m
}()

// Actions returns the action catalogue, grouped by resource type in the order
// of ResourceTypes. The slice is a copy.
func Actions() []ActionInfo {
	return append([]ActionInfo(nil), catalogue...)
}

// LookupAction returns the catalogue entry of an action.
func LookupAction(a Action) (ActionInfo, bool) {
	i, ok := actionBit[a]
	if !ok {
		return ActionInfo{}, false
	}
	return catalogue[i], true
}

// ResourceType returns the resource type an action applies to: the part
// before the colon. It does not check that the action is in the catalogue.
func (a Action) ResourceType() ResourceType {
	t, _, _ := strings.Cut(string(a), ":")
	return ResourceType(t)
}

// ParseAction returns the action named s, or an error naming it if it is not
// in the catalogue.
func ParseAction(s string) (Action, error) {
	a := Action(strings.TrimSpace(s))
	if _, ok := actionBit[a]; !ok {
		return "", unknownAction(a)
	}
	return a, nil
}

func unknownAction(a Action) error {
	return fmt.Errorf("%w %q: it is not in the action catalogue (version %d); run `edgewarden actions ls` for the list", ErrUnknownAction, string(a), CatalogueVersion)
}

// actionSet is a set of catalogue actions, one bit per catalogue position.
type actionSet uint64

func (s actionSet) has(bit uint8) bool { return s&(1<<bit) != 0 }

// actions returns the members of s in catalogue order.
func (s actionSet) actions() []Action {
	var out []Action
	for i, a := range catalogue {
		if s&(1<<uint(i)) != 0 {
			out = append(out, a.Name)
		}
	}
	return out
}

// setOf returns the set of the given actions and the actions that are not in
// the catalogue.
func setOf(actions []Action) (actionSet, []Action) {
	var s actionSet
	var unknown []Action
	for _, a := range actions {
		bit, ok := actionBit[a]
		if !ok {
			unknown = append(unknown, a)
			continue
		}
		s |= 1 << bit
	}
	return s, unknown
}

// typeMask is the set of every catalogue action of one resource type.
func typeMask(t ResourceType) actionSet {
	var s actionSet
	for i, a := range catalogue {
		if a.Resource == t {
			s |= 1 << uint(i)
		}
	}
	return s
}

var (
	deviceActions = typeMask(ResourceDevice)
	groupActions  = typeMask(ResourceDeviceGroup)
	appActions    = typeMask(ResourceApp)
	allActions    = ^actionSet(0) >> (64 - uint(len(catalogue)))
)
