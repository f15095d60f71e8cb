package store

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

func TestGroups(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	g, err := db.CreateGroup(ctx, "berlin", " site = berlin ")
	if err != nil {
		t.Fatal(err)
	}
	if g.Name != "berlin" || g.Selector != "site=berlin" || !g.CreatedAt.Equal(t0) || len(g.Devices) != 0 || len(g.Includes) != 0 {
		t.Fatalf("created group %+v", g)
	}
	mustGroup(t, db, "plant", "")
	mustGroup(t, db, "line", "")
	mustEnroll(t, db, "d1", map[string]string{"site": "berlin"})
	mustEnroll(t, db, "d2", nil)
	mustEnroll(t, db, "d3", nil)

	if g, err = db.AddGroupDevices(ctx, "line", []string{"d3", "d2", "d3"}); err != nil || !reflect.DeepEqual(g.Devices, []string{"d2", "d3"}) {
		t.Fatalf("add = %+v, %v", g, err)
	}
	if g, err = db.IncludeGroup(ctx, "plant", "berlin"); err != nil || !reflect.DeepEqual(g.Includes, []string{"berlin"}) {
		t.Fatalf("include = %+v, %v", g, err)
	}
	if g, err = db.IncludeGroup(ctx, "plant", "line"); err != nil || !reflect.DeepEqual(g.Includes, []string{"berlin", "line"}) {
		t.Fatalf("include = %+v, %v", g, err)
	}
	if _, err = db.IncludeGroup(ctx, "plant", "line"); err != nil {
		t.Fatalf("including twice: %v", err)
	}
	m, err := db.Membership(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.Members("plant"), ","); got != "d1,d2,d3" {
		t.Fatalf("plant members %s", got)
	}
	if got := strings.Join(m.GroupsOf("d1"), ","); got != "berlin,plant" {
		t.Fatalf("d1 groups %s", got)
	}

	gs, err := db.ListGroups(ctx)
	if err != nil || len(gs) != 3 || gs[0].Name != "berlin" || gs[2].Name != "plant" || !reflect.DeepEqual(gs[1].Devices, []string{"d2", "d3"}) {
		t.Fatalf("ListGroups = %+v, %v", gs, err)
	}
	one, err := db.GetGroup(ctx, "plant")
	if err != nil || !reflect.DeepEqual(one, gs[2]) {
		t.Fatalf("GetGroup = %+v, %v; want %+v", one, err, gs[2])
	}

	if g, err = db.RemoveGroupDevices(ctx, "line", []string{"d2"}); err != nil || !reflect.DeepEqual(g.Devices, []string{"d3"}) {
		t.Fatalf("remove = %+v, %v", g, err)
	}
	if g, err = db.ExcludeGroup(ctx, "plant", "line"); err != nil || !reflect.DeepEqual(g.Includes, []string{"berlin"}) {
		t.Fatalf("exclude = %+v, %v", g, err)
	}
	if g, err = db.SetGroupSelector(ctx, "berlin", "site=munich"); err != nil || g.Selector != "site=munich" {
		t.Fatalf("set selector = %+v, %v", g, err)
	}

	// Deleting an included group removes the include edge too.
	if err := db.DeleteGroup(ctx, "berlin"); err != nil {
		t.Fatal(err)
	}
	if g, _ = db.GetGroup(ctx, "plant"); len(g.Includes) != 0 {
		t.Fatalf("plant still includes %v after berlin was deleted", g.Includes)
	}
}

func TestGroupRefusals(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustGroup(t, db, "a", "")
	mustGroup(t, db, "b", "")
	mustGroup(t, db, "c", "")
	mustEnroll(t, db, "d1", nil)
	for _, e := range [][2]string{{"a", "b"}, {"b", "c"}} {
		if _, err := db.IncludeGroup(ctx, e[0], e[1]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.AddGroupDevices(ctx, "a", []string{"d1"}); err != nil {
		t.Fatal(err)
	}
	call := func(fn func() (Group, error)) func() error {
		return func() error { _, err := fn(); return err }
	}
	unchanged(t, db, ErrInvalid, call(func() (Group, error) { return db.CreateGroup(ctx, "Bad Name", "") }), "group name")
	unchanged(t, db, ErrInvalid, call(func() (Group, error) { return db.CreateGroup(ctx, "ok", "site=") }), "selector")
	unchanged(t, db, ErrConflict, call(func() (Group, error) { return db.CreateGroup(ctx, "a", "") }), "already exists")
	unchanged(t, db, ErrInvalid, call(func() (Group, error) { return db.SetGroupSelector(ctx, "a", "!x") }), "negative")
	unchanged(t, db, ErrNotFound, call(func() (Group, error) { return db.SetGroupSelector(ctx, "zz", "x") }), "zz")
	unchanged(t, db, ErrNotFound, call(func() (Group, error) { return db.GetGroup(ctx, "zz") }), "zz")
	unchanged(t, db, ErrNotFound, func() error { return db.DeleteGroup(ctx, "zz") }, "zz")
	// All or nothing: d1 is valid, ghost is not, so neither is added to b.
	unchanged(t, db, ErrNotFound, call(func() (Group, error) { return db.AddGroupDevices(ctx, "b", []string{"d1", "ghost"}) }), "ghost", "nothing was added")
	unchanged(t, db, ErrNotFound, call(func() (Group, error) { return db.AddGroupDevices(ctx, "zz", []string{"d1"}) }), "zz")
	unchanged(t, db, ErrNotFound, call(func() (Group, error) { return db.RemoveGroupDevices(ctx, "a", []string{"d1", "ghost"}) }), "ghost", "nothing was removed")
	unchanged(t, db, ErrConflict, call(func() (Group, error) { return db.IncludeGroup(ctx, "c", "a") }), "c → a → b → c")
	unchanged(t, db, ErrConflict, call(func() (Group, error) { return db.IncludeGroup(ctx, "a", "a") }), "itself")
	unchanged(t, db, ErrNotFound, call(func() (Group, error) { return db.IncludeGroup(ctx, "a", "zz") }), "zz")
	unchanged(t, db, ErrNotFound, call(func() (Group, error) { return db.IncludeGroup(ctx, "zz", "a") }), "zz")
	unchanged(t, db, ErrNotFound, call(func() (Group, error) { return db.ExcludeGroup(ctx, "a", "c") }), "does not include")
}

func TestUsersAndSettings(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	if n, err := db.CountUsers(ctx); err != nil || n != 0 {
		t.Fatalf("CountUsers on a fresh store = %d, %v", n, err)
	}
	u, err := db.CreateUser(ctx, User{Name: "alice", PasswordHash: "$argon2id$x", State: UserActive})
	if err != nil || !u.CreatedAt.Equal(t0) {
		t.Fatalf("CreateUser = %+v, %v", u, err)
	}
	if _, err := db.CreateUser(ctx, User{Name: "bob", State: UserInvited}); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.CountUsers(ctx); n != 2 {
		t.Fatalf("CountUsers = %d", n)
	}
	if u, err = db.SetUserState(ctx, "bob", UserDisabled); err != nil || u.State != UserDisabled {
		t.Fatalf("SetUserState = %+v, %v", u, err)
	}
	if u, err = db.SetUserPassword(ctx, "bob", "$new"); err != nil || u.PasswordHash != "$new" {
		t.Fatalf("SetUserPassword = %+v, %v", u, err)
	}
	got, err := db.GetUser(ctx, "bob")
	if err != nil || !reflect.DeepEqual(got, u) {
		t.Fatalf("GetUser = %+v, %v", got, err)
	}
	us, err := db.ListUsers(ctx)
	if err != nil || len(us) != 2 || us[0].Name != "alice" {
		t.Fatalf("ListUsers = %+v, %v", us, err)
	}
	unchanged(t, db, ErrConflict, func() error { _, err := db.CreateUser(ctx, User{Name: "alice", State: UserActive}); return err }, "already exists")
	unchanged(t, db, ErrInvalid, func() error { _, err := db.CreateUser(ctx, User{Name: "a b", State: UserActive}); return err }, "user name")
	unchanged(t, db, ErrInvalid, func() error { _, err := db.CreateUser(ctx, User{Name: "carol", State: "root"}); return err }, "state")
	unchanged(t, db, ErrInvalid, func() error { _, err := db.SetUserState(ctx, "bob", "root"); return err }, "state")
	unchanged(t, db, ErrNotFound, func() error { _, err := db.SetUserState(ctx, "zed", UserActive); return err }, "zed")
	unchanged(t, db, ErrNotFound, func() error { _, err := db.GetUser(ctx, "zed"); return err }, "zed")
	unchanged(t, db, ErrInvalid, func() error { _, err := db.SetUserPassword(ctx, "bob", ""); return err }, "empty")
	unchanged(t, db, ErrNotFound, func() error { return db.DeleteUser(ctx, "zed") }, "zed")
	if err := db.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.CountUsers(ctx); n != 1 {
		t.Fatalf("CountUsers after delete = %d", n)
	}

	if v, err := db.GetSetting(ctx, "banner"); err != nil || v != "" {
		t.Fatalf("unset setting = %q, %v", v, err)
	}
	if err := db.SetSetting(ctx, "banner", "Authorized use only"); err != nil {
		t.Fatal(err)
	}
	if err := db.SetSetting(ctx, "banner", "Authorized use only!"); err != nil {
		t.Fatal(err)
	}
	if v, _ := db.GetSetting(ctx, "banner"); v != "Authorized use only!" {
		t.Fatalf("banner = %q", v)
	}
	if all, _ := db.ListSettings(ctx); !reflect.DeepEqual(all, map[string]string{"banner": "Authorized use only!"}) {
		t.Fatalf("ListSettings = %v", all)
	}
	if err := db.SetSetting(ctx, "banner", ""); err != nil {
		t.Fatal(err)
	}
	if all, _ := db.ListSettings(ctx); len(all) != 0 {
		t.Fatalf("settings after clearing: %v", all)
	}
	unchanged(t, db, ErrInvalid, func() error { return db.SetSetting(ctx, "", "x") }, "empty key")
}
