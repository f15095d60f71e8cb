package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"

	"github.com/edgewarden/edgewarden/controller/apiv1"
)

// AddPublisherKey trusts a PEM public key (cosign.pub) for a publisher,
// creating the publisher if needed.
func (c *Client) AddPublisherKey(ctx context.Context, name, keyPEM string) (*apiv1.Publisher, error) {
	return call[apiv1.Publisher](ctx, c, http.MethodPost, "/publishers", apiv1.AddPublisherKeyRequest{Name: name, KeyPEM: keyPEM})
}

// ListPublishers lists publishers, removed ones included.
func (c *Client) ListPublishers(ctx context.Context) ([]apiv1.Publisher, error) {
	return list[apiv1.Publisher](ctx, c, http.MethodGet, "/publishers", nil)
}

// RemovePublisher stops trusting a publisher and all its keys.
func (c *Client) RemovePublisher(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/publishers/"+esc(name), nil, nil)
}

// RemovePublisherKey stops trusting one key of a publisher (its id, or a
// unique prefix of at least 8 hex digits).
func (c *Client) RemovePublisherKey(ctx context.Context, name, keyID string) error {
	return c.do(ctx, http.MethodDelete, "/publishers/"+esc(name)+"/keys/"+esc(keyID), nil, nil)
}

// PushArtifact is one artifact file of a push.
type PushArtifact struct {
	// Path is the artifact's path exactly as the manifest writes it.
	Path string
	// Open returns the artifact's content; it is called once, and the
	// reader is closed when sent.
	Open func() (io.ReadCloser, error)
}

// PushRequest is an app version to upload.
type PushRequest struct {
	Manifest  []byte // exact bytes that were signed
	Signature []byte // base64 text or bundle, as cosign wrote it
	Artifacts []PushArtifact
	// Progress, if set, is called with the number of body bytes sent so
	// far as the upload proceeds (from the uploading goroutine).
	Progress func(sent int64)
}

// PushApp uploads an app version as one streamed multipart request (see
// apiv1.PartManifest); the controller verifies the signature before it
// reads the artifacts. The request is not bounded by Options.Timeout, only
// by ctx: uploads of large artifacts take as long as they take.
func (c *Client) PushApp(ctx context.Context, req PushRequest) (*apiv1.AppVersion, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	done := make(chan error, 1)
	go func() {
		err := writePush(mw, req)
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
		done <- err
	}()
	var body io.Reader = pr
	if req.Progress != nil {
		body = &progressReader{r: pr, f: req.Progress}
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+"/api/v1/apps", body)
	if err != nil {
		pr.CloseWithError(err)
		<-done
		return nil, err
	}
	hreq.Header.Set("Content-Type", mw.FormDataContentType())
	hreq.Header.Set("Accept", "application/json")
	if c.token != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := *c.http
	hc.Timeout = 0
	resp, err := hc.Do(hreq)
	// The controller may answer (a refusal) before reading everything:
	// stop the writer and wait for it.
	pr.CloseWithError(io.ErrClosedPipe)
	werr := <-done
	if err != nil {
		return nil, fmt.Errorf("push to the controller at %s: %w", c.base, unwrapURLError(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("read the controller's answer to the push: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e apiv1.Error
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return nil, &Error{Status: resp.StatusCode, Message: e.Error}
		}
		return nil, &Error{Status: resp.StatusCode, Message: fmt.Sprintf("the controller answered %s to the push", resp.Status)}
	}
	if werr != nil && werr != io.ErrClosedPipe {
		return nil, werr
	}
	var out apiv1.AppVersion
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("decode the controller's answer to the push: %w", err)
	}
	return &out, nil
}

func writePush(mw *multipart.Writer, req PushRequest) error {
	for _, p := range []struct {
		name string
		data []byte
	}{{apiv1.PartManifest, req.Manifest}, {apiv1.PartSignature, req.Signature}} {
		w, err := mw.CreateFormFile(p.name, p.name)
		if err != nil {
			return err
		}
		if _, err := w.Write(p.data); err != nil {
			return err
		}
	}
	for _, a := range req.Artifacts {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", mime.FormatMediaType("form-data", map[string]string{"name": apiv1.PartArtifact, "filename": a.Path}))
		h.Set("Content-Type", "application/octet-stream")
		w, err := mw.CreatePart(h)
		if err != nil {
			return err
		}
		r, err := a.Open()
		if err != nil {
			return fmt.Errorf("open artifact %s: %w", a.Path, err)
		}
		_, err = io.Copy(w, r)
		r.Close()
		if err != nil {
			return fmt.Errorf("send artifact %s: %w", a.Path, err)
		}
	}
	return nil
}

type progressReader struct {
	r io.Reader
	n int64
	f func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if n > 0 {
		p.f(p.n)
	}
	return n, err
}

// ListApps lists apps.
func (c *Client) ListApps(ctx context.Context) ([]apiv1.AppSummary, error) {
	return list[apiv1.AppSummary](ctx, c, http.MethodGet, "/apps", nil)
}

// GetApp returns an app with its versions, assignments and device states.
func (c *Client) GetApp(ctx context.Context, name string) (*apiv1.App, error) {
	return call[apiv1.App](ctx, c, http.MethodGet, "/apps/"+esc(name), nil)
}

// CheckApp returns installation guidance for a version on a group.
func (c *Client) CheckApp(ctx context.Context, name, version, group string, allowDowngrade bool) (*apiv1.CheckResult, error) {
	q := url.Values{"group": {group}}
	if allowDowngrade {
		q.Set("allow_downgrade", "true")
	}
	return call[apiv1.CheckResult](ctx, c, http.MethodGet, "/apps/"+esc(name)+"/versions/"+esc(version)+"/check?"+q.Encode(), nil)
}

// AssignApp assigns a version to a group.
func (c *Client) AssignApp(ctx context.Context, name string, req apiv1.AssignRequest) (*apiv1.AssignResponse, error) {
	return call[apiv1.AssignResponse](ctx, c, http.MethodPost, "/apps/"+esc(name)+"/assignments", req)
}

// UnassignApp removes an app's assignment to a group.
func (c *Client) UnassignApp(ctx context.Context, name, group string) error {
	return c.do(ctx, http.MethodDelete, "/apps/"+esc(name)+"/assignments/"+esc(group), nil, nil)
}

// DeleteAppVersion deletes a version that is assigned nowhere.
func (c *Client) DeleteAppVersion(ctx context.Context, name, version string) error {
	return c.do(ctx, http.MethodDelete, "/apps/"+esc(name)+"/versions/"+esc(version), nil, nil)
}
