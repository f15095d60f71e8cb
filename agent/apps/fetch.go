package apps

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/edgewarden/edgewarden/agent/install"
	"github.com/edgewarden/edgewarden/protocol"
)

// FetchOptions configure NewFetch.
type FetchOptions struct {
	// BaseURL is the controller's REST base URL (identity.HTTPURL).
	BaseURL string
	// TLS is the device's client TLS configuration (identity.ClientTLS):
	// the controller CA and the device certificate, which the artifact
	// endpoint requires.
	TLS *tls.Config
	// HeaderTimeout bounds the wait for the response headers. Zero means
	// 30s. The body has no overall timeout (artifacts can be large); a
	// stalled connection ends with the context or the TCP keepalive.
	HeaderTimeout time.Duration
}

var digestPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// NewFetch returns the installer's FetchFunc: HTTPS GET
// {BaseURL}/api/v1/artifacts/{sha256} with the device's client certificate,
// and a Range header to resume at offset. A server that ignores the range
// (200 instead of 206) is handled by skipping the bytes already held.
func NewFetch(opts FetchOptions) (install.FetchFunc, error) {
	if opts.BaseURL == "" || opts.TLS == nil {
		return nil, errors.New("artifact fetch: BaseURL and TLS are required")
	}
	if opts.HeaderTimeout <= 0 {
		opts.HeaderTimeout = 30 * time.Second
	}
	base := strings.TrimSuffix(opts.BaseURL, "/")
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:       opts.TLS.Clone(),
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: opts.HeaderTimeout,
		MaxIdleConns:          2,
		IdleConnTimeout:       time.Minute,
		ForceAttemptHTTP2:     true,
	}}
	return func(ctx context.Context, digest string, offset int64) (io.ReadCloser, error) {
		if !digestPattern.MatchString(digest) {
			return nil, fmt.Errorf("artifact digest %q is not 64 lowercase hex digits", digest)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+protocol.ArtifactPath(digest), nil)
		if err != nil {
			return nil, err
		}
		if offset > 0 {
			req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetch artifact %s from %s: %w", digest[:12], base, err)
		}
		switch {
		case resp.StatusCode == http.StatusPartialContent && offset > 0:
			start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
			if !ok || start != offset {
				resp.Body.Close()
				return nil, fmt.Errorf("fetch artifact %s: server answered range %q, asked for bytes=%d-", digest[:12], resp.Header.Get("Content-Range"), offset)
			}
			return resp.Body, nil
		case resp.StatusCode == http.StatusOK:
			if offset > 0 {
				if _, err := io.CopyN(io.Discard, resp.Body, offset); err != nil {
					resp.Body.Close()
					return nil, fmt.Errorf("fetch artifact %s: skip %d bytes already downloaded: %w", digest[:12], offset, err)
				}
			}
			return resp.Body, nil
		default:
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			return nil, fmt.Errorf("fetch artifact %s from %s: %s: %s", digest[:12], base, resp.Status, strings.TrimSpace(string(msg)))
		}
	}, nil
}

// contentRangeStart parses the first byte of "bytes START-END/SIZE".
func contentRangeStart(h string) (int64, bool) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, false
	}
	startStr, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(startStr, 10, 64)
	return n, err == nil && n >= 0
}
