package store

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEnroll(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustGroup(t, db, "line-1", "")
	mustGroup(t, db, "plant", "")
	tok := mustToken(t, db, "s3cret", func(tk *EnrollToken) {
		tk.Groups = []string{"plant", "line-1"}
		tk.Labels = map[string]string{"site": "berlin"}
		tk.LabelKeys = []string{"site", "model"}
		tk.MaxUses = 2
	})
	if !reflect.DeepEqual(tok.Groups, []string{"line-1", "plant"}) || tok.ID == "" {
		t.Fatalf("created token %+v", tok)
	}
	d, tk, err := db.Enroll(ctx, hashOf("s3cret"), NewDevice{
		ID: "press-01", Labels: map[string]string{"site": "munich", "model": "x1", "zone": "safety"}, CertSerial: "42", At: t0.Add(time.Minute),
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "press-01" || d.State != DeviceActive || d.CertSerial != "42" || !d.EnrolledAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("enrolled device %+v", d)
	}
	if want := map[string]string{"site": "berlin", "model": "x1"}; !reflect.DeepEqual(d.Labels, want) {
		t.Fatalf("labels %v, want %v (token labels win)", d.Labels, want)
	}
	if want := map[string]string{"zone": "safety"}; !reflect.DeepEqual(d.RequestedLabels, want) {
		t.Fatalf("requested labels %v, want %v (a key the token does not allow)", d.RequestedLabels, want)
	}
	if tk.Used != 1 || tk.ID != tok.ID {
		t.Fatalf("token after enroll %+v", tk)
	}
	for _, g := range []string{"line-1", "plant"} {
		grp, err := db.GetGroup(ctx, g)
		if err != nil || !reflect.DeepEqual(grp.Devices, []string{"press-01"}) {
			t.Fatalf("group %s = %+v, %v", g, grp, err)
		}
	}
	got, err := db.GetDevice(ctx, "press-01")
	if err != nil || !reflect.DeepEqual(got, d) {
		t.Fatalf("GetDevice = %+v, %v; want %+v", got, err, d)
	}
	toks, _ := db.ListEnrollTokens(ctx)
	if len(toks) != 1 || toks[0].Used != 1 {
		t.Fatalf("tokens %+v", toks)
	}
}

func TestEnrollApproval(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustToken(t, db, "approve-me", func(tk *EnrollToken) { tk.Approval = true })
	d, _, err := db.Enroll(ctx, hashOf("approve-me"), NewDevice{ID: "d1", At: t0})
	if err != nil {
		t.Fatal(err)
	}
	if d.State != DevicePending {
		t.Fatalf("state %s, want pending", d.State)
	}
	recs, _ := db.ListDesired(ctx)
	if len(recs) != 0 {
		t.Fatal("pending device listed for republishing")
	}
	d, err = db.ApproveDevice(ctx, "d1")
	if err != nil || d.State != DeviceActive {
		t.Fatalf("approve = %+v, %v", d, err)
	}
	if d, err = db.ApproveDevice(ctx, "d1"); err != nil || d.State != DeviceActive {
		t.Fatalf("approving twice = %+v, %v", d, err)
	}
	unchanged(t, db, ErrNotFound, func() error { _, err := db.ApproveDevice(ctx, "nope"); return err }, "nope")
}

func TestEnrollRefusals(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustGroup(t, db, "doomed", "")
	mustToken(t, db, "good", func(tk *EnrollToken) { tk.MaxUses = 5 })
	mustToken(t, db, "once", nil)
	mustToken(t, db, "revoked", func(tk *EnrollToken) { tk.ID = "tok-revoked" })
	mustToken(t, db, "expired", func(tk *EnrollToken) { tk.ExpiresAt = t0.Add(time.Second) })
	mustToken(t, db, "stale-group", func(tk *EnrollToken) { tk.Groups = []string{"doomed"}; tk.ID = "tok-stale" })
	if err := db.RevokeEnrollToken(ctx, "tok-revoked"); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeEnrollToken(ctx, "tok-revoked"); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	if err := db.DeleteGroup(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	mustEnroll(t, db, "taken", nil)
	if _, _, err := db.Enroll(ctx, hashOf("once"), NewDevice{ID: "first", At: t0}); err != nil {
		t.Fatal(err)
	}

	enroll := func(secret, id string, labels map[string]string, at time.Time) func() error {
		return func() error {
			_, _, err := db.Enroll(ctx, hashOf(secret), NewDevice{ID: id, Labels: labels, At: at})
			return err
		}
	}
	unchanged(t, db, ErrForbidden, enroll("unknown", "d1", nil, t0), "not known")
	unchanged(t, db, ErrForbidden, enroll("revoked", "d1", nil, t0), "revoked")
	unchanged(t, db, ErrForbidden, enroll("expired", "d1", nil, t0.Add(time.Second)), "expired")
	unchanged(t, db, ErrForbidden, enroll("once", "d1", nil, t0), "used up")
	unchanged(t, db, ErrConflict, enroll("good", "taken", nil, t0), "device id taken is already enrolled", "delete it first")
	unchanged(t, db, ErrConflict, enroll("stale-group", "d1", nil, t0), "doomed", "no longer exists")
	unchanged(t, db, ErrInvalid, enroll("good", "Bad/ID", nil, t0), "invalid device id")
	unchanged(t, db, ErrInvalid, enroll("good", "d1", map[string]string{"a": "x,y"}, t0), "label")
	unchanged(t, db, ErrInvalid, enroll("good", "d1", nil, time.Time{}), "time")
	unchanged(t, db, ErrNotFound, func() error { return db.RevokeEnrollToken(ctx, "nope") }, "nope")
}

func TestCreateEnrollTokenRefusals(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	good := EnrollToken{ID: "t1", Hash: hashOf("a"), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if _, err := db.CreateEnrollToken(ctx, good); err != nil {
		t.Fatal(err)
	}
	bad := func(mod func(*EnrollToken)) func() error {
		return func() error {
			tk := good
			tk.ID, tk.Hash = "t2", hashOf("b")
			mod(&tk)
			_, err := db.CreateEnrollToken(ctx, tk)
			return err
		}
	}
	unchanged(t, db, ErrInvalid, bad(func(tk *EnrollToken) { tk.Hash = "abc" }), "hash")
	unchanged(t, db, ErrInvalid, bad(func(tk *EnrollToken) { tk.Hash = strings.ToUpper(hashOf("b")) }), "hash")
	unchanged(t, db, ErrInvalid, bad(func(tk *EnrollToken) { tk.MaxUses = -1 }), "uses")
	unchanged(t, db, ErrInvalid, bad(func(tk *EnrollToken) { tk.ExpiresAt = t0 }), "expiry")
	unchanged(t, db, ErrInvalid, bad(func(tk *EnrollToken) { tk.Labels = map[string]string{"": "x"} }), "label")
	unchanged(t, db, ErrInvalid, bad(func(tk *EnrollToken) { tk.Groups = []string{"Bad Name"} }), "group name")
	unchanged(t, db, ErrInvalid, bad(func(tk *EnrollToken) { tk.LabelKeys = []string{"a b"} }), "label keys")
	unchanged(t, db, ErrNotFound, bad(func(tk *EnrollToken) { tk.Groups = []string{"missing"} }), "missing")
	unchanged(t, db, ErrConflict, bad(func(tk *EnrollToken) { tk.ID = "t1" }), "already exists")
	unchanged(t, db, ErrConflict, bad(func(tk *EnrollToken) { tk.Hash = hashOf("a") }), "already exists")
}

func TestDeviceLabels(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustEnroll(t, db, "d1", map[string]string{"site": "berlin", "line": "3"})
	d, err := db.SetDeviceLabels(ctx, "d1", map[string]string{"line": "", "role": "plc", "site": "munich"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"site": "munich", "role": "plc"}; !reflect.DeepEqual(d.Labels, want) {
		t.Fatalf("labels %v, want %v", d.Labels, want)
	}
	if got, _ := db.GetDevice(ctx, "d1"); !reflect.DeepEqual(got.Labels, d.Labels) {
		t.Fatalf("stored labels %v", got.Labels)
	}
	unchanged(t, db, ErrInvalid, func() error {
		_, err := db.SetDeviceLabels(ctx, "d1", map[string]string{"ok": "fine", "bad key": "x"})
		return err
	}, "bad key")
	unchanged(t, db, ErrInvalid, func() error {
		_, err := db.SetDeviceLabels(ctx, "d1", map[string]string{"ok": "a=b"})
		return err
	}, "a=b")
	unchanged(t, db, ErrNotFound, func() error {
		_, err := db.SetDeviceLabels(ctx, "ghost", map[string]string{"a": "b"})
		return err
	}, "ghost")
}

func TestDeleteDeviceKeepsRevision(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustGroup(t, db, "g", "")
	mustEnroll(t, db, "d1", nil)
	mustEnroll(t, db, "d2", nil)
	if _, err := db.AddGroupDevices(ctx, "g", []string{"d1", "d2"}); err != nil {
		t.Fatal(err)
	}
	rec := DesiredRecord{DeviceID: "d1", Revision: 7, Digest: "x", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour), Envelope: []byte("{}")}
	if err := db.PutDesired(ctx, []DesiredRecord{rec}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteDevice(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetDevice(ctx, "d1"); !isNotFound(err) {
		t.Fatalf("GetDevice after delete = %v", err)
	}
	if g, _ := db.GetGroup(ctx, "g"); !reflect.DeepEqual(g.Devices, []string{"d2"}) {
		t.Fatalf("group members after delete: %v", g.Devices)
	}
	snap, _ := db.Snapshot(ctx)
	if snap.Desired["d1"].Revision != 7 {
		t.Fatalf("desired record of deleted device: %+v", snap.Desired["d1"])
	}
	if recs, _ := db.ListDesired(ctx); len(recs) != 0 {
		t.Fatalf("ListDesired lists a deleted device: %+v", recs)
	}
	d := mustEnroll(t, db, "d1", nil)
	if d.DesiredRevision != 7 {
		t.Fatalf("re-enrolled device starts at desired revision %d, want 7 (the kept record)", d.DesiredRevision)
	}
	unchanged(t, db, ErrNotFound, func() error { return db.DeleteDevice(ctx, "ghost") }, "ghost")
}

func TestListDevices(t *testing.T) {
	db := openTest(t)
	for _, id := range []string{"c", "a", "b"} {
		mustEnroll(t, db, id, nil)
	}
	ds, err := db.ListDevices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	if strings.Join(ids, ",") != "a,b,c" {
		t.Fatalf("ListDevices ids %v", ids)
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	db := openAt(t, path)
	mustGroup(t, db, "g", "site=berlin")
	mustEnroll(t, db, "d1", map[string]string{"site": "berlin"})
	if _, err := db.CreateUser(ctx, User{Name: "admin", PasswordHash: "$x", State: UserActive}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetSetting(ctx, "banner", "Authorized use only"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AppendAudit(ctx, AuditEntry{Actor: "admin", Action: "group.create", Target: "g", Kind: AuditChange}); err != nil {
		t.Fatal(err)
	}
	before := dump(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	db2 := openAt(t, path)
	if after := dump(t, db2); !reflect.DeepEqual(before, after) {
		t.Fatalf("data differs after reopen:\nbefore %+v\nafter  %+v", before, after)
	}
}

// A stolen enrollment token must not let a device label itself into a group
// that selects by label: only the keys the token lists are applied.
func TestEnrollLabelKeysBoundWhatADeviceClaims(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	mustGroup(t, db, "safety", "zone=safety")
	mustToken(t, db, "stolen", func(tk *EnrollToken) { tk.MaxUses = 2 })
	d, _, err := db.Enroll(ctx, hashOf("stolen"), NewDevice{ID: "intruder", Labels: map[string]string{"zone": "safety"}, At: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Labels) != 0 || d.RequestedLabels["zone"] != "safety" {
		t.Fatalf("labels %v, requested %v: a token without label keys applied a device's label", d.Labels, d.RequestedLabels)
	}
	m, err := db.Membership(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g := m.GroupsOf("intruder"); len(g) != 0 {
		t.Fatalf("intruder is in groups %v", g)
	}
	// An admin can still apply what was asked for.
	if d, err = db.SetDeviceLabels(ctx, "intruder", map[string]string{"zone": "safety"}); err != nil || d.Labels["zone"] != "safety" {
		t.Fatalf("admin labels: %+v %v", d, err)
	}
}
