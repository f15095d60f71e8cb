package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
)

// EventFilter selects device events; zero fields do not filter.
type EventFilter struct {
	Kind     string
	Severity string // "info", "warning" or "security"
	Device   string
	Since    time.Time
	Limit    int
}

// ListEvents returns the events devices reported, newest first (needs
// controller:audit).
func (c *Client) ListEvents(ctx context.Context, f EventFilter) ([]apiv1.Event, error) {
	q := url.Values{}
	if f.Kind != "" {
		q.Set("kind", f.Kind)
	}
	if f.Severity != "" {
		q.Set("severity", f.Severity)
	}
	if f.Device != "" {
		q.Set("device", f.Device)
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	path := "/events"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return list[apiv1.Event](ctx, c, http.MethodGet, path, nil)
}

// SetGroupSideload sets a device group's override of the global sideload
// policy ("allow" or "deny"; needs device:sideload on the group).
func (c *Client) SetGroupSideload(ctx context.Context, group, policy string) (*apiv1.Settings, error) {
	return call[apiv1.Settings](ctx, c, http.MethodPut, "/settings/sideload/groups/"+esc(group), apiv1.SetSideloadRequest{Policy: policy})
}

// DeleteGroupSideload removes a device group's sideload override, so its
// devices follow the global policy again.
func (c *Client) DeleteGroupSideload(ctx context.Context, group string) error {
	return c.do(ctx, http.MethodDelete, "/settings/sideload/groups/"+esc(group), nil, nil)
}
