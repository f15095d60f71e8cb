// Package client is a Go client for the controller's REST API (wire types
// in controller/apiv1). The edgewarden CLI and the end-to-end tests use it.
//
// Every method returns the apiv1 types; when the controller refuses a
// request the error is an *Error whose message is the controller's, verbatim.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
)

// maxResponseBytes bounds a response body read by the client.
const maxResponseBytes = 64 << 20

// Options configure a Client.
type Options struct {
	// BaseURL is the controller's URL, e.g. "https://127.0.0.1:8443".
	// Required.
	BaseURL string
	// CAFile is a PEM file with the certificates to trust for the
	// controller's TLS certificate (the controller's ca.pem).
	CAFile string
	// CAPool, if set, is used instead of CAFile. If neither is set the
	// system roots are trusted.
	CAPool *x509.CertPool
	// Token is the session token sent as a bearer token. Empty: none (for
	// Login, Banner and Enroll).
	Token string
	// HTTPClient, if set, is used as is (CAFile, CAPool and Timeout are
	// then ignored).
	HTTPClient *http.Client
	// Timeout bounds each request. Zero means 30 seconds.
	Timeout time.Duration
}

// Client calls the controller's REST API. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// Error is the controller's refusal of a request.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Message is the controller's message, verbatim.
	Message string
}

func (e *Error) Error() string { return e.Message }

// IsStatus reports whether err is an *Error with the given HTTP status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// New returns a Client for opts.
func New(opts Options) (*Client, error) {
	if opts.BaseURL == "" {
		return nil, errors.New("controller URL is empty: pass --controller https://HOST:PORT")
	}
	base, err := url.Parse(strings.TrimRight(opts.BaseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("controller URL %q: %w", opts.BaseURL, err)
	}
	if base.Scheme != "https" && base.Scheme != "http" {
		return nil, fmt.Errorf("controller URL %q: use https://HOST:PORT", opts.BaseURL)
	}
	if base.Host == "" {
		return nil, fmt.Errorf("controller URL %q has no host: use https://HOST:PORT", opts.BaseURL)
	}
	hc := opts.HTTPClient
	if hc == nil {
		pool := opts.CAPool
		if pool == nil && opts.CAFile != "" {
			raw, err := os.ReadFile(opts.CAFile)
			if err != nil {
				return nil, fmt.Errorf("read controller CA: %w", err)
			}
			pool = x509.NewCertPool()
			if !pool.AppendCertsFromPEM(raw) {
				return nil, fmt.Errorf("controller CA %s holds no PEM certificate", opts.CAFile)
			}
		}
		timeout := opts.Timeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		hc = &http.Client{Transport: tr, Timeout: timeout}
	}
	return &Client{base: base, token: opts.Token, http: hc}, nil
}

// do sends a request with in (if not nil) as its JSON body and decodes the
// JSON response into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(raw)
	}
	u := c.base.String() + "/api/v1" + path
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach the controller at %s: %w", c.base, unwrapURLError(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("read the controller's answer to %s %s: %w", method, path, err)
	}
	if len(raw) > maxResponseBytes {
		return fmt.Errorf("the controller's answer to %s %s is larger than %d bytes", method, path, maxResponseBytes)
	}
	if resp.StatusCode >= 300 {
		var e apiv1.Error
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return &Error{Status: resp.StatusCode, Message: e.Error}
		}
		snippet := strings.TrimSpace(string(raw))
		if len(snippet) > 200 {
			snippet = snippet[:200] + "..."
		}
		return &Error{Status: resp.StatusCode, Message: fmt.Sprintf("the controller answered %s to %s %s: %s", resp.Status, method, path, snippet)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode the controller's answer to %s %s: %w", method, path, err)
	}
	return nil
}

// unwrapURLError drops the *url.Error wrapper, whose message repeats the
// method and URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// call sends a request and decodes a T from the answer.
func call[T any](ctx context.Context, c *Client, method, path string, in any) (*T, error) {
	var out T
	if err := c.do(ctx, method, path, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// list sends a request and decodes a list of T; never nil on success.
func list[T any](ctx context.Context, c *Client, method, path string, in any) ([]T, error) {
	var out []T
	if err := c.do(ctx, method, path, in, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []T{}
	}
	return out, nil
}

func esc(s string) string { return url.PathEscape(s) }

// Login authenticates with a password and returns the session token and
// the banner. It does not change c's token; make a new Client with it.
func (c *Client) Login(ctx context.Context, user, password string) (*apiv1.LoginResponse, error) {
	return call[apiv1.LoginResponse](ctx, c, http.MethodPost, "/login", apiv1.LoginRequest{User: user, Password: password})
}

// Banner returns the system-use notification.
func (c *Client) Banner(ctx context.Context) (*apiv1.Banner, error) {
	return call[apiv1.Banner](ctx, c, http.MethodGet, "/banner", nil)
}

// Version returns the controller's versions (needs a session).
func (c *Client) Version(ctx context.Context) (*apiv1.Version, error) {
	return call[apiv1.Version](ctx, c, http.MethodGet, "/version", nil)
}

// Enroll enrolls a device.
func (c *Client) Enroll(ctx context.Context, req apiv1.EnrollRequest) (*apiv1.EnrollResponse, error) {
	return call[apiv1.EnrollResponse](ctx, c, http.MethodPost, "/enroll", req)
}

// CreateEnrollToken makes an enrollment token; the result holds the secret.
func (c *Client) CreateEnrollToken(ctx context.Context, req apiv1.CreateEnrollTokenRequest) (*apiv1.EnrollToken, error) {
	return call[apiv1.EnrollToken](ctx, c, http.MethodPost, "/enroll-tokens", req)
}

// ListEnrollTokens lists enrollment tokens (without secrets).
func (c *Client) ListEnrollTokens(ctx context.Context) ([]apiv1.EnrollToken, error) {
	return list[apiv1.EnrollToken](ctx, c, http.MethodGet, "/enroll-tokens", nil)
}

// RevokeEnrollToken revokes an enrollment token.
func (c *Client) RevokeEnrollToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/enroll-tokens/"+esc(id), nil, nil)
}

// ListDevices lists devices.
func (c *Client) ListDevices(ctx context.Context) ([]apiv1.Device, error) {
	return list[apiv1.Device](ctx, c, http.MethodGet, "/devices", nil)
}

// GetDevice returns one device.
func (c *Client) GetDevice(ctx context.Context, id string) (*apiv1.Device, error) {
	return call[apiv1.Device](ctx, c, http.MethodGet, "/devices/"+esc(id), nil)
}

// ApproveDevice approves a device enrolled with an approval token.
func (c *Client) ApproveDevice(ctx context.Context, id string) (*apiv1.Device, error) {
	return call[apiv1.Device](ctx, c, http.MethodPost, "/devices/"+esc(id)+"/approve", nil)
}

// SetDeviceLabels sets labels on a device; an empty value removes the key.
func (c *Client) SetDeviceLabels(ctx context.Context, id string, labels map[string]string) (*apiv1.Device, error) {
	return call[apiv1.Device](ctx, c, http.MethodPut, "/devices/"+esc(id)+"/labels", apiv1.SetLabelsRequest{Labels: labels})
}

// DeleteDevice deletes a device.
func (c *Client) DeleteDevice(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/devices/"+esc(id), nil, nil)
}

// CreateGroup makes a device group; selector may be empty.
func (c *Client) CreateGroup(ctx context.Context, name, selector string) (*apiv1.Group, error) {
	return call[apiv1.Group](ctx, c, http.MethodPost, "/groups", apiv1.CreateGroupRequest{Name: name, Selector: selector})
}

// ListGroups lists device groups.
func (c *Client) ListGroups(ctx context.Context) ([]apiv1.Group, error) {
	return list[apiv1.Group](ctx, c, http.MethodGet, "/groups", nil)
}

// GetGroup returns one device group.
func (c *Client) GetGroup(ctx context.Context, name string) (*apiv1.Group, error) {
	return call[apiv1.Group](ctx, c, http.MethodGet, "/groups/"+esc(name), nil)
}

// DeleteGroup deletes a device group. A group that carries a sideload
// override, grants, app assignments or is included by another group is
// refused (409, naming them) unless force is set.
func (c *Client) DeleteGroup(ctx context.Context, name string, force bool) error {
	path := "/groups/" + esc(name)
	if force {
		path += "?force=true"
	}
	return c.do(ctx, http.MethodDelete, path, nil, nil)
}

// RenameGroup renames a device group.
func (c *Client) RenameGroup(ctx context.Context, name, newName string) (*apiv1.Group, error) {
	return call[apiv1.Group](ctx, c, http.MethodPost, "/groups/"+esc(name)+"/rename", apiv1.RenameGroupRequest{Name: newName})
}

// SetGroupSelector replaces a group's label selector; with dryRun it only
// answers what the change would do.
func (c *Client) SetGroupSelector(ctx context.Context, name, selector string, dryRun bool) (*apiv1.SelectorChange, error) {
	path := "/groups/" + esc(name) + "/selector"
	if dryRun {
		path += "?dry_run=true"
	}
	return call[apiv1.SelectorChange](ctx, c, http.MethodPut, path, apiv1.SetSelectorRequest{Selector: selector})
}

// AddGroupDevices adds devices to a group directly.
func (c *Client) AddGroupDevices(ctx context.Context, name string, devices []string) (*apiv1.Group, error) {
	return call[apiv1.Group](ctx, c, http.MethodPost, "/groups/"+esc(name)+"/devices", apiv1.DevicesRequest{Devices: devices})
}

// RemoveGroupDevices removes direct members from a group.
func (c *Client) RemoveGroupDevices(ctx context.Context, name string, devices []string) (*apiv1.Group, error) {
	return call[apiv1.Group](ctx, c, http.MethodPost, "/groups/"+esc(name)+"/devices/remove", apiv1.DevicesRequest{Devices: devices})
}

// IncludeGroup makes parent include child.
func (c *Client) IncludeGroup(ctx context.Context, parent, child string) (*apiv1.Group, error) {
	return call[apiv1.Group](ctx, c, http.MethodPost, "/groups/"+esc(parent)+"/includes", apiv1.IncludeRequest{Group: child})
}

// ExcludeGroup makes parent stop including child.
func (c *Client) ExcludeGroup(ctx context.Context, parent, child string) error {
	return c.do(ctx, http.MethodDelete, "/groups/"+esc(parent)+"/includes/"+esc(child), nil, nil)
}

// FleetStatus returns the fleet summary.
func (c *Client) FleetStatus(ctx context.Context) (*apiv1.FleetStatus, error) {
	return call[apiv1.FleetStatus](ctx, c, http.MethodGet, "/status", nil)
}
