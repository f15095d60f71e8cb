package localapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/edgewarden/edgewarden/agent/localapi/localwire"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/access"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// errBanned: the sideload ban is on.
var errBanned = errors.New("sideload is banned on this device")

// Limits on requests.
const (
	maxAuthorizeBody = 4 << 10
	defaultLogLines  = 100
	maxLogLines      = 10000
)

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET "+localwire.PathBanner, s.banner)
	m.HandleFunc("GET "+localwire.PathStatus, s.status)
	m.HandleFunc("GET "+localwire.PathApps, s.listApps)
	m.HandleFunc("POST "+localwire.PathApps+"/{name}/start", s.appOp("start"))
	m.HandleFunc("POST "+localwire.PathApps+"/{name}/stop", s.appOp("stop"))
	m.HandleFunc("GET "+localwire.PathApps+"/{name}/logs", s.logs)
	m.HandleFunc("POST "+localwire.PathInstall, s.install)
	m.HandleFunc(localwire.PathAuthorize, s.authorize)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s %s: no such endpoint of the agent's local API; is `edgewarden local` older or newer than the agent?", r.Method, r.URL.Path))
	})
	s.mux = m
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"encode response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, localwire.Error{Error: msg})
}

// bearer returns the token of the Authorization header ("" if none).
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// check authorizes the request for action. On refusal it answers the
// request, queues a denied event, and returns ok false.
func (s *Server) check(w http.ResponseWriter, r *http.Request, action access.Action) (Grant, bool) {
	g, err := s.Authorize(bearer(r), action)
	if err != nil {
		s.refuse(w, r, g, action, err)
		return g, false
	}
	return g, true
}

// refuse answers a request Authorize refused and queues the denied event.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, g Grant, action access.Action, err error) {
	s.denied(r, g, action, err)
	if status := statusOf(err); status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="edgewarden-agent"`)
		writeError(w, status, err.Error())
		return
	}
	body := localwire.Error{Error: err.Error()}
	if errors.Is(err, ErrDenied) {
		d := g.Decision
		body.Decision = &d
	}
	writeJSON(w, http.StatusForbidden, body)
}

// denied queues the security event of a refused request.
func (s *Server) denied(r *http.Request, g Grant, action access.Action, err error) {
	user := g.Claims.Subject
	var rev string
	if g.Policy != nil {
		rev = strconv.FormatUint(g.Policy.Revision, 10)
	}
	who := user
	if who == "" {
		who = "unauthenticated caller"
	}
	s.audit.record(r.Context(), protocol.Event{
		Kind:     protocol.EventLocalAccessDenied,
		Severity: protocol.SeveritySecurity,
		Message:  fmt.Sprintf("local access denied: %s, %s: %v", who, action, err),
		Details: details(r.Context(),
			"user", user,
			"action", string(action),
			"reason", reasonOf(err),
			"message", err.Error(),
			"request", r.Method+" "+r.URL.Path,
			"token_id", g.Claims.ID,
			"revision", rev,
		),
	})
}

// banner needs no token: it is shown before one is presented.
func (s *Server) banner(w http.ResponseWriter, r *http.Request) {
	var b localwire.Banner
	if p := s.opts.Policy(); p != nil {
		b.Banner = p.Doc.Banner
	}
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	g, ok := s.check(w, r, access.DeviceView)
	if !ok {
		return
	}
	p := g.Policy
	perms := p.Access.Permissions(g.Claims.Subject, p.Device)
	if perms == nil {
		perms = []access.Action{}
	}
	groups := p.Doc.Groups
	if groups == nil {
		groups = []string{}
	}
	writeJSON(w, http.StatusOK, localwire.Status{
		DeviceID:        s.opts.DeviceID,
		AgentVersion:    s.opts.AgentVersion,
		AppliedRevision: p.Revision,
		PolicyIssuedAt:  p.IssuedAt.UTC(),
		PolicyExpiresAt: p.ExpiresAt.UTC(),
		Groups:          groups,
		SideloadAllowed: p.Doc.Sideload.Allowed,
		User:            g.Claims.Subject,
		Permissions:     perms,
	})
}

// appError answers a failed Apps call.
func appError(w http.ResponseWriter, what string, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNoApp):
		status = http.StatusNotFound
	case errors.Is(err, ErrNoRuntime):
		status = http.StatusNotImplemented
	case errors.Is(err, ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, ErrConflict):
		status = http.StatusConflict
	}
	writeError(w, status, what+": "+err.Error())
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.check(w, r, access.DeviceView); !ok {
		return
	}
	apps, err := s.opts.Apps.List(r.Context())
	if err != nil {
		appError(w, "list apps", err)
		return
	}
	if apps == nil {
		apps = []protocol.AppStatus{}
	}
	writeJSON(w, http.StatusOK, localwire.Apps{Apps: apps})
}

// appName returns the {name} path value if it is a valid app name.
func appName(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.PathValue("name")
	if !manifest.NamePattern.MatchString(name) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("app name %q is not valid: app names match %s; list them with `edgewarden local apps ls`", clip(name), manifest.NamePattern))
		return "", false
	}
	return name, true
}

func (s *Server) appOp(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, ok := appName(w, r)
		if !ok {
			return
		}
		g, ok := s.check(w, r, access.DeviceAppOperate)
		if !ok {
			return
		}
		var st protocol.AppStatus
		var err error
		if op == "start" {
			st, err = s.opts.Apps.Start(r.Context(), name)
		} else {
			st, err = s.opts.Apps.Stop(r.Context(), name)
		}
		if err != nil {
			appError(w, op+" app "+name, err)
			return
		}
		s.audit.record(r.Context(), protocol.Event{
			Kind:     protocol.EventLocalAction,
			Severity: protocol.SeverityInfo,
			Message:  fmt.Sprintf("%s %s app %s locally", g.Claims.Subject, verbPast(op), name),
			Details:  details(r.Context(), "user", g.Claims.Subject, "action", op, "app", name, "token_id", g.Claims.ID),
		})
		writeJSON(w, http.StatusOK, localwire.AppResult{App: st})
	}
}

func verbPast(op string) string {
	if op == "stop" {
		return "stopped"
	}
	return op + "ed"
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	name, ok := appName(w, r)
	if !ok {
		return
	}
	lines := defaultLogLines
	if v := r.URL.Query().Get("lines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLogLines {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("lines=%q: want a number from 1 to %d", clip(v), maxLogLines))
			return
		}
		lines = n
	}
	if _, ok := s.check(w, r, access.DeviceLogs); !ok {
		return
	}
	out, err := s.opts.Apps.Logs(r.Context(), name, lines)
	if err != nil {
		appError(w, "logs of app "+name, err)
		return
	}
	if out == nil {
		out = []string{}
	}
	writeJSON(w, http.StatusOK, localwire.Logs{App: name, Lines: out})
}

func (s *Server) install(w http.ResponseWriter, r *http.Request) {
	g, ok := s.check(w, r, access.DeviceSideload)
	if !ok {
		return
	}
	if !g.Policy.Doc.Sideload.Allowed {
		err := fmt.Errorf("%w: the sideload ban is on for this device, so local installs are refused; %s, or assign a signed app version from the controller instead",
			errBanned, howToLift(g.Policy.Doc.Sideload, g.Policy.Doc.Groups))
		s.denied(r, g, access.DeviceSideload, err)
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	filename := path.Base(r.URL.Query().Get("filename"))
	if filename == "." || filename == "/" {
		filename = ""
	}
	body := http.MaxBytesReader(w, r.Body, s.opts.MaxInstallBytes)
	st, err := s.opts.Apps.Install(r.Context(), InstallRequest{User: g.Claims.Subject, Filename: filename, Package: body})
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("install %s: the package is larger than the agent's limit of %d bytes", filename, s.opts.MaxInstallBytes))
			return
		}
		appError(w, "install "+filename, err)
		return
	}
	s.audit.record(r.Context(), protocol.Event{
		Kind:     protocol.EventSideloadInstalled,
		Severity: protocol.SeveritySecurity,
		Message:  fmt.Sprintf("%s sideloaded app %s %s locally", g.Claims.Subject, st.Name, st.Version),
		Details: details(r.Context(), "user", g.Claims.Subject, "action", "install", "app", st.Name,
			"version", st.Version, "file", filename, "token_id", g.Claims.ID),
	})
	writeJSON(w, http.StatusOK, localwire.AppResult{App: st})
}

// howToLift says who can lift the ban and with which command: the groups
// whose override bans it (deny wins, so each must be lifted), else any
// group of the device, else the global policy.
func howToLift(p protocol.SideloadPolicy, groups []string) string {
	switch {
	case len(p.Groups) > 0:
		cmds := make([]string, len(p.Groups))
		for i, g := range p.Groups {
			cmds[i] = "`edgewarden settings sideload allow --group " + g + "`"
		}
		return fmt.Sprintf("it is banned by the override of group %s: a user with device:sideload on that group can lift it with %s",
			strings.Join(p.Groups, ", "), strings.Join(cmds, " and "))
	case len(groups) > 0:
		return fmt.Sprintf("a user with device:sideload on one of its groups (%s) can lift it for that group with `edgewarden settings sideload allow --group %s`, or an admin with controller:settings everywhere with `edgewarden settings sideload allow`",
			strings.Join(groups, ", "), groups[0])
	}
	return "the device is in no group, so only an admin with controller:settings can lift it, for every device, with `edgewarden settings sideload allow` (or add the device to a group and use `edgewarden settings sideload allow --group G`)"
}

// authorize answers POST {action}, or any method with ?action=A (nginx
// auth_request keeps the original method unless told otherwise).
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("action")
	if name == "" {
		if r.Method != http.MethodPost {
			writeError(w, http.StatusBadRequest, "authorize: no action; use GET /v1/authorize?action=A or POST {\"action\": A}")
			return
		}
		var req localwire.AuthorizeRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, maxAuthorizeBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("authorize: request body: %v; send {\"action\": \"device:...\"}", err))
			return
		}
		name = req.Action
	}
	action, err := access.ParseAction(name)
	if err != nil {
		writeError(w, http.StatusBadRequest, "authorize: "+err.Error())
		return
	}
	g, err := s.Authorize(bearer(r), action)
	if err != nil && !errors.Is(err, ErrDenied) {
		s.refuse(w, r, g, action, err)
		return
	}
	res := localwire.Authorization{
		Allowed:     err == nil,
		User:        g.Claims.Subject,
		Action:      action,
		Device:      s.opts.DeviceID,
		Decision:    g.Decision,
		Explanation: g.Decision.String(),
	}
	if err != nil {
		s.denied(r, g, action, err)
		res.Error = err.Error()
		writeJSON(w, http.StatusForbidden, res)
		return
	}
	w.Header().Set(localwire.HeaderUser, g.Claims.Subject)
	writeJSON(w, http.StatusOK, res)
}

// clip shortens untrusted text for error messages.
func clip(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.ToValidUTF8(string(bytes.ReplaceAll([]byte(s), []byte("\n"), []byte(" "))), "?")
}
