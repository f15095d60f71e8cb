package api_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol/access"
)

// device enrolls a device with labels straight into the store.
func (e *accessEnv) device(id string, labels map[string]string) {
	e.t.Helper()
	ctx := context.Background()
	sum := sha256.Sum256([]byte("secret-" + id))
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	if _, err := e.db.CreateEnrollToken(ctx, store.EnrollToken{Hash: hex.EncodeToString(sum[:]), MaxUses: 1, LabelKeys: keys, ExpiresAt: time.Now().Add(time.Hour), CreatedAt: time.Now()}); err != nil {
		e.t.Fatal(err)
	}
	if _, _, err := e.db.Enroll(ctx, hex.EncodeToString(sum[:]), store.NewDevice{ID: id, Labels: labels, At: time.Now()}); err != nil {
		e.t.Fatal(err)
	}
}

// fleetState is what a refused group call must leave unchanged: the access
// store, every group and every sideload override.
type fleetState struct {
	Access    accessState
	Groups    []store.Group
	Overrides []store.SideloadOverride
	Seq       uint64
}

func (e *accessEnv) fleet() fleetState {
	e.t.Helper()
	ctx := context.Background()
	s := fleetState{Access: e.state()}
	var err error
	if s.Groups, err = e.db.ListGroups(ctx); err != nil {
		e.t.Fatal(err)
	}
	if s.Overrides, err = e.db.ListSideloadOverrides(ctx); err != nil {
		e.t.Fatal(err)
	}
	if s.Seq, err = e.db.ChangeSeq(ctx); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// unchanged checks that fn fails with status and a message containing
// every want, and that no group, override, grant or user changed and no
// change was committed.
func (e *accessEnv) unchanged(status int, fn func() error, want ...string) {
	e.t.Helper()
	before := e.fleet()
	err := fn()
	if !client.IsStatus(err, status) {
		e.t.Fatalf("got %v, want status %d", err, status)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			e.t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if after := e.fleet(); !reflect.DeepEqual(before, after) {
		e.t.Fatalf("state changed after a refused call (%v):\nbefore %+v\nafter  %+v", err, before, after)
	}
}

// sideloadAllowed is the sideload policy the compiler gives device id now.
func (e *accessEnv) sideloadAllowed(id string) bool {
	e.t.Helper()
	ctx := context.Background()
	snap, err := e.db.Snapshot(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	m, err := snap.Membership()
	if err != nil {
		e.t.Fatal(err)
	}
	allowed, _ := store.SideloadFor(snap.Settings[store.SettingSideload], snap.SideloadOverrides, m.GroupsOf(id))
	return allowed
}

func (e *accessEnv) lastAudit(action string) store.AuditEntry {
	e.t.Helper()
	es, err := e.db.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, a := range es {
		if a.Action == action {
			return a
		}
	}
	e.t.Fatalf("no audit entry %s", action)
	return store.AuditEntry{}
}

// TestGroupDeleteNeedsForce: deleting a group that carries a deny sideload
// override, grants to others and an inclusion is refused with the list and
// "--force", and changes nothing (the device stays banned); forced, it goes,
// the entry is of kind security and names everything removed. A group
// carrying only its deleter's own owner grant needs no force. Force never
// lets a user remove what they could not remove one by one.
func TestGroupDeleteNeedsForce(t *testing.T) {
	ctx := context.Background()
	e := newAccessEnv(t)
	admin := e.login("admin")
	for _, g := range []string{"line", "plant"} {
		if _, err := admin.CreateGroup(ctx, g, ""); err != nil {
			t.Fatal(err)
		}
	}
	e.device("d1", nil)
	if _, err := admin.AddGroupDevices(ctx, "line", []string{"d1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.IncludeGroup(ctx, "plant", "line"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SetSideload(ctx, "allow"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SetGroupSideload(ctx, "line", "deny"); err != nil {
		t.Fatal(err)
	}
	e.addUser("bob", store.UserActive)
	opGrant := e.grant(access.UserSubject("bob"), access.RoleOperator, access.GroupScope("line"))
	if e.sideloadAllowed("d1") {
		t.Fatal("setup: d1 may sideload")
	}

	e.unchanged(http.StatusConflict, func() error { return admin.DeleteGroup(ctx, "line", false) },
		"was not deleted", "sideload override deny", opGrant, "inclusion in group plant", "--force")
	if e.sideloadAllowed("d1") {
		t.Fatal("a refused deletion lifted d1's sideload ban")
	}
	e.unchanged(http.StatusBadRequest, func() error {
		return e.rawDelete("admin", "/api/v1/groups/line?force=perhaps")
	}, "want true or false")

	if err := admin.DeleteGroup(ctx, "line", true); err != nil {
		t.Fatalf("forced delete: %v", err)
	}
	if !e.sideloadAllowed("d1") {
		t.Fatal("d1 still banned after its denying group went (the global policy allows)")
	}
	a := e.lastAudit("group.delete")
	if a.Kind != store.AuditSecurity || a.Actor != "admin" || a.Target != "line" {
		t.Fatalf("audit entry %+v, want kind security", a)
	}
	for _, want := range []string{"forced", "sideload override deny", opGrant, "role operator to user bob", "inclusion in group plant", "sideload ban lifted on 1 device(s): d1"} {
		if !strings.Contains(a.Detail, want) {
			t.Errorf("audit detail %q lacks %q", a.Detail, want)
		}
	}
	if gs, _ := e.db.ListGrants(ctx); slices.ContainsFunc(gs, func(g store.Grant) bool { return g.ID == opGrant }) {
		t.Error("bob's grant outlived its group")
	}

	// An owner's own grant is theirs to drop: no force needed.
	e.customRole("grouper", access.ControllerCreateDeviceGroup)
	e.addUser("olga", store.UserActive)
	e.grant(access.UserSubject("olga"), "grouper", access.Global())
	olga := e.login("olga")
	for _, g := range []string{"olgas", "banned"} {
		if _, err := olga.CreateGroup(ctx, g, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := olga.DeleteGroup(ctx, "olgas", false); err != nil {
		t.Fatalf("owner deletes her bare group: %v", err)
	}
	if a := e.lastAudit("group.delete"); a.Kind != store.AuditChange || a.Target != "olgas" || !strings.Contains(a.Detail, "group-owner to user olga") {
		t.Fatalf("audit of the owner's delete: %+v", a)
	}
	// A security officer bans sideloading on olga's group; she may not
	// lift it by deleting the group, forced or not.
	if _, err := admin.SetGroupSideload(ctx, "banned", "deny"); err != nil {
		t.Fatal(err)
	}
	e.unchanged(http.StatusConflict, func() error { return olga.DeleteGroup(ctx, "banned", false) }, "sideload override deny", "--force")
	e.unchanged(http.StatusForbidden, func() error { return olga.DeleteGroup(ctx, "banned", true) },
		"device:sideload", "edgewarden access explain --action device:sideload --group banned")
}

// rawDelete sends DELETE path as user, for what the client cannot send.
func (e *accessEnv) rawDelete(user, path string) error {
	e.t.Helper()
	login, err := e.anon().Login(context.Background(), user, testPassword)
	if err != nil {
		e.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodDelete, e.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+login.Token)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.pool}}}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return &client.Error{Status: resp.StatusCode, Message: string(body)}
	}
	return nil
}

// TestGroupOwnerDelegation: a user who may create groups, as the owner of
// one, sees it and its devices, adds the devices she may manage and removes
// any, renames it, changes its selector after a preview, shares it with an
// active user found by name, and deletes it. Each refusal names the
// missing grant and the access explain command, and changes nothing.
func TestGroupOwnerDelegation(t *testing.T) {
	ctx := context.Background()
	e := newAccessEnv(t)
	admin := e.login("admin")
	e.customRole("grouper", access.ControllerCreateDeviceGroup)
	e.customRole("fixer", access.DeviceView, access.DeviceManage)
	e.customRole("looker", access.DeviceView)
	for _, u := range []string{"olga", "mallory"} {
		e.addUser(u, store.UserActive)
		e.grant(access.UserSubject(u), "grouper", access.Global())
	}
	e.addUser("bob", store.UserActive)
	e.addUser("dave", store.UserDisabled)
	e.device("d1", map[string]string{"line": "1"})
	e.device("d2", map[string]string{"site": "a"})
	e.device("d3", map[string]string{"site": "b"})
	e.grant(access.UserSubject("olga"), "fixer", access.DeviceScope("d1"))  // olga manages d1
	e.grant(access.UserSubject("olga"), "looker", access.DeviceScope("d3")) // sees d3; nothing on d2
	olga, mallory, bob := e.login("olga"), e.login("mallory"), e.login("bob")

	if _, err := olga.CreateGroup(ctx, "olgas", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := mallory.CreateGroup(ctx, "mallorys", ""); err != nil {
		t.Fatal(err)
	}

	// Add what she manages; not what she does not.
	if g, err := olga.AddGroupDevices(ctx, "olgas", []string{"d1"}); err != nil || !slices.Equal(g.Members, []string{"d1"}) {
		t.Fatalf("owner adds a device she manages: %+v %v", g, err)
	}
	e.unchanged(http.StatusForbidden, func() error { _, err := olga.AddGroupDevices(ctx, "olgas", []string{"d2"}); return err },
		"device:manage", "edgewarden access explain --action device:manage --device d2")
	// access explain on herself names the missing grant.
	d, err := olga.CheckAccess(ctx, apiv1.AccessCheckRequest{Action: "device:manage", Device: "d2"})
	if err != nil || d.Allowed || !strings.Contains(d.Explanation, "no grant") {
		t.Fatalf("access explain for olga on d2: %+v %v", d, err)
	}
	// She removes any device, also one she cannot see.
	if _, err := admin.AddGroupDevices(ctx, "olgas", []string{"d2"}); err != nil {
		t.Fatal(err)
	}
	g, err := olga.GetGroup(ctx, "olgas")
	if err != nil || !slices.Equal(g.Members, []string{"d1", "d2"}) {
		t.Fatalf("owner sees her group and its devices: %+v %v", g, err)
	}
	if g, err := olga.RemoveGroupDevices(ctx, "olgas", []string{"d2"}); err != nil || !slices.Equal(g.Members, []string{"d1"}) {
		t.Fatalf("owner removes a device she cannot see: %+v %v", g, err)
	}

	// Rename: her grant follows the group.
	if g, err := olga.RenameGroup(ctx, "olgas", "olgas-1"); err != nil || g.Name != "olgas-1" {
		t.Fatalf("rename: %+v %v", g, err)
	}
	if _, err := olga.GetGroup(ctx, "olgas-1"); err != nil {
		t.Fatalf("owner after the rename: %v", err)
	}
	e.unchanged(http.StatusBadRequest, func() error { _, err := olga.RenameGroup(ctx, "olgas-1", ""); return err }, "name is required")
	e.unchanged(http.StatusBadRequest, func() error { _, err := olga.RenameGroup(ctx, "olgas-1", "Olga's"); return err }, "group name")
	e.unchanged(http.StatusConflict, func() error { _, err := olga.RenameGroup(ctx, "olgas-1", "mallorys"); return err }, "already exists")

	// Selector: a preview changes nothing; devices she may not manage
	// cannot be pulled in (d3 she sees is named, d2 only counted).
	p, err := olga.SetGroupSelector(ctx, "olgas-1", "line=1", true)
	if err != nil || !p.DryRun || !slices.Equal(p.Added, []string{}) || p.Group.Selector != "line=1" || !slices.Equal(p.Group.Members, []string{"d1"}) {
		t.Fatalf("preview: %+v %v", p, err)
	}
	if g, _ := e.db.GetGroup(ctx, "olgas-1"); g.Selector != "" {
		t.Fatalf("a preview set the selector: %+v", g)
	}
	e.unchanged(http.StatusForbidden, func() error { _, err := olga.SetGroupSelector(ctx, "olgas-1", "site=b", true); return err },
		"may not add d3 to group olgas-1", "device:manage")
	e.unchanged(http.StatusForbidden, func() error { _, err := olga.SetGroupSelector(ctx, "olgas-1", "site=a", false); return err },
		"1 device(s) you cannot see", "device:manage")
	if strings.Contains(errString(func() error { _, err := olga.SetGroupSelector(ctx, "olgas-1", "site=a", false); return err }), "d2") {
		t.Fatal("the refusal names a device olga cannot see")
	}
	// Creating a group with a selector is the same as setting one.
	e.unchanged(http.StatusForbidden, func() error { _, err := olga.CreateGroup(ctx, "sneaky", "site=a"); return err }, "device(s) you cannot see")
	e.unchanged(http.StatusBadRequest, func() error { _, err := olga.SetGroupSelector(ctx, "olgas-1", "line==1", false); return err }, "selector")
	p, err = olga.SetGroupSelector(ctx, "olgas-1", "line=1", false)
	if err != nil || p.DryRun || p.Group.Selector != "line=1" {
		t.Fatalf("set selector: %+v %v", p, err)
	}
	if a := e.lastAudit("group.set-selector"); a.Actor != "olga" || !strings.Contains(a.Detail, `"line=1"`) {
		t.Fatalf("audit %+v", a)
	}

	// The lookup: names only, for those who may share.
	e.unchanged(http.StatusForbidden, func() error { _, err := bob.LookupUser(ctx, "olga"); return err }, "device-group:share")
	u, err := olga.LookupUser(ctx, "bob")
	if err != nil || u.Name != "bob" {
		t.Fatalf("lookup bob: %+v %v", u, err)
	}
	for _, who := range []string{"dave", "nobody"} { // disabled, unknown: the same answer
		_, err := olga.LookupUser(ctx, who)
		wantStatus(t, err, http.StatusNotFound, "there is no active user called "+who)
	}
	_, err = olga.LookupUser(ctx, "")
	wantStatus(t, err, http.StatusBadRequest, "name is required")
	if _, err := olga.Share(ctx, apiv1.ShareRequest{Group: "olgas-1", User: "bob", Role: access.RoleGroupOwner}); err != nil {
		t.Fatalf("owner shares her group: %v", err)
	}
	if _, err := bob.LookupUser(ctx, "olga"); err != nil {
		t.Fatalf("bob may look up once he may share: %v", err)
	}

	// The attacker owns another group: nothing of olga's is hers.
	for _, tc := range []struct {
		want string
		fn   func() error
	}{
		{"edgewarden access explain --action device-group:delete --group olgas-1", func() error { _, err := mallory.RenameGroup(ctx, "olgas-1", "mine"); return err }},
		{"edgewarden access explain --action device-group:delete --group olgas-1", func() error { return mallory.DeleteGroup(ctx, "olgas-1", true) }},
		{"edgewarden access explain --action device-group:manage-members --group olgas-1", func() error {
			_, err := mallory.SetGroupSelector(ctx, "olgas-1", "", true)
			return err
		}},
		{"device-group:manage-members", func() error { _, err := mallory.RemoveGroupDevices(ctx, "olgas-1", []string{"d1"}); return err }},
		{"device-group:view", func() error { _, err := mallory.GetGroup(ctx, "olgas-1"); return err }},
	} {
		e.unchanged(http.StatusForbidden, tc.fn, tc.want)
	}

	// Delete: bob's share is someone else's grant, so it takes --force.
	e.unchanged(http.StatusConflict, func() error { return olga.DeleteGroup(ctx, "olgas-1", false) }, "role group-owner to user bob", "--force")
	if err := olga.DeleteGroup(ctx, "olgas-1", true); err != nil {
		t.Fatalf("owner deletes her group with force: %v", err)
	}
	if a := e.lastAudit("group.delete"); !strings.Contains(a.Detail, "user bob") || !strings.Contains(a.Detail, "user olga") {
		t.Fatalf("audit of the forced delete: %+v", a)
	}
}

func errString(fn func() error) string {
	if err := fn(); err != nil {
		return err.Error()
	}
	return ""
}

// TestGroupNameHeldByToken: a group is deleted while an enrollment token
// still assigns devices to its name. A user who may create groups but not
// manage enrollment cannot take the name (by creating or renaming), which
// would route the devices that token enrolls into their group; an
// enrollment admin can.
func TestGroupNameHeldByToken(t *testing.T) {
	ctx := context.Background()
	e := newAccessEnv(t)
	admin := e.login("admin")
	if _, err := admin.CreateGroup(ctx, "line-9", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateEnrollToken(ctx, apiv1.CreateEnrollTokenRequest{Groups: []string{"line-9"}, Uses: 5}); err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteGroup(ctx, "line-9", false); err != nil {
		t.Fatal(err)
	}
	e.customRole("grouper", access.ControllerCreateDeviceGroup)
	e.addUser("olga", store.UserActive)
	e.grant(access.UserSubject("olga"), "grouper", access.Global())
	olga := e.login("olga")
	if _, err := olga.CreateGroup(ctx, "olgas", ""); err != nil {
		t.Fatal(err)
	}
	e.unchanged(http.StatusForbidden, func() error { _, err := olga.CreateGroup(ctx, "line-9", ""); return err }, "live enrollment token", "controller:enroll")
	e.unchanged(http.StatusForbidden, func() error { _, err := olga.RenameGroup(ctx, "olgas", "line-9"); return err }, "live enrollment token")
	if _, err := admin.CreateGroup(ctx, "line-9", ""); err != nil {
		t.Fatalf("an enrollment admin re-creates the group the token assigns: %v", err)
	}
}
