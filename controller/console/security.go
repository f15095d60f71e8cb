package console

import (
	"net/http"
	"strings"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
)

type securityData struct {
	Publishers []apiv1.Publisher
	Settings   *apiv1.Settings
}

func (c *Console) securityPage(rq *request) error {
	var d securityData
	var err error
	d.Publishers, err = rq.api.ListPublishers(rq.ctx())
	if err != nil && !client.IsStatus(err, http.StatusServiceUnavailable) {
		return err
	}
	if d.Settings, err = rq.api.Settings(rq.ctx()); err != nil {
		return err
	}
	return c.page(rq, "security", "Security", d)
}

type auditData struct {
	Entries []apiv1.AuditEntry
	Filter  auditFilter
	Export  string
}

type auditFilter struct{ Kind, Since, Actor, Action string }

// auditEntries reads the audit log with the API's filters (kind, since)
// and narrows it by actor and action.
func (c *Console) auditEntries(rq *request) ([]apiv1.AuditEntry, auditFilter, error) {
	q := rq.r.URL.Query()
	f := auditFilter{Kind: q.Get("kind"), Since: q.Get("since"), Actor: strings.TrimSpace(q.Get("actor")), Action: strings.TrimSpace(q.Get("action"))}
	af := client.AuditFilter{Kind: f.Kind}
	if f.Since != "" {
		t, err := parseSince(f.Since, c.now())
		if err != nil {
			return nil, f, &client.Error{Status: http.StatusBadRequest, Message: err.Error()}
		}
		af.Since = t
	}
	es, err := rq.api.ListAudit(rq.ctx(), af)
	if err != nil {
		return nil, f, err
	}
	out := es[:0]
	for _, e := range es {
		if (f.Actor == "" || e.Actor == f.Actor) && (f.Action == "" || strings.HasPrefix(e.Action, f.Action)) {
			out = append(out, e)
		}
	}
	return out, f, nil
}

func (c *Console) auditPage(rq *request) error {
	es, f, err := c.auditEntries(rq)
	if err != nil {
		return err
	}
	return c.page(rq, "audit", "Audit log", auditData{Entries: es, Filter: f, Export: "/security/audit.jsonl?" + rq.r.URL.RawQuery})
}

// auditExport writes the filtered audit log as JSON lines, one entry a
// line, as a download.
func (c *Console) auditExport(rq *request) error {
	es, _, err := c.auditEntries(rq)
	if err != nil {
		return err
	}
	rq.w.Header().Set("Content-Type", "application/jsonl; charset=utf-8")
	rq.w.Header().Set("Content-Disposition", `attachment; filename="edgewarden-audit.jsonl"`)
	return writeJSONLines(rq.w, es)
}

// parseSince reads an RFC 3339 time, a date (2006-01-02) or a duration
// back from now ("24h").
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errSince(s)
}

func (c *Console) publisherAdd(rq *request) error {
	f := rq.r.PostForm
	name := strings.TrimSpace(f.Get("name"))
	if _, err := rq.api.AddPublisherKey(rq.ctx(), name, f.Get("key")); err != nil {
		return err
	}
	return redirect(rq, "/security", "Publisher "+name+" now trusts the key.")
}

func (c *Console) publisherRemove(rq *request) error {
	name := rq.r.PathValue("name")
	if err := rq.api.RemovePublisher(rq.ctx(), name); err != nil {
		return err
	}
	return redirect(rq, "/security", "Publisher "+name+" is no longer trusted; its app versions are not installable.")
}

func (c *Console) publisherKeyRemove(rq *request) error {
	name, key := rq.r.PathValue("name"), rq.r.PathValue("key")
	if err := rq.api.RemovePublisherKey(rq.ctx(), name, key); err != nil {
		return err
	}
	return redirect(rq, "/security", "Key "+key+" of "+name+" is no longer trusted.")
}

// sideloadSet sets the global policy, or with a group its override
// ("inherit" removes the override).
func (c *Console) sideloadSet(rq *request) error {
	f := rq.r.PostForm
	group, policy := strings.TrimSpace(f.Get("group")), f.Get("policy")
	var err error
	switch {
	case group == "":
		_, err = rq.api.SetSideload(rq.ctx(), policy)
	case policy == "inherit":
		err = rq.api.DeleteGroupSideload(rq.ctx(), group)
	default:
		_, err = rq.api.SetGroupSideload(rq.ctx(), group, policy)
	}
	if err != nil {
		return err
	}
	if group == "" {
		return redirect(rq, "/security", "The global sideload policy is now "+policy+".")
	}
	return redirect(rq, "/security", "Sideload policy of group "+group+": "+policy+".")
}
