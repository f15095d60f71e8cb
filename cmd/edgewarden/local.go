package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgewarden/edgewarden/agent/localapi/localwire"
)

// exitDenied is the exit status of `local authorize` when the action is
// denied (as `access check`).
const exitDenied = 3

// exitError is an error with its own exit status (run uses ExitCode).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }
func (e exitError) ExitCode() int { return e.code }

// localClient talks to the agent's local API on its unix socket.
type localClient struct {
	socket string
	token  string
	http   *http.Client
}

func newLocalClient(socket, token string) *localClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		ResponseHeaderTimeout: 2 * time.Minute,
	}
	return &localClient{socket: socket, token: token, http: &http.Client{Transport: tr}}
}

// apiError is a refusal or failure the agent answered.
type apiError struct {
	status int
	body   localwire.Error
	raw    []byte
}

func (e *apiError) Error() string { return e.body.Error }

// do sends a request and decodes a 2xx answer into out. A non-2xx answer
// is an *apiError with the agent's message.
func (c *localClient) do(ctx context.Context, method, path string, body io.Reader, size int64, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, body)
	if err != nil {
		return err
	}
	if size >= 0 && body != nil {
		req.ContentLength = size
	}
	if c.token != "" && path != localwire.PathBanner {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.connError(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read the agent's answer to %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &apiError{status: resp.StatusCode, raw: b}
		if json.Unmarshal(b, &e.body) != nil || e.body.Error == "" {
			e.body.Error = fmt.Sprintf("the agent answered %s %s with %s", method, path, resp.Status)
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("the agent's answer to %s %s is not valid JSON (%v); are the CLI and the agent the same version?", method, path, err)
	}
	return nil
}

func (c *localClient) connError(err error) error {
	hint := "is edgewarden-agent running on this device, and is --socket its socket (see `edgewarden-agent status`)?"
	switch {
	case errors.Is(err, syscall.EACCES) || errors.Is(err, os.ErrPermission):
		hint = "the socket is mode 0660: run as a member of the agent's group (or its socket_group)"
	case errors.Is(err, syscall.ENOENT):
		hint = "no socket there: " + hint
	}
	return fmt.Errorf("cannot reach the agent's local API at %s: %v; %s", c.socket, rootCause(err), hint)
}

// rootCause strips url.Error and net.OpError wrapping for a short message.
func rootCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	return err
}

func (a *app) localCmd() *cobra.Command {
	var socket, token string
	client := func(cmd *cobra.Command) (*localClient, error) {
		if token == "" {
			token = strings.TrimSpace(a.getenv("EDGEWARDEN_TOKEN"))
		}
		c := newLocalClient(socket, token)
		if err := a.showBanner(cmd.Context(), c); err != nil {
			return nil, err
		}
		return c, nil
	}

	status := &cobra.Command{
		Use:     "status",
		Short:   "Show the device as its agent sees it, and what you may do on it (device:view)",
		Example: "  edgewarden local status --token $T\n  EDGEWARDEN_TOKEN=$T edgewarden local status -o json",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client(cmd)
			if err != nil {
				return err
			}
			var st localwire.Status
			if err := c.do(cmd.Context(), "GET", localwire.PathStatus, nil, -1, &st); err != nil {
				return err
			}
			return a.emit(st, func(w *tabwriter.Writer) {
				row(w, "device:", st.DeviceID)
				row(w, "agent version:", st.AgentVersion)
				row(w, "applied revision:", st.AppliedRevision)
				row(w, "policy expires:", timeString(st.PolicyExpiresAt))
				row(w, "groups:", listString(st.Groups))
				row(w, "sideload:", map[bool]string{true: "allowed", false: "banned"}[st.SideloadAllowed])
				row(w, "user:", st.User)
				perms := make([]string, len(st.Permissions))
				for i, p := range st.Permissions {
					perms[i] = string(p)
				}
				row(w, "your actions here:", listString(perms))
			})
		},
	}

	ls := &cobra.Command{
		Use:     "ls",
		Short:   "List the apps on the device (device:view)",
		Example: "  edgewarden local apps ls",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client(cmd)
			if err != nil {
				return err
			}
			var apps localwire.Apps
			if err := c.do(cmd.Context(), "GET", localwire.PathApps, nil, -1, &apps); err != nil {
				return err
			}
			return a.emit(apps, func(w *tabwriter.Writer) {
				row(w, "NAME", "VERSION", "STATE", "SIDELOADED", "REASON")
				for _, ap := range apps.Apps {
					row(w, ap.Name, ap.Version, ap.State, yesNo(ap.Sideloaded), cmp.Or(ap.Reason, "-"))
				}
			})
		},
	}
	appOp := func(op, short string) *cobra.Command {
		return &cobra.Command{
			Use:     op + " NAME",
			Short:   short,
			Example: "  edgewarden local apps " + op + " historian",
			Args:    args(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, argv []string) error {
				c, err := client(cmd)
				if err != nil {
					return err
				}
				var res localwire.AppResult
				if err := c.do(cmd.Context(), "POST", localwire.PathApps+"/"+url.PathEscape(argv[0])+"/"+op, nil, -1, &res); err != nil {
					return err
				}
				return a.emit(res, func(w *tabwriter.Writer) {
					row(w, res.App.Name, res.App.Version, res.App.State)
				})
			},
		}
	}
	var lines int
	logs := &cobra.Command{
		Use:     "logs NAME",
		Short:   "Print the latest log lines of an app (device:logs)",
		Example: "  edgewarden local apps logs historian --lines 50",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if lines < 1 || lines > 10000 {
				return usagef("--lines %d: want 1 to 10000", lines)
			}
			c, err := client(cmd)
			if err != nil {
				return err
			}
			var l localwire.Logs
			path := fmt.Sprintf("%s/%s/logs?lines=%d", localwire.PathApps, url.PathEscape(argv[0]), lines)
			if err := c.do(cmd.Context(), "GET", path, nil, -1, &l); err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(l)
			}
			for _, line := range l.Lines {
				fmt.Fprintln(a.stdout, termSafe(line))
			}
			return nil
		},
	}
	logs.Flags().IntVar(&lines, "lines", 100, "how many of the latest lines")
	install := &cobra.Command{
		Use:   "install FILE",
		Short: "Sideload a local package (device:sideload, only where the sideload ban is lifted)",
		Long: `install sends a local package to the agent, which installs and starts it as a
sideloaded app. The package is a tar.gz holding manifest.json at its top (the
format 'edgewarden apps manifest' writes; unsigned) and exactly the files it
lists, each matching its size and sha256. Refused while the sideload ban is on
for the device (lift it with 'edgewarden settings sideload allow --group G'),
and for a name a managed app holds.`,
		Example: "  edgewarden local apps install ./tool-0.1.0.tar.gz",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			f, err := os.Open(argv[0])
			if err != nil {
				return fmt.Errorf("open package: %w", err)
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return fmt.Errorf("open package: %w", err)
			}
			if !fi.Mode().IsRegular() {
				return fmt.Errorf("package %s is not a regular file", argv[0])
			}
			c, err := client(cmd)
			if err != nil {
				return err
			}
			var body io.Reader = f
			if isTerminal(a.stderr) {
				body = &progress{r: f, total: fi.Size(), w: a.stderr, name: filepath.Base(argv[0])}
			}
			var res localwire.AppResult
			path := localwire.PathInstall + "?filename=" + url.QueryEscape(filepath.Base(argv[0]))
			err = c.do(cmd.Context(), "POST", path, body, fi.Size(), &res)
			if p, ok := body.(*progress); ok {
				p.done()
			}
			if err != nil {
				return err
			}
			return a.emit(res, func(w *tabwriter.Writer) {
				row(w, "installed:", res.App.Name, res.App.Version, res.App.State, "(sideloaded)")
			})
		},
	}
	apps := group("apps", "Operate the apps on this device", "  edgewarden local apps ls\n  edgewarden local apps logs historian --lines 50",
		ls,
		appOp("start", "Start an app (device:app-operate)"),
		appOp("stop", "Stop an app (device:app-operate)"),
		logs, install)

	authorize := &cobra.Command{
		Use:     "authorize ACTION",
		Short:   "Ask whether your token allows ACTION on this device (exit 0 allowed, 3 denied)",
		Example: "  edgewarden local authorize device:app-operate\n  edgewarden local authorize device:logs -o json",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			c, err := client(cmd)
			if err != nil {
				return err
			}
			var res localwire.Authorization
			err = c.do(cmd.Context(), "GET", localwire.PathAuthorize+"?action="+url.QueryEscape(argv[0]), nil, -1, &res)
			var ae *apiError
			if errors.As(err, &ae) && ae.status == http.StatusForbidden && json.Unmarshal(ae.raw, &res) == nil && res.Action != "" {
				// The grants denied it.
				if a.output == "json" {
					if err := a.printJSON(res); err != nil {
						return err
					}
				}
				return exitError{exitDenied, errors.New(res.Explanation)}
			}
			if ae != nil && ae.status == http.StatusBadRequest {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			return a.emit(res, func(w *tabwriter.Writer) { fmt.Fprintln(w, res.Explanation) })
		},
	}

	cmd := group("local", "Use this device's agent: status, apps, authorize (with an operator token)",
		`  export EDGEWARDEN_TOKEN=$(edgewarden tokens issue ...)   # on the controller
  edgewarden local status
  edgewarden local apps stop historian
  edgewarden local authorize device:app-access && echo allowed`,
		status, apps, authorize)
	cmd.Long = `edgewarden local talks to the Edgewarden agent on this device through its
local API (a unix socket, mode 0660: be a member of the agent's group).

Every command but the banner needs an operator token: get one on the
controller with 'edgewarden tokens issue' and pass it with --token or
$EDGEWARDEN_TOKEN. The agent checks it offline and decides each action with
the grants of its current policy, so it works while the controller is
unreachable.

The device's system-use notification, if one is set, is printed on stderr
before every command, so it is always shown and never mixes with the output
(-o json stays parseable).

Exit status: 0 success, 1 failure or refusal, 2 bad usage, 3 'authorize'
denied.`
	cmd.PersistentFlags().StringVar(&socket, "socket", localwire.DefaultSocket, "the agent's local API socket")
	cmd.PersistentFlags().StringVar(&token, "token", "", "operator token (default $EDGEWARDEN_TOKEN)")
	return cmd
}

// showBanner prints the system-use notification on stderr, if there is one.
func (a *app) showBanner(ctx context.Context, c *localClient) error {
	var b localwire.Banner
	if err := c.do(ctx, "GET", localwire.PathBanner, nil, -1, &b); err != nil {
		return err
	}
	if text := strings.TrimSpace(b.Banner); text != "" {
		fmt.Fprintln(a.stderr, text)
		fmt.Fprintln(a.stderr)
	}
	return nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress reports an upload's progress on a terminal.
type progress struct {
	r       io.Reader
	w       io.Writer
	name    string
	total   int64
	n       int64
	printed time.Time
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if now := time.Now(); now.Sub(p.printed) > 200*time.Millisecond {
		p.printed = now
		p.print()
	}
	return n, err
}

func (p *progress) print() {
	pct := 100.0
	if p.total > 0 {
		pct = float64(p.n) * 100 / float64(p.total)
	}
	fmt.Fprintf(p.w, "\rupload %s: %d/%d bytes (%.0f%%)", p.name, p.n, p.total, pct)
}

func (p *progress) done() {
	p.print()
	fmt.Fprintln(p.w)
}
