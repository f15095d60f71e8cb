package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/access"
)

// TestSideloadOverrideAttacks: a group override needs device:sideload on
// that group, the global policy controller:settings; a refusal changes
// nothing and is itself audited; every change is audited with who, what,
// when and from where.
func TestSideloadOverrideAttacks(t *testing.T) {
	ctx := context.Background()
	e := newAccessEnv(t)
	admin := e.login("admin")
	for _, g := range []string{"line-a", "line-b", "plant"} {
		if _, err := admin.CreateGroup(ctx, g, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.IncludeGroup(ctx, "plant", "line-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateRole(ctx, apiv1.RoleRequest{Name: "sideloader", Actions: []string{"device:view", "device:sideload"}}); err != nil {
		t.Fatal(err)
	}
	e.addUser("sam", store.UserActive)
	e.addUser("pat", store.UserActive)
	e.grant(access.UserSubject("sam"), "sideloader", access.GroupScope("line-a"))
	e.grant(access.UserSubject("pat"), "sideloader", access.GroupScope("plant"))
	sam, pat := e.login("sam"), e.login("pat")

	overrides := func() []store.SideloadOverride {
		t.Helper()
		os, err := e.db.ListSideloadOverrides(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return os
	}
	// refused checks the status and message, and that neither the
	// overrides nor the global policy changed.
	refused := func(status int, want string, fn func() error) {
		t.Helper()
		before, beforeSet := overrides(), e.settings()
		err := fn()
		if !client.IsStatus(err, status) || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want status %d mentioning %q", err, status, want)
		}
		if after, afterSet := overrides(), e.settings(); !reflect.DeepEqual(before, after) || !reflect.DeepEqual(beforeSet, afterSet) {
			t.Fatalf("sideload policy changed after a refused call (%v): %+v -> %+v", err, before, after)
		}
	}

	changes := e.changes.Load()
	s, err := sam.SetGroupSideload(ctx, "line-a", "allow")
	if err != nil {
		t.Fatal(err)
	}
	if s.Sideload != apiv1.SideloadDeny || len(s.SideloadOverrides) != 1 || s.SideloadOverrides[0].Group != "line-a" ||
		s.SideloadOverrides[0].Policy != "allow" || s.SideloadOverrides[0].SetBy != "sam" || s.SideloadOverrides[0].SetAt.IsZero() {
		t.Fatalf("settings after the override: %+v", s)
	}
	if e.changes.Load() == changes {
		t.Error("an override did not trigger a recompilation")
	}
	// A user with device:sideload on a parent group may override a group
	// it includes (its devices are the parent's).
	if _, err := pat.SetGroupSideload(ctx, "line-a", "deny"); err != nil {
		t.Fatalf("override of an included group: %v", err)
	}

	t.Run("another group", func(t *testing.T) {
		refused(http.StatusForbidden, "device:sideload", func() error { _, err := sam.SetGroupSideload(ctx, "line-b", "allow"); return err })
		refused(http.StatusForbidden, "device:sideload", func() error { return sam.DeleteGroupSideload(ctx, "line-b") })
		// line-a's grant does not reach up to the group that includes it.
		refused(http.StatusForbidden, "device:sideload", func() error { _, err := sam.SetGroupSideload(ctx, "plant", "allow"); return err })
	})
	t.Run("global without controller:settings", func(t *testing.T) {
		refused(http.StatusForbidden, "controller:settings", func() error { _, err := sam.SetSideload(ctx, "allow"); return err })
	})
	t.Run("bad input", func(t *testing.T) {
		refused(http.StatusBadRequest, "want allow or deny", func() error { _, err := sam.SetGroupSideload(ctx, "line-a", "inherit"); return err })
		refused(http.StatusNotFound, "does not exist", func() error { _, err := admin.SetGroupSideload(ctx, "line-9", "allow"); return err })
	})
	t.Run("refusals are audited", func(t *testing.T) {
		es, err := e.db.ListAudit(ctx, store.AuditFilter{Kind: store.AuditAccess})
		if err != nil || len(es) == 0 || es[0].Action != "access.denied" {
			t.Fatalf("audit %+v %v", es, err)
		}
	})

	// Removing the override; removing it again changes nothing.
	if err := sam.DeleteGroupSideload(ctx, "line-a"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if err := sam.DeleteGroupSideload(ctx, "line-a"); err != nil {
		t.Fatalf("remove again: %v", err)
	}
	if s, err = sam.Settings(ctx); err != nil || len(s.SideloadOverrides) != 0 {
		t.Fatalf("after removing: %+v %v", s, err)
	}

	es, err := e.db.ListAudit(ctx, store.AuditFilter{Kind: store.AuditSecurity})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range es {
		if a.Action == "settings.sideload" {
			if a.Source == "" || a.At.IsZero() {
				t.Errorf("audit entry without source or time: %+v", a)
			}
			got = append(got, a.Actor+" "+a.Target+" "+a.Detail)
		}
	}
	want := []string{ // newest first
		"sam device-group:line-a inherit (group override removed)",
		"pat device-group:line-a deny (group override)",
		"sam device-group:line-a allow (group override)",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("audit:\n%q\nwant\n%q", got, want)
	}
}

func (e *accessEnv) settings() map[string]string {
	e.t.Helper()
	m, err := e.db.ListSettings(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// TestEventsAPI: device events are listed for controller:audit holders
// only, filtered, and the fleet status counts the security ones.
func TestEventsAPI(t *testing.T) {
	ctx := context.Background()
	e := newAccessEnv(t)
	admin := e.login("admin")
	secret := "enroll-secret"
	sum := sha256.Sum256([]byte(secret))
	if _, err := e.db.CreateEnrollToken(ctx, store.EnrollToken{Hash: hex.EncodeToString(sum[:]), MaxUses: 1, ExpiresAt: time.Now().Add(time.Hour), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.db.Enroll(ctx, hex.EncodeToString(sum[:]), store.NewDevice{ID: "press-1", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	evs := []protocol.Event{
		{ID: "e1", At: now.Add(-48 * time.Hour), Kind: "sideload_blocked", Severity: "security", Message: "old"},
		{ID: "e2", At: now.Add(-time.Minute), Kind: "document_applied", Severity: "info", Message: "applied"},
		{ID: "e3", At: now, Kind: "tamper_detected", Severity: "security", Message: "run.sh changed", Details: map[string]string{"app": "web"}},
	}
	if _, err := e.db.RecordEvents(ctx, "press-1", evs); err != nil {
		t.Fatal(err)
	}

	got, err := admin.ListEvents(ctx, client.EventFilter{Severity: "security"})
	if err != nil || len(got) != 2 || got[0].ID != "e3" || got[0].DeviceID != "press-1" || got[0].Details["app"] != "web" || got[1].ID != "e1" {
		t.Fatalf("security events: %+v %v", got, err)
	}
	got, err = admin.ListEvents(ctx, client.EventFilter{Kind: "sideload_blocked", Since: now.Add(-time.Hour)})
	if err != nil || len(got) != 0 {
		t.Fatalf("kind and since: %+v %v", got, err)
	}
	if got, err = admin.ListEvents(ctx, client.EventFilter{Device: "press-2"}); err != nil || len(got) != 0 {
		t.Fatalf("another device: %+v %v", got, err)
	}
	_, err = admin.ListEvents(ctx, client.EventFilter{Severity: "critical"})
	wantStatus(t, err, http.StatusBadRequest, "severity")

	e.addUser("viewer", store.UserActive)
	e.grant(access.UserSubject("viewer"), "viewer", access.Global())
	_, err = e.login("viewer").ListEvents(ctx, client.EventFilter{})
	wantStatus(t, err, http.StatusForbidden, "controller:audit")

	st, err := admin.FleetStatus(ctx)
	if err != nil || st.SecurityEvents24h != 1 || len(st.RecentSecurityEvents) != 1 || st.RecentSecurityEvents[0].ID != "e3" {
		t.Fatalf("fleet status: %+v %v", st, err)
	}
	// A user who may view no device sees none of their events.
	e.addUser("nobody", store.UserActive)
	st, err = e.login("nobody").FleetStatus(ctx)
	if err != nil || st.SecurityEvents24h != 0 || len(st.RecentSecurityEvents) != 0 {
		t.Fatalf("fleet status of a user without devices: %+v %v", st, err)
	}
}
