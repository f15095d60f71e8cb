// Package apitest provides what tests of the REST API and its clients need:
// an in-memory Store that behaves like controller/store for the calls the
// API makes, an in-memory PKI, and Server, which runs the real API over
// HTTPS on 127.0.0.1 with both.
package apitest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/edgewarden/edgewarden/controller/api"
	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/store"
)

// Store is an in-memory api.Store and api.Membership. The zero value is not
// usable; call NewStore. Safe for concurrent use.
type Store struct {
	mu       sync.Mutex
	devices  map[string]store.Device
	groups   map[string]store.Group
	tokens   map[string]store.EnrollToken // by id
	users    map[string]store.User
	settings map[string]string
	desired  map[string]store.DesiredRecord
	audit    []store.AuditEntry
	grants   []store.Grant // besides the admin's (access.go)
	seq      uint64        // change sequence

	// Fail, when set, is returned by every call whose name it maps to
	// (e.g. "Enroll"), to test error paths.
	Fail map[string]error
}

var (
	_ api.Store      = (*Store)(nil)
	_ api.Membership = (*Store)(nil)
)

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{
		devices:  map[string]store.Device{},
		groups:   map[string]store.Group{},
		tokens:   map[string]store.EnrollToken{},
		users:    map[string]store.User{},
		settings: map[string]string{},
		desired:  map[string]store.DesiredRecord{},
		Fail:     map[string]error{},
	}
}

func (s *Store) fail(name string) error { return s.Fail[name] }

func notFound(what, name string) error { return fmt.Errorf("%s %q: %w", what, name, store.ErrNotFound) }

// Enroll implements api.Store.
func (s *Store) Enroll(ctx context.Context, tokenHash string, d store.NewDevice) (store.Device, store.EnrollToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("Enroll"); err != nil {
		return store.Device{}, store.EnrollToken{}, err
	}
	var tok store.EnrollToken
	found := false
	for _, t := range s.tokens {
		if t.Hash == tokenHash {
			tok, found = t, true
		}
	}
	switch {
	case !found:
		return store.Device{}, store.EnrollToken{}, fmt.Errorf("%w: enrollment token is not known", store.ErrForbidden)
	case tok.Revoked:
		return store.Device{}, tok, fmt.Errorf("enrollment token %s is revoked: %w", tok.ID, store.ErrForbidden)
	case !d.At.Before(tok.ExpiresAt):
		return store.Device{}, tok, fmt.Errorf("enrollment token %s is expired: %w", tok.ID, store.ErrForbidden)
	case tok.Used >= tok.MaxUses:
		return store.Device{}, tok, fmt.Errorf("enrollment token %s is used up: %w", tok.ID, store.ErrForbidden)
	}
	if _, ok := s.devices[d.ID]; ok {
		return store.Device{}, tok, fmt.Errorf("device %q already exists; delete it first to enroll it again: %w", d.ID, store.ErrConflict)
	}
	if err := validLabels(d.Labels); err != nil {
		return store.Device{}, tok, err
	}
	labels := maps.Clone(d.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, tok.Labels)
	dev := store.Device{ID: d.ID, State: apiv1.DeviceActive, Labels: labels, EnrolledAt: d.At, CertSerial: d.CertSerial}
	if tok.Approval {
		dev.State = apiv1.DevicePending
	}
	for _, g := range tok.Groups {
		gr, ok := s.groups[g]
		if !ok {
			continue
		}
		gr.Devices = sortedUnion(gr.Devices, []string{d.ID})
		s.groups[g] = gr
	}
	tok.Used++
	s.tokens[tok.ID] = tok
	s.devices[d.ID] = dev
	return cloneDevice(dev), tok, nil
}

// CreateEnrollToken implements api.Store.
func (s *Store) CreateEnrollToken(ctx context.Context, t store.EnrollToken) (store.EnrollToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("CreateEnrollToken"); err != nil {
		return store.EnrollToken{}, err
	}
	for _, g := range t.Groups {
		if _, ok := s.groups[g]; !ok {
			return store.EnrollToken{}, fmt.Errorf("enrollment token names group %q, which does not exist: %w", g, store.ErrInvalid)
		}
	}
	if err := validLabels(t.Labels); err != nil {
		return store.EnrollToken{}, err
	}
	if _, ok := s.tokens[t.ID]; ok {
		return store.EnrollToken{}, fmt.Errorf("enrollment token %s: %w", t.ID, store.ErrConflict)
	}
	s.tokens[t.ID] = t
	return t, nil
}

// ListEnrollTokens implements api.Store.
func (s *Store) ListEnrollTokens(ctx context.Context) ([]store.EnrollToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("ListEnrollTokens"); err != nil {
		return nil, err
	}
	out := slices.Collect(maps.Values(s.tokens))
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// RevokeEnrollToken implements api.Store.
func (s *Store) RevokeEnrollToken(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[id]
	if !ok {
		return notFound("enrollment token", id)
	}
	t.Revoked = true
	s.tokens[id] = t
	return nil
}

// GetDevice implements api.Store.
func (s *Store) GetDevice(ctx context.Context, id string) (store.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[id]
	if !ok {
		return store.Device{}, notFound("device", id)
	}
	return cloneDevice(d), nil
}

// ListDevices implements api.Store.
func (s *Store) ListDevices(ctx context.Context) ([]store.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("ListDevices"); err != nil {
		return nil, err
	}
	var out []store.Device
	for _, id := range slices.Sorted(maps.Keys(s.devices)) {
		out = append(out, cloneDevice(s.devices[id]))
	}
	return out, nil
}

// ApproveDevice implements api.Store.
func (s *Store) ApproveDevice(ctx context.Context, id string) (store.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[id]
	if !ok {
		return store.Device{}, notFound("device", id)
	}
	d.State = apiv1.DeviceActive
	s.devices[id] = d
	return cloneDevice(d), nil
}

// SetDeviceLabels implements api.Store: keys with a value are set, keys
// with an empty value removed, others kept.
func (s *Store) SetDeviceLabels(ctx context.Context, id string, labels map[string]string) (store.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[id]
	if !ok {
		return store.Device{}, notFound("device", id)
	}
	set := map[string]string{}
	for k, v := range labels {
		if v != "" {
			set[k] = v
		} else if k == "" {
			return store.Device{}, fmt.Errorf("empty label key: %w", store.ErrInvalid)
		}
	}
	if err := validLabels(set); err != nil {
		return store.Device{}, err
	}
	d.Labels = maps.Clone(d.Labels)
	if d.Labels == nil {
		d.Labels = map[string]string{}
	}
	for k, v := range labels {
		if v == "" {
			delete(d.Labels, k)
		} else {
			d.Labels[k] = v
		}
	}
	s.devices[id] = d
	return cloneDevice(d), nil
}

// DeleteDevice implements api.Store.
func (s *Store) DeleteDevice(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.devices[id]; !ok {
		return notFound("device", id)
	}
	delete(s.devices, id)
	delete(s.desired, id)
	for n, g := range s.groups {
		g.Devices = slices.DeleteFunc(g.Devices, func(d string) bool { return d == id })
		s.groups[n] = g
	}
	return nil
}

// CreateGroup implements api.Store.
func (s *Store) CreateGroup(ctx context.Context, name, selector string) (store.Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := validName(name); err != nil {
		return store.Group{}, err
	}
	if _, err := parseSelector(selector); err != nil {
		return store.Group{}, err
	}
	if _, ok := s.groups[name]; ok {
		return store.Group{}, fmt.Errorf("group %q already exists: %w", name, store.ErrConflict)
	}
	g := store.Group{Name: name, Selector: selector, CreatedAt: time.Now().UTC()}
	s.groups[name] = g
	return cloneGroup(g), nil
}

// GetGroup implements api.Store.
func (s *Store) GetGroup(ctx context.Context, name string) (store.Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[name]
	if !ok {
		return store.Group{}, notFound("group", name)
	}
	return cloneGroup(g), nil
}

// ListGroups implements api.Store.
func (s *Store) ListGroups(ctx context.Context) ([]store.Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Group
	for _, n := range slices.Sorted(maps.Keys(s.groups)) {
		out = append(out, cloneGroup(s.groups[n]))
	}
	return out, nil
}

// DeleteGroup implements api.Store.
func (s *Store) DeleteGroup(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.groups[name]; !ok {
		return notFound("group", name)
	}
	for n, g := range s.groups {
		if slices.Contains(g.Includes, name) {
			return fmt.Errorf("group %q is included by %q; exclude it there first: %w", name, n, store.ErrConflict)
		}
	}
	delete(s.groups, name)
	return nil
}

// AddGroupDevices implements api.Store.
func (s *Store) AddGroupDevices(ctx context.Context, group string, ids []string) (store.Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[group]
	if !ok {
		return store.Group{}, notFound("group", group)
	}
	for _, id := range ids {
		if _, ok := s.devices[id]; !ok {
			return store.Group{}, notFound("device", id)
		}
	}
	g.Devices = sortedUnion(g.Devices, ids)
	s.groups[group] = g
	return cloneGroup(g), nil
}

// RemoveGroupDevices implements api.Store.
func (s *Store) RemoveGroupDevices(ctx context.Context, group string, ids []string) (store.Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[group]
	if !ok {
		return store.Group{}, notFound("group", group)
	}
	for _, id := range ids {
		if !slices.Contains(g.Devices, id) {
			return store.Group{}, fmt.Errorf("device %q is not a direct member of group %q: %w", id, group, store.ErrNotFound)
		}
	}
	g.Devices = slices.DeleteFunc(g.Devices, func(d string) bool { return slices.Contains(ids, d) })
	s.groups[group] = g
	return cloneGroup(g), nil
}

// IncludeGroup implements api.Store; it refuses cycles.
func (s *Store) IncludeGroup(ctx context.Context, parent, child string) (store.Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.groups[parent]
	if !ok {
		return store.Group{}, notFound("group", parent)
	}
	if _, ok := s.groups[child]; !ok {
		return store.Group{}, notFound("group", child)
	}
	if parent == child || s.reaches(child, parent) {
		return store.Group{}, fmt.Errorf("group %q including %q would make a cycle: %w", parent, child, store.ErrConflict)
	}
	p.Includes = sortedUnion(p.Includes, []string{child})
	s.groups[parent] = p
	return cloneGroup(p), nil
}

func (s *Store) reaches(from, to string) bool {
	if from == to {
		return true
	}
	for _, c := range s.groups[from].Includes {
		if s.reaches(c, to) {
			return true
		}
	}
	return false
}

// ExcludeGroup implements api.Store.
func (s *Store) ExcludeGroup(ctx context.Context, parent, child string) (store.Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.groups[parent]
	if !ok {
		return store.Group{}, notFound("group", parent)
	}
	if !slices.Contains(p.Includes, child) {
		return store.Group{}, fmt.Errorf("group %q does not include %q: %w", parent, child, store.ErrNotFound)
	}
	p.Includes = slices.DeleteFunc(p.Includes, func(c string) bool { return c == child })
	s.groups[parent] = p
	return cloneGroup(p), nil
}

// CreateUser implements api.Store.
func (s *Store) CreateUser(ctx context.Context, u store.User) (store.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[u.Name]; ok {
		return store.User{}, fmt.Errorf("user %q already exists: %w", u.Name, store.ErrConflict)
	}
	s.users[u.Name] = u
	return u, nil
}

// GetUser implements api.Store.
func (s *Store) GetUser(ctx context.Context, name string) (store.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("GetUser"); err != nil {
		return store.User{}, err
	}
	u, ok := s.users[name]
	if !ok {
		return store.User{}, notFound("user", name)
	}
	return u, nil
}

// ListUsers implements api.Store.
func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.User
	for _, n := range slices.Sorted(maps.Keys(s.users)) {
		out = append(out, s.users[n])
	}
	return out, nil
}

// CountUsers implements api.Store.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.users), nil
}

// SetUserState changes a user's state (tests disable users with it).
func (s *Store) SetUserState(name, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[name]
	u.State = state
	s.users[name] = u
}

// GetSetting implements api.Store.
func (s *Store) GetSetting(ctx context.Context, key string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.settings[key]
	if !ok {
		return "", notFound("setting", key)
	}
	return v, nil
}

// SetSetting implements api.Store.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settings[key] = value
	return nil
}

// AppendAudit implements api.Store.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.ID = int64(len(s.audit) + 1)
	s.audit = append(s.audit, e)
	return e, nil
}

// Change implements api.Store: it runs fn, then appends the audit entry
// with the next change sequence number. Unlike the real store it cannot
// roll fn's writes back when fn fails part-way; the atomicity tests run on
// the SQLite store.
func (s *Store) Change(ctx context.Context, e store.AuditEntry, fn func(ctx context.Context, c *store.Change) error) (store.Committed, error) {
	c := &store.Change{Audit: e}
	if err := fn(ctx, c); err != nil {
		return store.Committed{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	c.Audit.Seq = s.seq
	c.Audit.ID = int64(len(s.audit) + 1)
	s.audit = append(s.audit, c.Audit)
	return store.Committed{Seq: s.seq, Audit: c.Audit}, nil
}

// Audit returns the audit log so far.
func (s *Store) Audit() []store.AuditEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.audit)
}

// ListDesired implements api.Store.
func (s *Store) ListDesired(ctx context.Context) ([]store.DesiredRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.DesiredRecord
	for _, id := range slices.Sorted(maps.Keys(s.desired)) {
		out = append(out, s.desired[id])
	}
	return out, nil
}

// SetDesired records a desired revision for a device (what the compiler
// would do).
func (s *Store) SetDesired(rec store.DesiredRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.desired[rec.DeviceID] = rec
}

// UpdateDevice applies fn to a stored device (tests use it to play what a
// device reports: online, applied revision, apps).
func (s *Store) UpdateDevice(id string, fn func(*store.Device)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[id]
	fn(&d)
	s.devices[id] = d
}

// Counts returns how many devices, groups and tokens are stored.
func (s *Store) Counts() (devices, groups, tokens int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.devices), len(s.groups), len(s.tokens)
}

// Membership implements api.Membership: direct members, selector matches,
// and the members of included groups, flowing upward.
func (s *Store) Membership(ctx context.Context) (api.MemberLookup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	members := map[string][]string{}
	var resolve func(name string, seen map[string]bool) []string
	resolve = func(name string, seen map[string]bool) []string {
		if seen[name] {
			return nil
		}
		seen[name] = true
		g := s.groups[name]
		set := slices.Clone(g.Devices)
		if sel, _ := parseSelector(g.Selector); len(sel) > 0 {
			for id, d := range s.devices {
				if matches(sel, d.Labels) {
					set = append(set, id)
				}
			}
		}
		for _, c := range g.Includes {
			set = append(set, resolve(c, seen)...)
		}
		return set
	}
	deviceGroups := map[string][]string{}
	for name := range s.groups {
		m := sortedUnion(nil, resolve(name, map[string]bool{}))
		members[name] = m
		for _, id := range m {
			deviceGroups[id] = append(deviceGroups[id], name)
		}
	}
	for id := range deviceGroups {
		slices.Sort(deviceGroups[id])
	}
	return lookup{members, deviceGroups}, nil
}

type lookup struct{ members, groups map[string][]string }

func (l lookup) Members(group string) []string   { return l.members[group] }
func (l lookup) GroupsOf(device string) []string { return l.groups[device] }

func parseSelector(sel string) (map[string]string, error) {
	out := map[string]string{}
	if sel == "" {
		return out, nil
	}
	for part := range strings.SplitSeq(sel, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("selector %q: %q is not key=value: %w", sel, part, store.ErrInvalid)
		}
		out[k] = v
	}
	return out, nil
}

func matches(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func validName(name string) error {
	if name == "" || len(name) > 63 || strings.ContainsAny(name, " /+#") || strings.ToLower(name) != name {
		return fmt.Errorf("group name %q: use 1-63 characters a-z, 0-9, '.', '_' or '-': %w", name, store.ErrInvalid)
	}
	return nil
}

func validLabels(m map[string]string) error {
	for k, v := range m {
		if k == "" || v == "" || strings.ContainsAny(k+v, " ,=") {
			return fmt.Errorf("label %q=%q: keys and values must be non-empty, without spaces, ',' or '=': %w", k, v, store.ErrInvalid)
		}
	}
	return nil
}

func sortedUnion(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

func cloneDevice(d store.Device) store.Device {
	d.Labels = maps.Clone(d.Labels)
	d.Apps = slices.Clone(d.Apps)
	return d
}

func cloneGroup(g store.Group) store.Group {
	g.Devices = slices.Clone(g.Devices)
	g.Includes = slices.Clone(g.Includes)
	return g
}
