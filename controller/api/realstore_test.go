package api_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/edgewarden/edgewarden/controller/api"
	"github.com/edgewarden/edgewarden/controller/api/apitest"
	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/store"
)

var _ api.Store = (*store.DB)(nil)

// TestRealStore runs the enrollment and group flow against the store
// apitest runs on (SQLite by default), reading it back through Backend
// only, so it runs on any store.
func TestRealStore(t *testing.T) {
	ctx := context.Background()
	s := apitest.NewServer(t, nil)
	db, changes := s.Store, &s.Changes
	anonC, c := anon(t, s), admin(t, s)

	if _, err := c.CreateGroup(ctx, "site-a", "site=a"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateGroup(ctx, "line-1", ""); err != nil {
		t.Fatal(err)
	}
	tok, err := c.CreateEnrollToken(ctx, apiv1.CreateEnrollTokenRequest{Groups: []string{"line-1"}, Labels: map[string]string{"site": "a"}, Uses: 1, Approval: true})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := anonC.Enroll(ctx, apiv1.EnrollRequest{Token: tok.Token, CSRPEM: apitest.NewCSR(t, "press-01")})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.PendingApproval || resp.DeviceID != "press-01" {
		t.Fatalf("enroll: %+v", resp)
	}
	_, err = anonC.Enroll(ctx, apiv1.EnrollRequest{Token: tok.Token, CSRPEM: apitest.NewCSR(t, "press-02")})
	wantStatus(t, err, http.StatusForbidden, "used up")
	_, err = c.GetDevice(ctx, "press-02")
	wantStatus(t, err, http.StatusNotFound)

	d, err := c.ApproveDevice(ctx, "press-01")
	if err != nil || d.State != apiv1.DeviceActive || !slices.Equal(d.Groups, []string{"line-1", "site-a"}) {
		t.Fatalf("approve: %+v %v", d, err)
	}
	d, err = c.SetDeviceLabels(ctx, "press-01", map[string]string{"site": "", "zone": "3"})
	if err != nil || d.Labels["zone"] != "3" || d.Labels["site"] != "" || !slices.Equal(d.Groups, []string{"line-1"}) {
		t.Fatalf("labels: %+v %v", d, err)
	}
	if _, err := c.IncludeGroup(ctx, "site-a", "line-1"); err != nil {
		t.Fatal(err)
	}
	_, err = c.IncludeGroup(ctx, "line-1", "site-a")
	wantStatus(t, err, http.StatusConflict)
	g, err := c.GetGroup(ctx, "site-a")
	if err != nil || !slices.Equal(g.Members, []string{"press-01"}) {
		t.Fatalf("site-a: %+v %v", g, err)
	}
	st, err := c.FleetStatus(ctx)
	if err != nil || st.Devices != 1 || st.Drifting != 1 {
		t.Fatalf("status %+v %v", st, err)
	}
	if err := c.DeleteDevice(ctx, "press-01"); err != nil {
		t.Fatal(err)
	}
	// Every committed change wakes the loop: 2 group creates, enrollment
	// token, enroll, approve, label, include, delete.
	if n := changes.Load(); n != 8 {
		t.Errorf("Changed called %d times, want 8", n)
	}
	if seq, err := db.ChangeSeq(ctx); err != nil || seq != 8 {
		t.Errorf("change sequence %d, %v; want 8", seq, err)
	}
	entries, err := db.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	for _, want := range []string{"user.login", "group.create", "enroll-token.create", "device.enroll", "device.enroll-refused", "device.approve", "device.label", "group.include", "device.delete"} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit log lacks %q: %v", want, actions)
		}
	}
}
