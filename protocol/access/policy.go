// Package access is Edgewarden's access model, shared by the controller API
// and the agent's local API: the catalogue of actions per resource type, the
// built-in roles, and the evaluator that decides (and explains) whether a
// subject may perform an action on a resource.
package access

// Policy is the part of a device's desired state that decides local access
// on that device: the grants that concern it, compiled by the controller.
// The zero value allows nothing.
type Policy struct{}
