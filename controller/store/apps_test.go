package store

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

func testPubKey(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return string(pub)
}

func testVersion(name, version, publisher string, digests ...string) AppVersion {
	v := AppVersion{
		Name: name, Version: version, Publisher: publisher,
		Manifest:  []byte(fmt.Sprintf(`{"name":%q,"version":%q}`, name, version)),
		Signature: []byte("c2ln"), KeyID: "sha256:00", PushedBy: "admin", PushedAt: t0,
	}
	for i, d := range digests {
		v.Artifacts = append(v.Artifacts, AppArtifact{Path: fmt.Sprintf("f%d", i), SHA256: d, Size: int64(10 + i)})
	}
	return v
}

var (
	digestA = strings.Repeat("a", 64)
	digestB = strings.Repeat("b", 64)
)

func TestPublishers(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	k1, k2 := testPubKey(t), testPubKey(t)

	p, err := db.AddPublisherKey(ctx, "acme", k1, "sec", t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Keys) != 1 || len(p.TrustedKeys()) != 1 || !strings.HasPrefix(p.Keys[0].ID, "sha256:") {
		t.Fatalf("after add: %+v", p)
	}
	if _, err := db.AddPublisherKey(ctx, "acme", k1, "sec", t0); !errors.Is(err, ErrConflict) {
		t.Fatalf("same key twice: %v", err)
	}
	if p, err = db.AddPublisherKey(ctx, "acme", k2, "sec", t0.Add(1)); err != nil || len(p.TrustedKeys()) != 2 {
		t.Fatalf("second key: %+v %v", p, err)
	}

	// Bad input changes nothing.
	pubsBefore, _ := db.ListPublishers(ctx)
	for _, bad := range []struct{ name, key string }{
		{"acme", "not a key"},
		{"acme", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
		{"Bad Name", k1},
		{"../x", k1},
	} {
		unchanged(t, db, ErrInvalid, func() error {
			_, err := db.AddPublisherKey(ctx, bad.name, bad.key, "sec", t0)
			return err
		})
	}
	if pubsAfter, _ := db.ListPublishers(ctx); !reflect.DeepEqual(pubsBefore, pubsAfter) {
		t.Errorf("refused keys changed the publishers: %+v", pubsAfter)
	}

	// Remove one key by a prefix of its id.
	id1 := p.Keys[0].ID
	p, err = db.RemovePublisherKey(ctx, "acme", strings.TrimPrefix(id1, "sha256:")[:12], t0.Add(2))
	if err != nil {
		t.Fatal(err)
	}
	if keys := p.TrustedKeys(); len(keys) != 1 || keys[0] != strings.TrimSpace(k2)+"\n" {
		t.Fatalf("after removing key 1: %+v", p)
	}
	if _, err := db.RemovePublisherKey(ctx, "acme", id1, t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("removing a removed key: %v", err)
	}
	if _, err := db.RemovePublisherKey(ctx, "acme", "abc", t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("a 3-digit prefix must not match: %v", err)
	}

	// Remove the publisher: nothing is trusted, it leaves the snapshot,
	// and it stays listed as removed.
	if err := db.RemovePublisher(ctx, "acme", t0.Add(3)); err != nil {
		t.Fatal(err)
	}
	if err := db.RemovePublisher(ctx, "acme", t0.Add(3)); !errors.Is(err, ErrNotFound) {
		t.Errorf("removing twice: %v", err)
	}
	p, _ = db.GetPublisher(ctx, "acme")
	if p.RemovedAt.IsZero() || len(p.TrustedKeys()) != 0 || len(p.Keys) != 2 {
		t.Fatalf("removed publisher: %+v", p)
	}
	snap, err := db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Publishers) != 0 {
		t.Errorf("removed publisher in snapshot: %+v", snap.Publishers)
	}
	// Adding a key again trusts the publisher again, with that key only.
	if p, err = db.AddPublisherKey(ctx, "acme", k1, "sec", t0.Add(4)); err != nil || len(p.TrustedKeys()) != 1 || !p.RemovedAt.IsZero() {
		t.Fatalf("re-add: %+v %v", p, err)
	}
}

func TestAppVersionsAndAssignments(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	if _, err := db.AddPublisherKey(ctx, "acme", testPubKey(t), "sec", t0); err != nil {
		t.Fatal(err)
	}
	mustGroup(t, db, "line-1", "")
	mustGroup(t, db, "line-2", "")

	if err := db.PutAppVersion(ctx, testVersion("web", "1.0.0", "nobody", digestA)); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown publisher: %v", err)
	}
	v1 := testVersion("web", "1.0.0", "acme", digestA, digestB)
	if err := db.PutAppVersion(ctx, v1); err != nil {
		t.Fatal(err)
	}
	if err := db.PutAppVersion(ctx, v1); !errors.Is(err, ErrConflict) {
		t.Errorf("same version twice: %v", err)
	}
	v2 := testVersion("web", "1.1.0", "acme", digestA)
	v2.PushedAt = t0.Add(1)
	if err := db.PutAppVersion(ctx, v2); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetAppVersion(ctx, "web", "1.0.0")
	if err != nil || len(got.Artifacts) != 2 || got.Artifacts[0].SHA256 != digestA || string(got.Manifest) != string(v1.Manifest) {
		t.Fatalf("get: %+v %v", got, err)
	}
	if ok, _ := db.HasAppVersion(ctx, "web", "9.9.9"); ok {
		t.Error("HasAppVersion of a missing version")
	}

	if _, err := db.AssignApp(ctx, Assignment{App: "web", Version: "2.0.0", Group: "line-1", AssignedAt: t0}); !errors.Is(err, ErrNotFound) {
		t.Errorf("assign unknown version: %v", err)
	}
	if _, err := db.AssignApp(ctx, Assignment{App: "web", Version: "1.0.0", Group: "nope", AssignedAt: t0}); !errors.Is(err, ErrNotFound) {
		t.Errorf("assign to unknown group: %v", err)
	}
	for _, g := range []string{"line-1", "line-2"} {
		if _, err := db.AssignApp(ctx, Assignment{App: "web", Version: "1.0.0", Group: g, AssignedBy: "admin", AssignedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	// Reassigning replaces the group's version.
	if _, err := db.AssignApp(ctx, Assignment{App: "web", Version: "1.1.0", Group: "line-2", Forced: true, AssignedAt: t0}); err != nil {
		t.Fatal(err)
	}
	as, _ := db.ListAssignments(ctx)
	if len(as) != 2 || as[1].Version != "1.1.0" || !as[1].Forced {
		t.Fatalf("assignments: %+v", as)
	}
	with, _ := db.AssignmentsWithArtifact(ctx, digestB)
	if len(with) != 1 || with[0].Group != "line-1" {
		t.Errorf("assignments with artifact B: %+v", with)
	}

	snap, err := db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Publishers) != 1 || len(snap.Assignments) != 2 || len(snap.AppVersions) != 2 {
		t.Fatalf("snapshot: %d publishers, %d assignments, %d versions", len(snap.Publishers), len(snap.Assignments), len(snap.AppVersions))
	}

	// Delete is refused while assigned, and changes nothing.
	unchanged(t, db, ErrConflict, func() error { return db.DeleteAppVersion(ctx, "web", "1.0.0") }, "line-1", "unassign")
	if ok, _ := db.HasAppVersion(ctx, "web", "1.0.0"); !ok {
		t.Fatal("refused delete removed the version")
	}
	if err := db.UnassignApp(ctx, "web", "line-1"); err != nil {
		t.Fatal(err)
	}
	if err := db.UnassignApp(ctx, "web", "line-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unassign twice: %v", err)
	}
	if err := db.DeleteAppVersion(ctx, "web", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteAppVersion(ctx, "web", "1.0.0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}
	refs, _ := db.ReferencedArtifacts(ctx)
	if !refs[digestA] || refs[digestB] || len(refs) != 1 {
		t.Errorf("referenced after delete: %v", refs)
	}
	// Deleting a group drops its assignments.
	if err := db.DeleteGroup(ctx, "line-2"); err != nil {
		t.Fatal(err)
	}
	if as, _ := db.ListAssignments(ctx); len(as) != 0 {
		t.Errorf("assignments after group delete: %+v", as)
	}
}

// A version equal by semver precedence is the same version: pushing
// 1.0.0+rebuild after 1.0.0 must be refused, or two different signed
// manifests would claim one version and devices could not tell which runs.
func TestAppVersionSamePrecedenceRefused(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	if _, err := db.AddPublisherKey(ctx, "acme", testPubKey(t), "sec", t0); err != nil {
		t.Fatal(err)
	}
	if err := db.PutAppVersion(ctx, testVersion("web", "1.0.0", "acme", digestA)); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1.0.0+rebuild", "1.0.0+a.b.c"} {
		if ok, err := db.HasAppVersion(ctx, "web", v); err != nil || !ok {
			t.Errorf("HasAppVersion(%s) = %v, %v; want true (same precedence as 1.0.0)", v, ok, err)
		}
		err := db.PutAppVersion(ctx, testVersion("web", v, "acme", digestB))
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "same precedence as 1.0.0") {
			t.Errorf("push %s after 1.0.0: %v; want a conflict naming 1.0.0", v, err)
		}
	}
	vs, err := db.ListAppVersions(ctx)
	if err != nil || len(vs) != 1 {
		t.Fatalf("after refused pushes: %d versions (%v); want only 1.0.0", len(vs), err)
	}
	// A pre-release has a different precedence: it is a new version.
	if err := db.PutAppVersion(ctx, testVersion("web", "1.0.1-rc.1", "acme", digestB)); err != nil {
		t.Errorf("pre-release of a new version refused: %v", err)
	}
	if ok, _ := db.HasAppVersion(ctx, "other", "1.0.0"); ok {
		t.Error("HasAppVersion matched another app's version")
	}
}
