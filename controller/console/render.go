package console

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/edgewarden/edgewarden/protocol/access"
)

// pageData is what every template gets: the page's own data in Data, and
// the frame (user, CSRF token, message of the last form).
type pageData struct {
	Title string
	Data  any

	Me    *me
	CSRF  string
	Flash string
	Path  string
	// URL is the page's own path and query (what htmx polls).
	URL string
	// Partial is set for an htmx request: the page's main part only.
	Partial bool
}

var funcs = template.FuncMap{
	"ago":    ago,
	"silent": silent,
	"when":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"whenp":  func(t *time.Time) string { return whenp(t) },
	"join":   strings.Join,
	"path":   pathEscape,
	"short":  short,
	"holds": func(r *apiv1.Role, a access.Action) bool {
		return r != nil && slices.Contains(r.Actions, a)
	},
	"labels":  labelList,
	"has":     slices.Contains[[]string],
	"states":  func() []string { return deviceStates },
	"actions": func() []string { return catalogue },
	"pct": func(n, total int) int {
		if total == 0 {
			return 0
		}
		return n * 100 / total
	},
}

// catalogue is the action list offered by the explain form.
var catalogue = []string{
	"controller:manage-users", "controller:manage-roles", "controller:settings", "controller:audit",
	"controller:trust", "controller:create-device-group", "controller:enroll", "controller:manage-tokens",
	"device-group:view", "device-group:manage-members", "device-group:share", "device-group:delete",
	"device:view", "device:app-install", "device:app-operate", "device:app-access", "device:logs",
	"device:sideload", "device:manage", "app:view", "app:publish", "app:deploy", "app:delete-version",
}

// parseTemplates parses each page template with the layout.
func (c *Console) parseTemplates() error {
	c.tmpl = map[string]*template.Template{}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return fmt.Errorf("console: parse template %s: %w", n, err)
		}
		c.tmpl[base] = t
	}
	return nil
}

// render writes the page name with data, in the layout (or only its main
// part for an htmx request).
func (c *Console) render(w http.ResponseWriter, r *http.Request, rq *request, status int, name string, data any) {
	pd, ok := data.(pageData)
	if !ok {
		pd = pageData{Data: data}
		if ep, ok := data.(errorPage); ok {
			pd.Title = fmt.Sprintf("%d %s", ep.Status, http.StatusText(ep.Status))
		}
	}
	if rq != nil {
		pd.Me, pd.CSRF = rq.me, rq.csrf
	}
	pd.Flash = r.URL.Query().Get("ok")
	pd.Path = r.URL.Path
	pd.URL = r.URL.RequestURI()
	pd.Partial = r.Header.Get("HX-Request") == "true"
	t := c.tmpl[name]
	var buf bytes.Buffer
	if err := t.Execute(&buf, pd); err != nil {
		c.log.Error("console template failed", "page", name, "err", err)
		http.Error(w, "internal error rendering the page; the controller log has the details", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// ago says how long ago t was, coarsely.
func ago(t time.Time) string { return silentFor(time.Since(t)) + " ago" }

func whenp(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC") + " (" + ago(*t) + ")"
}

// silent renders a silence in seconds (nil: never heard from).
func silent(s *int64) string {
	if s == nil {
		return "never heard from"
	}
	return silentFor(time.Duration(*s) * time.Second)
}

func silentFor(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func labelList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func pathEscape(s string) string { return url.PathEscape(s) }

// short abbreviates a long key id ("sha256:" and 64 hex digits) to what
// a person compares; the page keeps the whole id in a title.
func short(id string) string {
	if len(id) > 23 {
		return id[:23] + "…"
	}
	return id
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics on failure)
	return base64.RawURLEncoding.EncodeToString(b)
}

func asClientError(err error, ce **client.Error) bool { return errors.As(err, ce) }

func errSince(s string) error {
	return fmt.Errorf("since %q is not a time: use RFC 3339 (2026-12-01T08:00:00Z), a date (2026-12-01) or a duration back from now (24h)", s)
}

// writeJSONLines writes one JSON value per line.
func writeJSONLines[T any](w io.Writer, vs []T) error {
	enc := json.NewEncoder(w)
	for _, v := range vs {
		if err := enc.Encode(v); err != nil {
			return err
		}
	}
	return nil
}
