package apply_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/agent/apply"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/access"
	"github.com/edgewarden/edgewarden/protocol/optoken"
)

// accessDoc is doc with an operator grant for alice on the device and a
// token key.
func accessDoc(t *testing.T, rev uint64, issued time.Time, tokenKey protocol.PublicKey, revoked ...string) *protocol.DesiredState {
	t.Helper()
	d := doc(rev, issued, "line-1")
	pol, err := access.CompileForDevice(access.Input{
		Roles:  access.BuiltinRoles(),
		Users:  []access.User{{Name: "alice"}},
		Grants: []access.Grant{{ID: "g-1", Subject: access.UserSubject("alice"), Role: access.RoleOperator, Scope: access.GroupScope("line-1")}},
	}, access.NewHierarchy(nil).Device(device, []string{"line-1"}))
	if err != nil {
		t.Fatal(err)
	}
	d.Access, d.TokenKeys, d.RevokedTokens = pol, []protocol.PublicKey{tokenKey}, revoked
	return d
}

func tokenSigner(t *testing.T) *optoken.Signer {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s, err := optoken.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A policy comes with its local access compiled: evaluator, token verifier
// and device resource, from a new document, a refresh and the store.
func TestPolicyCarriesLocalAccess(t *testing.T) {
	f := newFixture(t)
	a := f.applier(t)
	s := tokenSigner(t)
	tok, _, err := s.Issue(optoken.IssueOptions{Subject: "alice", Now: t0, TTL: 8 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	allowed := func(p *apply.Policy) bool {
		t.Helper()
		if p.Access == nil || p.Tokens == nil {
			t.Fatalf("policy revision %d without local access", p.Revision)
		}
		c, err := p.Tokens.Verify(tok, f.now)
		return err == nil && p.Access.Allowed(c.Subject, access.DeviceAppOperate, p.Device)
	}
	mustOutcome(t, a.Handle(context.Background(), f.ctl.sign(t, accessDoc(t, 1, t0, s.PublicKey()))), apply.Applied)
	p1 := a.Current()
	if !allowed(p1) || p1.Device.ID != device {
		t.Fatalf("alice not allowed on revision 1: %+v", p1.Device)
	}
	// A refresh keeps the verifier, and so its cache.
	f.now = t0.Add(50 * time.Minute)
	mustOutcome(t, a.Handle(context.Background(), f.ctl.sign(t, accessDoc(t, 1, t0.Add(45*time.Minute), s.PublicKey()))), apply.Refreshed)
	if p := a.Current(); p.Tokens != p1.Tokens || p.Access != p1.Access || !allowed(p) {
		t.Error("a refresh rebuilt or lost the local access of the policy it renews")
	}
	// A new revision revoking the token: a new verifier refuses it.
	mustOutcome(t, a.Handle(context.Background(), f.ctl.sign(t, accessDoc(t, 2, t0.Add(50*time.Minute), s.PublicKey(), "x", mustJTI(t, p1, tok)))), apply.Applied)
	if allowed(a.Current()) {
		t.Error("revoked token still allowed")
	}
	// Reloaded from the store.
	if p := f.applier(t).Current(); p.Revision != 2 || allowed(p) || p.Access == nil {
		t.Errorf("stored policy: revision %d, allowed %v", p.Revision, allowed(p))
	}
}

func mustJTI(t *testing.T, p *apply.Policy, tok string) string {
	t.Helper()
	c, err := p.Tokens.Verify(tok, t0)
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// A document whose token keys are unusable is refused as malformed; the
// last good policy stays in force.
func TestBadTokenKeyRejectsDocument(t *testing.T) {
	f := newFixture(t)
	a := f.applier(t)
	s := tokenSigner(t)
	mustOutcome(t, a.Handle(context.Background(), f.ctl.sign(t, accessDoc(t, 1, t0, s.PublicKey()))), apply.Applied)
	for i, k := range []protocol.PublicKey{
		{KeyID: "../../etc/passwd", Algorithm: "Ed25519", PEM: s.PublicKey().PEM},
		{KeyID: s.PublicKey().KeyID, Algorithm: "ES256", PEM: s.PublicKey().PEM},
		{KeyID: "k1", Algorithm: "Ed25519", PEM: "not a key"},
	} {
		res := a.Handle(context.Background(), f.ctl.sign(t, accessDoc(t, uint64(2+i), t0, k)))
		mustOutcome(t, res, apply.Rejected)
		if !errors.Is(res.Err, protocol.ErrMalformed) {
			t.Errorf("key %d: error %v, want malformed", i, res.Err)
		}
		if p := a.Current(); p.Revision != 1 || p.Tokens == nil {
			t.Fatalf("key %d: policy in force is revision %d", i, p.Revision)
		}
	}
}
