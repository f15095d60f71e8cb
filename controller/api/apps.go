package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/catalog"
	"github.com/edgewarden/edgewarden/controller/desired"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/access"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// AppStore is what the publisher and app endpoints need from the database;
// *store.DB implements it. Errors follow the Store conventions.
type AppStore interface {
	AddPublisherKey(ctx context.Context, name, pemKey, by string, at time.Time) (store.Publisher, error)
	GetPublisher(ctx context.Context, name string) (store.Publisher, error)
	ListPublishers(ctx context.Context) ([]store.Publisher, error)
	RemovePublisher(ctx context.Context, name string, at time.Time) error
	RemovePublisherKey(ctx context.Context, name, keyID string, at time.Time) (store.Publisher, error)

	PutAppVersion(ctx context.Context, v store.AppVersion) error
	HasAppVersion(ctx context.Context, name, version string) (bool, error)
	GetAppVersion(ctx context.Context, name, version string) (store.AppVersion, error)
	ListAppVersions(ctx context.Context) ([]store.AppVersion, error)
	DeleteAppVersion(ctx context.Context, name, version string) error
	ReferencedArtifacts(ctx context.Context) (map[string]bool, error)

	AssignApp(ctx context.Context, a store.Assignment) (store.Assignment, error)
	UnassignApp(ctx context.Context, app, group string) error
	ListAssignments(ctx context.Context) ([]store.Assignment, error)
	AssignmentsWithArtifact(ctx context.Context, digest string) ([]store.Assignment, error)
}

var _ AppStore = (*store.DB)(nil)

// AppCatalog runs checkpoint 1 and holds the artifacts; *catalog.Catalog
// implements it.
type AppCatalog interface {
	Begin(ctx context.Context, req catalog.PushRequest) (*catalog.Push, error)
	GC(ctx context.Context, referenced map[string]bool) ([]string, error)
	Store() *catalog.Store
}

var _ AppCatalog = (*catalog.Catalog)(nil)

// appLock serializes what must not interleave with artifact garbage
// collection: persisting a pushed version (while its push still pins its
// artifacts) and collecting after a version is deleted. Without it, a
// collection could read the referenced digests just before a push
// persists and delete that push's objects just after it unpins them.
type appLock struct{ mu sync.Mutex }

// pushOverhead bounds the multipart framing of one part (boundary and
// headers); a push body may hold this much besides the parts' content.
const pushOverhead = 8 << 10

func (a *API) appStore() (AppStore, AppCatalog, error) {
	if a.opts.Apps == nil || a.opts.Catalog == nil {
		return nil, nil, errorf(http.StatusServiceUnavailable, "this controller has no app catalogue configured")
	}
	return a.opts.Apps, a.opts.Catalog, nil
}

// --- publishers ---

func publisherView(p store.Publisher) apiv1.Publisher {
	out := apiv1.Publisher{Name: p.Name, State: apiv1.Trusted, CreatedAt: p.CreatedAt, CreatedBy: p.CreatedBy, Keys: []apiv1.PublisherKey{}}
	if !p.RemovedAt.IsZero() {
		out.State, out.RemovedAt = apiv1.Removed, &p.RemovedAt
	}
	for _, k := range p.Keys {
		kv := apiv1.PublisherKey{ID: k.ID, PEM: k.PEM, State: apiv1.Trusted, AddedAt: k.AddedAt, AddedBy: k.AddedBy}
		if !k.RemovedAt.IsZero() {
			t := k.RemovedAt
			kv.State, kv.RemovedAt = apiv1.Removed, &t
		}
		out.Keys = append(out.Keys, kv)
	}
	return out
}

func (a *API) addPublisherKey(w http.ResponseWriter, r *http.Request) error {
	apps, _, err := a.appStore()
	if err != nil {
		return err
	}
	var req apiv1.AddPublisherKeyRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if req.Name == "" || strings.TrimSpace(req.KeyPEM) == "" {
		return errorf(http.StatusBadRequest, "name and key_pem are required: name the publisher and give its PEM public key (cosign.pub)")
	}
	var p store.Publisher
	err = a.change(r, store.AuditSecurity, "publisher.add-key", req.Name, "", func(ctx context.Context, c *store.Change) error {
		c.DirtyAll() // every document carries the trusted publisher keys
		if before, err := apps.GetPublisher(ctx, req.Name); err == nil {
			c.Before = publisherView(before)
		}
		var err error
		if p, err = apps.AddPublisherKey(ctx, req.Name, req.KeyPEM, a.user(r), a.now()); err != nil {
			return err
		}
		key, _ := store.KeyID(req.KeyPEM) // the store parsed it already
		c.Audit.Target, c.Audit.Detail, c.After = p.Name, "key="+key, publisherView(p)
		return nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, publisherView(p))
}

func (a *API) listPublishers(w http.ResponseWriter, r *http.Request) error {
	apps, _, err := a.appStore()
	if err != nil {
		return err
	}
	ps, err := apps.ListPublishers(r.Context())
	if err != nil {
		return err
	}
	out := make([]apiv1.Publisher, 0, len(ps))
	for _, p := range ps {
		out = append(out, publisherView(p))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) removePublisher(w http.ResponseWriter, r *http.Request) error {
	apps, _, err := a.appStore()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	err = a.change(r, store.AuditSecurity, "publisher.remove", name, "all keys removed; its apps are no longer installable", func(ctx context.Context, c *store.Change) error {
		c.DirtyAll()
		before, err := apps.GetPublisher(ctx, name)
		if err != nil {
			return err
		}
		if err := apps.RemovePublisher(ctx, name, a.now()); err != nil {
			return err
		}
		c.Before = publisherView(before)
		if after, err := apps.GetPublisher(ctx, name); err == nil {
			c.After = publisherView(after)
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) removePublisherKey(w http.ResponseWriter, r *http.Request) error {
	apps, _, err := a.appStore()
	if err != nil {
		return err
	}
	name, key := r.PathValue("name"), r.PathValue("key")
	var p store.Publisher
	err = a.change(r, store.AuditSecurity, "publisher.remove-key", name, "key="+key, func(ctx context.Context, c *store.Change) error {
		c.DirtyAll()
		before, err := apps.GetPublisher(ctx, name)
		if err != nil {
			return err
		}
		if p, err = apps.RemovePublisherKey(ctx, name, key, a.now()); err != nil {
			return err
		}
		c.Before, c.After = publisherView(before), publisherView(p)
		return nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) user(r *http.Request) string {
	if p, ok := principalOf(r); ok {
		return p.User
	}
	return "anonymous"
}

// --- push ---

// errPushTooLarge is returned by pushBody once a push body exceeds what
// its manifest declares.
var errPushTooLarge = errors.New("push body is larger than its manifest declares")

// pushBody limits a push body to n more bytes; n grows once the manifest
// says how large the artifacts are.
type pushBody struct {
	r io.Reader
	n int64
}

func (b *pushBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, errPushTooLarge
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	return n, err
}

// readPart reads the next part, which must be named want, up to limit
// bytes.
func readPart(mr *multipart.Reader, want string, limit int64) ([]byte, error) {
	p, err := mr.NextRawPart()
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "push: expected the %s part first (manifest, signature, then artifacts): %v", want, err)
	}
	defer p.Close()
	if p.FormName() != want {
		return nil, errorf(http.StatusBadRequest, "push: part %q where the %s part belongs; send manifest, signature, then artifacts", p.FormName(), want)
	}
	b, err := io.ReadAll(io.LimitReader(p, limit+1))
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "push: read the %s part: %v", want, err)
	}
	if int64(len(b)) > limit {
		return nil, errorf(http.StatusRequestEntityTooLarge, "push: the %s part is larger than %d bytes; nothing stored", want, limit)
	}
	return b, nil
}

// artifactPath returns the artifact path of a part: its Content-Disposition
// filename exactly as sent (multipart.Part.FileName would strip
// directories).
func artifactPath(p *multipart.Part) (string, error) {
	if p.FormName() != apiv1.PartArtifact {
		return "", fmt.Errorf("part %q after the signature: only %q parts may follow", p.FormName(), apiv1.PartArtifact)
	}
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil || params["filename"] == "" {
		return "", fmt.Errorf("artifact part without a filename: set it to the artifact's path in the manifest")
	}
	return params["filename"], nil
}

func (a *API) pushApp(w http.ResponseWriter, r *http.Request) error {
	apps, cat, err := a.appStore()
	if err != nil {
		return err
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return errorf(http.StatusUnsupportedMediaType, "push: the body must be multipart/form-data with manifest, signature and artifact parts (use `edgewarden apps push`)")
	}
	body := &pushBody{r: r.Body, n: manifest.MaxBytes + manifest.MaxSignatureBytes + 2*pushOverhead}
	mr := multipart.NewReader(body, params["boundary"])
	raw, err := readPart(mr, apiv1.PartManifest, manifest.MaxBytes)
	if err != nil {
		return err
	}
	sig, err := readPart(mr, apiv1.PartSignature, manifest.MaxSignatureBytes)
	if err != nil {
		return err
	}
	m, err := manifest.Parse(raw)
	if err != nil {
		a.auditAs(r, a.user(r), store.AuditSecurity, "app.push-refused", "", err.Error())
		return errorf(http.StatusBadRequest, "push refused: %v; nothing stored", err)
	}
	target := m.Name + "@" + m.Version
	if err := a.authorizeBody(r, m.Name); err != nil {
		return err
	}
	ctx := r.Context()
	if ok, err := apps.HasAppVersion(ctx, m.Name, m.Version); err != nil {
		return err
	} else if ok {
		return errorf(http.StatusConflict, "push refused: %s %s is already pushed, or a version equal to it by semver precedence (build metadata after '+' does not make a new version); versions are immutable, push it under a new version number", m.Name, m.Version)
	}
	var keys []string
	var keyIDs []string
	if p, err := apps.GetPublisher(ctx, m.Publisher); err == nil {
		keys = p.TrustedKeys()
		for _, k := range p.Keys {
			if k.RemovedAt.IsZero() && p.RemovedAt.IsZero() {
				keyIDs = append(keyIDs, k.ID)
			}
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	push, err := cat.Begin(ctx, catalog.PushRequest{Manifest: raw, Signature: sig, Keys: keys})
	if err != nil {
		return a.pushRefused(r, target, err)
	}
	defer push.Close()

	// Signature verified: accept as many bytes as the manifest declares.
	for _, art := range m.Artifacts {
		body.n += art.Size + pushOverhead
	}
	want := map[string]bool{}
	for _, art := range m.Artifacts {
		want[art.Path] = true
	}
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return a.pushRefused(r, target, fmt.Errorf("push %s: read the upload: %w; artifacts not stored", target, err))
		}
		path, err := artifactPath(p)
		if err == nil && !want[path] {
			err = fmt.Errorf("artifact %q is not in the manifest or was sent twice", path)
		}
		if err != nil {
			p.Close()
			return a.pushRefused(r, target, fmt.Errorf("push %s: %w; artifacts not stored", target, err))
		}
		delete(want, path)
		err = push.Artifact(ctx, path, p)
		p.Close()
		if err != nil {
			return a.pushRefused(r, target, err)
		}
	}
	v, err := push.Commit()
	if err != nil {
		return a.pushRefused(r, target, err)
	}
	rec := store.AppVersion{
		Name: m.Name, Version: m.Version, Publisher: m.Publisher,
		Manifest: v.Raw, Signature: v.Signature,
		PushedBy: a.user(r), PushedAt: a.now(),
	}
	if v.KeyIndex >= 0 && v.KeyIndex < len(keyIDs) {
		rec.KeyID = keyIDs[v.KeyIndex]
	}
	for _, art := range m.Artifacts {
		rec.Artifacts = append(rec.Artifacts, store.AppArtifact{Path: art.Path, SHA256: art.SHA256, Size: art.Size})
	}
	a.apps.mu.Lock()
	err = a.change(r.WithContext(context.WithoutCancel(ctx)), store.AuditChange, "app.push", target,
		fmt.Sprintf("publisher=%s key=%s artifacts=%d new_objects=%d", m.Publisher, rec.KeyID, len(m.Artifacts), len(v.NewObjects)),
		func(ctx context.Context, c *store.Change) error { return apps.PutAppVersion(ctx, rec) })
	push.Close()
	if err != nil {
		// Collect what this push alone added; the lock keeps a concurrent
		// push from persisting in between.
		if refs, rerr := apps.ReferencedArtifacts(context.WithoutCancel(ctx)); rerr == nil {
			_, _ = cat.GC(context.WithoutCancel(ctx), refs)
		}
	}
	a.apps.mu.Unlock()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, versionView(rec, m, nil, true))
}

// pushRefused records a refused push and answers with why.
func (a *API) pushRefused(r *http.Request, target string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	a.auditAs(r, a.user(r), store.AuditSecurity, "app.push-refused", target, err.Error())
	if errors.Is(err, errPushTooLarge) {
		return errorf(http.StatusRequestEntityTooLarge, "push %s refused: the upload is larger than the manifest's artifacts; nothing stored", target)
	}
	return errorf(http.StatusBadRequest, "%s", err.Error())
}

// --- listing ---

func versionView(v store.AppVersion, m *manifest.Manifest, assigned []string, installable bool) apiv1.AppVersion {
	out := apiv1.AppVersion{
		Name: v.Name, Version: v.Version, Publisher: v.Publisher, KeyID: v.KeyID,
		PushedBy: v.PushedBy, PushedAt: v.PushedAt, Installable: installable,
		Artifacts: []apiv1.Artifact{}, AssignedTo: nonNil(assigned),
	}
	if m != nil {
		out.Runtime = m.Runtime
	}
	for _, art := range v.Artifacts {
		out.Artifacts = append(out.Artifacts, apiv1.Artifact{Path: art.Path, SHA256: art.SHA256, Size: art.Size})
	}
	return out
}

func assignmentView(s store.Assignment) apiv1.AppAssignment {
	return apiv1.AppAssignment{App: s.App, Version: s.Version, Group: s.Group, Forced: s.Forced, AssignedBy: s.AssignedBy, AssignedAt: s.AssignedAt}
}

// appsView is one consistent-enough read of everything the app listings
// need.
type appsView struct {
	versions    []store.AppVersion
	assignments []store.Assignment
	publishers  map[string]store.Publisher
	devices     []store.Device
	members     MemberLookup
}

func (a *API) loadAppsView(ctx context.Context, apps AppStore) (*appsView, error) {
	v := &appsView{publishers: map[string]store.Publisher{}}
	var err error
	if v.versions, err = apps.ListAppVersions(ctx); err != nil {
		return nil, err
	}
	if v.assignments, err = apps.ListAssignments(ctx); err != nil {
		return nil, err
	}
	ps, err := apps.ListPublishers(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		v.publishers[p.Name] = p
	}
	if v.devices, err = a.opts.Store.ListDevices(ctx); err != nil {
		return nil, err
	}
	if v.members, err = a.opts.Membership.Membership(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// installable reports whether v's signature verifies against a key its
// publisher trusts now, and why not.
func (v *appsView) installable(av store.AppVersion) (bool, string) {
	p := v.publishers[av.Publisher]
	keys := p.TrustedKeys()
	if _, err := manifest.VerifySignature(av.Publisher, av.Manifest, av.Signature, keys); err != nil {
		return false, fmt.Sprintf("not installable: %v (publisher or key removed?)", err)
	}
	return true, ""
}

// deviceApps returns, for every active device, the app versions its
// document carries (app → version).
func (v *appsView) deviceApps() map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, d := range v.devices {
		if d.State != store.DeviceActive {
			continue
		}
		if as := desired.AssignedVersions(v.assignments, v.members.GroupsOf(d.ID)); len(as) > 0 {
			out[d.ID] = as
		}
	}
	return out
}

func reported(d store.Device, app string) (protocol.AppStatus, bool) {
	for _, s := range d.Apps {
		if s.Name == app {
			return s, true
		}
	}
	return protocol.AppStatus{}, false
}

func (v *appsView) app(name string) (apiv1.App, bool) {
	out := apiv1.App{Name: name, Versions: []apiv1.AppVersion{}, Assignments: []apiv1.AppAssignment{}, Devices: []apiv1.AppDevice{}}
	for _, av := range v.versions {
		if av.Name != name {
			continue
		}
		out.Publisher = av.Publisher
		m, _ := manifest.Parse(av.Manifest)
		var groups []string
		for _, s := range v.assignments {
			if s.App == name && s.Version == av.Version {
				groups = append(groups, s.Group)
			}
		}
		ok, _ := v.installable(av)
		out.Versions = append(out.Versions, versionView(av, m, groups, ok))
	}
	if len(out.Versions) == 0 {
		return out, false
	}
	for _, s := range v.assignments {
		if s.App == name {
			out.Assignments = append(out.Assignments, assignmentView(s))
		}
	}
	want := v.deviceApps()
	for _, d := range v.devices {
		st, has := reported(d, name)
		dv := want[d.ID][name]
		if !has && dv == "" {
			continue
		}
		out.Devices = append(out.Devices, apiv1.AppDevice{Device: d.ID, Online: d.Online, DesiredVersion: dv, Version: st.Version, State: st.State, Reason: st.Reason})
	}
	return out, true
}

func (a *API) listApps(w http.ResponseWriter, r *http.Request) error {
	apps, _, err := a.appStore()
	if err != nil {
		return err
	}
	v, err := a.loadAppsView(r.Context(), apps)
	if err != nil {
		return err
	}
	var names []string
	for _, av := range v.versions {
		if !slices.Contains(names, av.Name) {
			names = append(names, av.Name)
		}
	}
	slices.Sort(names)
	// A List route: show only the apps the user may view.
	may, err := a.visible(r)
	if err != nil {
		return err
	}
	out := make([]apiv1.AppSummary, 0, len(names))
	for _, n := range names {
		if !may(resApp(n)) {
			continue
		}
		app, _ := v.app(n)
		s := apiv1.AppSummary{Name: n, Publisher: app.Publisher, Versions: []string{}, Assignments: app.Assignments}
		for _, av := range app.Versions {
			s.Versions = append(s.Versions, av.Version)
		}
		for _, d := range app.Devices {
			if d.DesiredVersion == "" {
				continue
			}
			s.Devices++
			switch {
			case d.State == protocol.AppRunning && d.Version == d.DesiredVersion:
				s.Running++
			case d.State == protocol.AppFailed:
				s.Failed++
			}
		}
		out = append(out, s)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) getApp(w http.ResponseWriter, r *http.Request) error {
	apps, _, err := a.appStore()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	v, err := a.loadAppsView(r.Context(), apps)
	if err != nil {
		return err
	}
	app, ok := v.app(name)
	if !ok {
		return errorf(http.StatusNotFound, "app %s has no versions; list apps with `edgewarden apps ls` or push one with `edgewarden apps push`", name)
	}
	return writeJSON(w, http.StatusOK, app)
}

// --- guidance, assignment ---

// installedStates are the reported states in which an app counts as
// installed for guidance (in-flight and failed installs do not).
var installedStates = []string{protocol.AppRunning, protocol.AppInstalled, protocol.AppStopped}

// check computes the installation guidance for version on every active
// device of group.
func (a *API) check(ctx context.Context, apps AppStore, name, version, group string, opts manifest.GuideOptions) (apiv1.CheckResult, error) {
	res := apiv1.CheckResult{App: name, Version: version, Group: group, Verdict: apiv1.VerdictAllow, Devices: []apiv1.DeviceVerdict{}}
	av, err := apps.GetAppVersion(ctx, name, version)
	if err != nil {
		return res, err
	}
	if _, err := a.opts.Store.GetGroup(ctx, group); err != nil {
		return res, err
	}
	m, err := manifest.Parse(av.Manifest)
	if err != nil {
		return res, fmt.Errorf("stored manifest of %s %s: %w", name, version, err)
	}
	v, err := a.loadAppsView(ctx, apps)
	if err != nil {
		return res, err
	}
	worst := manifest.Allow
	if ok, why := v.installable(av); !ok {
		res.Reasons = append(res.Reasons, why)
		worst = manifest.Block
	}
	members := v.members.Members(group)
	for _, d := range v.devices {
		if d.State != store.DeviceActive {
			continue
		}
		if _, in := slices.BinarySearch(members, d.ID); !in {
			continue
		}
		installed := map[string]string{}
		for _, s := range d.Apps {
			if slices.Contains(installedStates, s.State) {
				installed[s.Name] = s.Version
			}
		}
		adv := manifest.Guide(m, installed, opts)
		if d.StatusSeq == 0 {
			adv.Reasons = append(adv.Reasons, "the device has not reported its apps yet; guidance may be incomplete")
			adv.Verdict = max(adv.Verdict, manifest.Warn)
		}
		if worst == manifest.Block {
			adv.Verdict = manifest.Block
		}
		res.Devices = append(res.Devices, apiv1.DeviceVerdict{Device: d.ID, Verdict: adv.Verdict.String(), Reasons: nonNil(adv.Reasons)})
		worst = max(worst, adv.Verdict)
	}
	res.Verdict = worst.String()
	return res, nil
}

func (a *API) checkApp(w http.ResponseWriter, r *http.Request) error {
	apps, _, err := a.appStore()
	if err != nil {
		return err
	}
	name, version, group := r.PathValue("name"), r.PathValue("version"), r.URL.Query().Get("group")
	if group == "" {
		return errorf(http.StatusBadRequest, "group is required: check against the devices of one group (?group=NAME)")
	}
	down, _ := strconv.ParseBool(r.URL.Query().Get("allow_downgrade"))
	res, err := a.check(r.Context(), apps, name, version, group, manifest.GuideOptions{AllowDowngrade: down})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

// verdictSummary lists the devices with verdict v and their reasons.
func verdictSummary(res apiv1.CheckResult, v string) string {
	var parts []string
	if v == apiv1.VerdictBlock {
		parts = append(parts, res.Reasons...)
	}
	for _, d := range res.Devices {
		if d.Verdict == v {
			parts = append(parts, d.Device+": "+strings.Join(d.Reasons, "; "))
		}
	}
	return strings.Join(parts, " | ")
}

func (a *API) assignApp(w http.ResponseWriter, r *http.Request) error {
	apps, _, err := a.appStore()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	var req apiv1.AssignRequest
	if err := a.decode(w, r, &req); err != nil {
		return err
	}
	if req.Version == "" || req.Group == "" {
		return errorf(http.StatusBadRequest, "version and group are required")
	}
	// Deploying takes both: the right to deploy this app, and the right to
	// install apps on the devices of the target group.
	if err := a.authorize(r, access.DeviceAppInstall, access.ResourceDeviceGroup, req.Group); err != nil {
		return err
	}
	res, err := a.check(r.Context(), apps, name, req.Version, req.Group, manifest.GuideOptions{AllowDowngrade: req.AllowDowngrade})
	if err != nil {
		return err
	}
	target := name + "@" + req.Version
	switch res.Verdict {
	case apiv1.VerdictBlock:
		a.auditAs(r, a.user(r), store.AuditChange, "app.assign-refused", target, "group="+req.Group+" Block: "+verdictSummary(res, apiv1.VerdictBlock))
		return errorf(http.StatusConflict, "assign %s %s to group %s refused (Block): %s", name, req.Version, req.Group, verdictSummary(res, apiv1.VerdictBlock))
	case apiv1.VerdictWarn:
		if !req.Force {
			return errorf(http.StatusConflict, "assign %s %s to group %s: Warn: %s; check with `edgewarden apps check` and repeat with --force to assign anyway", name, req.Version, req.Group, verdictSummary(res, apiv1.VerdictWarn))
		}
	}
	forced := req.Force && res.Verdict == apiv1.VerdictWarn
	kind, action, detail := store.AuditChange, "app.assign", "group="+req.Group
	if forced {
		kind, action, detail = store.AuditSecurity, "app.assign-forced", "group="+req.Group+" Warn overridden: "+verdictSummary(res, apiv1.VerdictWarn)
	}
	var s store.Assignment
	err = a.change(r, kind, action, target, detail, func(ctx context.Context, c *store.Change) error {
		if err := c.DirtyGroups(ctx, req.Group); err != nil {
			return err
		}
		var err error
		s, err = apps.AssignApp(ctx, store.Assignment{App: name, Version: req.Version, Group: req.Group, Forced: forced, AssignedBy: a.user(r), AssignedAt: a.now()})
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiv1.AssignResponse{Assignment: assignmentView(s), Check: res})
}

func (a *API) unassignApp(w http.ResponseWriter, r *http.Request) error {
	apps, _, err := a.appStore()
	if err != nil {
		return err
	}
	name, group := r.PathValue("name"), r.PathValue("group")
	err = a.change(r, store.AuditChange, "app.unassign", name, "group="+group, func(ctx context.Context, c *store.Change) error {
		if err := c.DirtyGroups(ctx, group); err != nil {
			return err
		}
		return apps.UnassignApp(ctx, name, group)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) deleteAppVersion(w http.ResponseWriter, r *http.Request) error {
	apps, cat, err := a.appStore()
	if err != nil {
		return err
	}
	name, version := r.PathValue("name"), r.PathValue("version")
	ctx := context.WithoutCancel(r.Context())
	a.apps.mu.Lock()
	defer a.apps.mu.Unlock()
	err = a.change(r.WithContext(ctx), store.AuditChange, "app.delete-version", name+"@"+version, "unreferenced artifacts are collected after the commit",
		func(ctx context.Context, c *store.Change) error { return apps.DeleteAppVersion(ctx, name, version) })
	if err != nil {
		return err
	}
	// Files go only after the commit: a failed commit keeps the version and
	// its artifacts together.
	refs, err := apps.ReferencedArtifacts(ctx)
	if err == nil {
		var removed []string
		removed, err = cat.GC(ctx, refs)
		a.log.Info("collected unused artifacts", "app", name, "version", version, "removed", len(removed))
	}
	if err != nil {
		// The version is gone; leftovers go with the next collection.
		a.log.Error("collect unused artifacts", "err", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- artifact download ---

// downloadArtifact serves an artifact to a device. The device proves who it
// is with its client certificate (mutual TLS: the server requests and
// verifies client certificates against the controller CA); it must be
// active, present the certificate it enrolled with, and have a version that
// references the artifact assigned to one of its groups. Range requests
// work, so interrupted downloads resume.
func (a *API) downloadArtifact(w http.ResponseWriter, r *http.Request) error {
	apps, cat, err := a.appStore()
	if err != nil {
		return err
	}
	digest := r.PathValue("sha256")
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return errorf(http.StatusUnauthorized, "artifact downloads need the device's client certificate (mutual TLS)")
	}
	cert := r.TLS.VerifiedChains[0][0]
	id := cert.Subject.CommonName
	ctx := r.Context()
	dev, err := a.opts.Store.GetDevice(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusForbidden, "device %s is not enrolled", id)
	}
	if err != nil {
		return err
	}
	if dev.State != store.DeviceActive {
		return errorf(http.StatusForbidden, "device %s is waiting for approval", id)
	}
	if dev.CertSerial != "" && fmt.Sprintf("%032x", cert.SerialNumber) != dev.CertSerial {
		return errorf(http.StatusForbidden, "device %s presented a certificate it was not enrolled with", id)
	}
	assigned, err := apps.AssignmentsWithArtifact(ctx, digest)
	if err != nil {
		return err
	}
	ml, err := a.opts.Membership.Membership(ctx)
	if err != nil {
		return err
	}
	groups := ml.GroupsOf(id)
	ok := slices.ContainsFunc(assigned, func(s store.Assignment) bool {
		_, in := slices.BinarySearch(groups, s.Group)
		return in
	})
	if !ok {
		return errorf(http.StatusForbidden, "artifact %s is not assigned to device %s", digest, id)
	}
	f, err := cat.Store().Open(digest)
	if errors.Is(err, catalog.ErrNotFound) {
		return errorf(http.StatusNotFound, "artifact %s is not in the store", digest)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"sha256:`+digest+`"`)
	w.Header().Del("Cache-Control") // content-addressed: immutable
	w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	http.ServeContent(w, r, "", st.ModTime(), f)
	return nil
}
