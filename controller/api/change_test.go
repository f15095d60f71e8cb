package api_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/controller/api/apitest"
	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/optoken"
)

func tokenSigner(t *testing.T) *optoken.Signer {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s, err := optoken.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const changePassword = "correct horse battery"

// sqlOn opens a second connection to the store's file, as another process
// would, to inject faults with triggers.
func sqlOn(t *testing.T, db *store.DB) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite", db.Path()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

func exec(t *testing.T, raw *sql.DB, q string) {
	t.Helper()
	if _, err := raw.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// state is what a change must leave alone when it fails.
type state struct {
	seq    uint64
	audit  int
	groups int
	grants int
	dirty  int
}

func stateOf(t *testing.T, db *store.DB) state {
	t.Helper()
	ctx := context.Background()
	seq, err := db.ChangeSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	es, err := db.ListAudit(ctx, store.AuditFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	gs, err := db.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	grants, err := db.ListGrants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d, err := db.Dirty(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return state{seq: seq, audit: len(es), groups: len(gs), grants: len(grants), dirty: d.Len()}
}

// userWith invites and activates a user and gives them a custom role with
// actions, globally; it returns their client.
func (e *appsEnv) userWith(name string, actions ...string) *client.Client {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.admin.CreateRole(ctx, apiv1.RoleRequest{Name: name + "-role", Actions: actions}); err != nil {
		e.t.Fatal(err)
	}
	inv, err := e.admin.InviteUser(ctx, apiv1.InviteRequest{Name: name})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.anon.ActivateUser(ctx, inv.Token, changePassword); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.admin.CreateGrant(ctx, apiv1.CreateGrantRequest{Role: name + "-role", User: name}); err != nil {
		e.t.Fatal(err)
	}
	login, err := e.anon.Login(ctx, name, changePassword)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.newClient(login.Token, nil)
}

// TestChangeFailsWholeWhenItsAuditEntryOrOwnerGrantFails makes the audit
// write, then the creator's owner grant, fail inside the database (as a
// full disk or a constraint would) while a group is created: the group must
// not exist afterwards, nor any audit entry, grant, dirty mark or sequence
// bump; the next attempt without the fault succeeds whole.
func TestChangeFailsWholeWhenItsAuditEntryOrOwnerGrantFails(t *testing.T) {
	ctx := context.Background()
	e := newAppsEnv(t)
	bob := e.userWith("bob", "controller:create-device-group")
	raw := sqlOn(t, e.db)

	exec(t, raw, `CREATE TRIGGER fail_audit BEFORE INSERT ON audit WHEN NEW.action = 'group.create'
		BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END`)
	before := stateOf(t, e.db)
	_, err := bob.CreateGroup(ctx, "line-1", "")
	wantStatus(t, err, http.StatusInternalServerError)
	if after := stateOf(t, e.db); after != before {
		t.Fatalf("failed audit write left a change behind: before %+v, after %+v", before, after)
	}
	_, err = e.admin.GetGroup(ctx, "line-1")
	wantStatus(t, err, http.StatusNotFound)
	exec(t, raw, `DROP TRIGGER fail_audit`)

	exec(t, raw, `CREATE TRIGGER fail_owner BEFORE INSERT ON grants WHEN NEW.role = 'group-owner'
		BEGIN SELECT RAISE(ABORT, 'grant table unavailable'); END`)
	if _, err = bob.CreateGroup(ctx, "line-1", ""); err == nil {
		t.Fatal("group created although its owner grant failed")
	}
	if after := stateOf(t, e.db); after != before {
		t.Fatalf("failed owner grant left a change behind: before %+v, after %+v", before, after)
	}
	_, err = e.admin.GetGroup(ctx, "line-1")
	wantStatus(t, err, http.StatusNotFound)
	exec(t, raw, `DROP TRIGGER fail_owner`)

	// Without the faults the same request succeeds, and bob can manage the
	// group he created (the owner grant is there).
	if _, err := bob.CreateGroup(ctx, "line-1", ""); err != nil {
		t.Fatal(err)
	}
	after := stateOf(t, e.db)
	if after.seq != before.seq+1 || after.audit != before.audit+1 || after.groups != before.groups+1 || after.grants != before.grants+1 {
		t.Fatalf("create group: before %+v, after %+v; want one more of each", before, after)
	}
	es, _ := e.db.ListAudit(ctx, store.AuditFilter{Limit: 1})
	if es[0].Action != "group.create" || es[0].Seq != after.seq || es[0].After == "" {
		t.Fatalf("audit entry %+v: want group.create with seq %d and the owner grant as after", es[0], after.seq)
	}
	if _, err := bob.GetGroup(ctx, "line-1"); err != nil {
		t.Fatalf("the creator cannot see the group: %v", err)
	}
}

// TestEveryChangeLeavesOneAuditEntry walks the mutating endpoints: each
// successful request bumps the change sequence by one and leaves exactly
// one audit entry, carrying that sequence; security-relevant ones record
// the state before and after.
func TestEveryChangeLeavesOneAuditEntry(t *testing.T) {
	ctx := context.Background()
	e := newAppsEnv(t)
	admin := e.admin
	sg := newSigner(t)
	art := testArtifact{"bin/hello", []byte("#!/bin/sh\necho hello\n")}
	raw := makeManifest(t, "hello", "1.0.0", "acme", art)

	var (
		tokenID, grantID, opToken, keyID, bobToken string
	)
	steps := []struct {
		action   string
		security bool // records before or after
		do       func() error
	}{
		{"enroll-token.create", false, func() error {
			tok, err := admin.CreateEnrollToken(ctx, apiv1.CreateEnrollTokenRequest{Approval: true, Uses: 2})
			if err == nil {
				tokenID = tok.ID
				_, err = e.anon.Enroll(ctx, apiv1.EnrollRequest{Token: tok.Token, CSRPEM: apitest.NewCSR(t, "press-01")})
			}
			return err
		}},
		{"device.approve", false, func() error { _, err := admin.ApproveDevice(ctx, "press-01"); return err }},
		{"device.label", false, func() error {
			_, err := admin.SetDeviceLabels(ctx, "press-01", map[string]string{"line": "1"})
			return err
		}},
		{"group.create", false, func() error { _, err := admin.CreateGroup(ctx, "line-1", ""); return err }},
		{"group.add-devices", false, func() error { _, err := admin.AddGroupDevices(ctx, "line-1", []string{"press-01"}); return err }},
		{"group.remove-devices", false, func() error {
			_, err := admin.RemoveGroupDevices(ctx, "line-1", []string{"press-01"})
			return err
		}},
		{"group.create", false, func() error { _, err := admin.CreateGroup(ctx, "plant", ""); return err }},
		{"group.include", false, func() error { _, err := admin.IncludeGroup(ctx, "plant", "line-1"); return err }},
		{"group.exclude", false, func() error { return admin.ExcludeGroup(ctx, "plant", "line-1") }},
		{"settings.sideload", true, func() error { _, err := admin.SetGroupSideload(ctx, "line-1", "allow"); return err }},
		{"settings.sideload", true, func() error { return admin.DeleteGroupSideload(ctx, "line-1") }},
		{"settings.sideload", true, func() error { _, err := admin.SetSideload(ctx, "allow"); return err }},
		{"settings.banner", false, func() error { _, err := admin.SetBanner(ctx, "authorised use only"); return err }},
		{"user.invite", true, func() error {
			inv, err := admin.InviteUser(ctx, apiv1.InviteRequest{Name: "bob"})
			bobToken = inv.Token
			return err
		}},
		{"user.activate", true, func() error { _, err := e.anon.ActivateUser(ctx, bobToken, changePassword); return err }},
		{"team.create", true, func() error { _, err := admin.CreateTeam(ctx, "night-shift"); return err }},
		{"team.add-members", true, func() error { _, err := admin.AddTeamMembers(ctx, "night-shift", []string{"bob"}); return err }},
		{"team.remove-members", true, func() error {
			_, err := admin.RemoveTeamMembers(ctx, "night-shift", []string{"bob"})
			return err
		}},
		{"role.create", true, func() error {
			_, err := admin.CreateRole(ctx, apiv1.RoleRequest{Name: "looker", Actions: []string{"device:view"}, Shareable: true})
			return err
		}},
		{"role.update", true, func() error {
			_, err := admin.UpdateRole(ctx, "looker", apiv1.RoleRequest{Actions: []string{"device:view", "device:logs"}, Shareable: true})
			return err
		}},
		{"grant.create", true, func() error {
			g, err := admin.CreateGrant(ctx, apiv1.CreateGrantRequest{Role: "looker", User: "bob", Group: "line-1"})
			if err == nil {
				grantID = g.ID
			}
			return err
		}},
		{"grant.delete", true, func() error { return admin.DeleteGrant(ctx, grantID) }},
		{"grant.share", true, func() error {
			g, err := admin.Share(ctx, apiv1.ShareRequest{Role: "looker", User: "bob", Group: "line-1"})
			if err == nil {
				grantID = g.ID
			}
			return err
		}},
		{"grant.delete", true, func() error { return admin.DeleteGrant(ctx, grantID) }},
		{"token.issue", true, func() error {
			tok, err := admin.IssueToken(ctx, 0)
			if err == nil {
				opToken = tok.ID
			}
			return err
		}},
		{"token.revoke", true, func() error { return admin.RevokeToken(ctx, opToken) }},
		{"publisher.add-key", true, func() error {
			p, err := admin.AddPublisherKey(ctx, "acme", sg.pub)
			if err == nil {
				keyID = p.Keys[0].ID
			}
			return err
		}},
		{"app.push", false, func() error { _, err := push(ctx, admin, raw, sg.sign(raw), art); return err }},
		{"app.assign", false, func() error {
			_, err := admin.AssignApp(ctx, "hello", apiv1.AssignRequest{Version: "1.0.0", Group: "line-1"})
			return err
		}},
		{"app.unassign", false, func() error { return admin.UnassignApp(ctx, "hello", "line-1") }},
		{"app.delete-version", false, func() error { return admin.DeleteAppVersion(ctx, "hello", "1.0.0") }},
		{"publisher.remove-key", true, func() error { return admin.RemovePublisherKey(ctx, "acme", keyID) }},
		{"publisher.remove", true, func() error { return admin.RemovePublisher(ctx, "acme") }},
		{"enroll-token.revoke", false, func() error { return admin.RevokeEnrollToken(ctx, tokenID) }},
		{"role.delete", true, func() error { return admin.DeleteRole(ctx, "looker") }},
		{"team.delete", true, func() error { return admin.DeleteTeam(ctx, "night-shift") }},
		{"user.disable", true, func() error { _, err := admin.DisableUser(ctx, "bob"); return err }},
		{"user.delete", true, func() error { return admin.DeleteUser(ctx, "bob") }},
		{"group.delete", false, func() error { return admin.DeleteGroup(ctx, "plant", false) }},
		{"device.delete", false, func() error { return admin.DeleteDevice(ctx, "press-01") }},
	}
	for _, s := range steps {
		before := stateOf(t, e.db)
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.action, err)
		}
		after := stateOf(t, e.db)
		es, err := e.db.ListAudit(ctx, store.AuditFilter{Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		want := 1
		if s.action == "enroll-token.create" {
			want = 2 // the step enrolls a device too
		}
		if after.seq != before.seq+uint64(want) || after.audit != before.audit+want {
			t.Fatalf("%s: sequence %d→%d, audit entries %d→%d; want +%d each", s.action, before.seq, after.seq, before.audit, after.audit, want)
		}
		for i := range want {
			if es[i].Seq != after.seq-uint64(i) {
				t.Fatalf("%s: newest entries %+v do not carry the sequence numbers up to %d", s.action, es[:want], after.seq)
			}
		}
		last := es[want-1]
		if last.Action != s.action {
			t.Fatalf("audit entry %q (%+v), want %q", last.Action, last, s.action)
		}
		if s.security && last.Before == "" && last.After == "" {
			t.Fatalf("%s: security-relevant change recorded no before/after state: %+v", s.action, last)
		}
	}
}

// TestSyncMeansConverged: a device is in sync only when it applied the
// desired revision and every app assigned to it runs in an assigned
// version; an app still installing is drifting, a failed app is failing
// with its reason, and a rejected document is failing.
func TestSyncMeansConverged(t *testing.T) {
	ctx := context.Background()
	e := newAppsEnv(t)
	sg := newSigner(t)
	art := testArtifact{"bin/hello", []byte("#!/bin/sh\necho hello\n")}
	raw := makeManifest(t, "hello", "1.0.0", "acme", art)
	if _, err := e.admin.CreateGroup(ctx, "line-1", ""); err != nil {
		t.Fatal(err)
	}
	e.enroll("press-01", "line-1")
	if _, err := e.admin.AddPublisherKey(ctx, "acme", sg.pub); err != nil {
		t.Fatal(err)
	}
	if _, err := push(ctx, e.admin, raw, sg.sign(raw), art); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.AssignApp(ctx, "hello", apiv1.AssignRequest{Version: "1.0.0", Group: "line-1", Force: true}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := e.db.PutDesired(ctx, []store.DesiredRecord{{DeviceID: "press-01", Revision: 3, Digest: "d", IssuedAt: now, ExpiresAt: now.Add(time.Hour), Envelope: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	seq := uint64(0)
	report := func(applied uint64, rejected *protocol.Rejection, apps ...protocol.AppStatus) {
		t.Helper()
		seq++
		err := e.db.RecordStatus(ctx, []store.StatusUpdate{{DeviceID: "press-01", At: time.Now(), Report: protocol.StatusReport{
			Schema: protocol.Schema, DeviceID: "press-01", Seq: seq, At: time.Now(), AppliedRevision: applied, LastRejected: rejected, Apps: apps}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	want := func(sync, reason string, counts apiv1.FleetStatus) {
		t.Helper()
		d, err := e.admin.GetDevice(ctx, "press-01")
		if err != nil {
			t.Fatal(err)
		}
		if d.Sync != sync || d.InSync != (sync == apiv1.SyncInSync) || !strings.Contains(d.SyncReason, reason) {
			t.Fatalf("device sync %q (%q), in_sync %v; want %q mentioning %q", d.Sync, d.SyncReason, d.InSync, sync, reason)
		}
		st, err := e.admin.FleetStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.InSync != counts.InSync || st.Drifting != counts.Drifting || st.Failing != counts.Failing {
			t.Fatalf("fleet status %+v, want in sync %d drifting %d failing %d", st, counts.InSync, counts.Drifting, counts.Failing)
		}
	}
	report(2, nil)
	want(apiv1.SyncDrifting, "applied revision 2, desired 3", apiv1.FleetStatus{Drifting: 1})
	report(2, &protocol.Rejection{Revision: 3, Reason: "expired", Message: "document expired"})
	want(apiv1.SyncFailing, "rejected revision 3", apiv1.FleetStatus{Failing: 1})
	report(3, nil)
	want(apiv1.SyncDrifting, "app hello not reported", apiv1.FleetStatus{Drifting: 1})
	report(3, nil, protocol.AppStatus{Name: "hello", Version: "1.0.0", State: protocol.AppDownloading})
	want(apiv1.SyncDrifting, "app hello 1.0.0 downloading", apiv1.FleetStatus{Drifting: 1})
	report(3, nil, protocol.AppStatus{Name: "hello", Version: "1.0.0", State: protocol.AppFailed, Reason: "exit status 3"})
	want(apiv1.SyncFailing, "exit status 3", apiv1.FleetStatus{Failing: 1})
	report(3, nil, protocol.AppStatus{Name: "hello", Version: "1.0.0", State: protocol.AppRunning},
		protocol.AppStatus{Name: "tool", Version: "0.1", State: protocol.AppRunning, Sideloaded: true})
	want(apiv1.SyncInSync, "", apiv1.FleetStatus{InSync: 1})
}
