package apply_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/agent/apply"
	"github.com/edgewarden/edgewarden/agent/state"
	"github.com/edgewarden/edgewarden/protocol"
)

const device = "press-01"

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

type controller struct {
	key ed25519.PrivateKey
	pub protocol.PublicKey
}

func newController(t testing.TB) *controller {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &controller{key: key, pub: publicKey(t, pub)}
}

func publicKey(t testing.TB, pub ed25519.PublicKey) protocol.PublicKey {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return protocol.PublicKey{KeyID: protocol.KeyID(pub), Algorithm: "Ed25519",
		PEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}
}

func doc(rev uint64, issued time.Time, groups ...string) *protocol.DesiredState {
	return &protocol.DesiredState{
		Schema: protocol.Schema, DeviceID: device, Revision: rev,
		IssuedAt: issued, ExpiresAt: issued.Add(time.Hour),
		Groups: groups,
	}
}

func (c *controller) sign(t testing.TB, d *protocol.DesiredState) []byte {
	t.Helper()
	raw, err := protocol.SignDesired(d, c.key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

type fixture struct {
	store *state.Store
	ctl   *controller
	now   time.Time
	path  string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{ctl: newController(t), now: t0, path: filepath.Join(t.TempDir(), "agent.db")}
	f.open(t)
	return f
}

func (f *fixture) open(t testing.TB) {
	t.Helper()
	st, err := state.Open(context.Background(), f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.store = st
}

func (f *fixture) applier(t testing.TB) *apply.Applier {
	t.Helper()
	a, err := apply.New(context.Background(), apply.Options{
		DeviceID: device, Keys: []protocol.PublicKey{f.ctl.pub}, Store: f.store,
		Now: func() time.Time { return f.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustOutcome(t *testing.T, res apply.Result, want apply.Outcome) {
	t.Helper()
	if res.Outcome != want {
		t.Fatalf("outcome %v (err %v), want %v", res.Outcome, res.Err, want)
	}
}

func TestFailClosedBeforeFirstDocument(t *testing.T) {
	f := newFixture(t)
	if p := f.applier(t).Current(); p != nil {
		t.Fatalf("policy before any document: %+v, want nil (no access)", p)
	}
}

func TestApplyValidDocument(t *testing.T) {
	f := newFixture(t)
	a := f.applier(t)
	raw := f.ctl.sign(t, doc(1, t0, "line-1"))
	mustOutcome(t, a.Handle(context.Background(), raw), apply.Applied)
	p := a.Current()
	if p == nil || p.Revision != 1 || p.Doc.Groups[0] != "line-1" || !p.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("policy after apply: %+v", p)
	}
	stored, err := f.store.Applied(context.Background())
	if err != nil || stored == nil || stored.Revision != 1 || string(stored.Envelope) != string(raw) {
		t.Fatalf("stored applied document: %+v, %v", stored, err)
	}
}

// Every way to get a document refused: the last good one stays in force,
// the rejection is recorded with its reason, and an event is queued.
func TestRejections(t *testing.T) {
	other := newController(t)
	cases := []struct {
		name   string
		raw    func(f *fixture) []byte
		reason string
	}{
		{"wrong signature", func(f *fixture) []byte { return other.sign(t, doc(3, t0.Add(time.Minute))) }, "bad_signature"},
		{"tampered payload", func(f *fixture) []byte {
			raw := f.ctl.sign(t, doc(3, t0.Add(time.Minute)))
			env, _ := protocol.DecodeEnvelope(raw)
			env.Payload = []byte(string(env.Payload[:len(env.Payload)-1]) + " }")
			b, _ := json.Marshal(env)
			return b
		}, "bad_signature"},
		{"other device", func(f *fixture) []byte {
			d := doc(3, t0.Add(time.Minute))
			d.DeviceID = "press-02"
			return f.ctl.sign(t, d)
		}, "wrong_device"},
		{"lower revision", func(f *fixture) []byte { return f.ctl.sign(t, doc(1, t0.Add(time.Minute))) }, "replay"},
		{"equal revision, other content", func(f *fixture) []byte { return f.ctl.sign(t, doc(2, t0.Add(time.Minute), "evil")) }, "replay"},
		{"equal revision, same content, older issue time", func(f *fixture) []byte { return f.ctl.sign(t, doc(2, t0.Add(-time.Minute), "line-1")) }, "replay"},
		{"expired", func(f *fixture) []byte {
			d := doc(3, t0.Add(-2*time.Hour))
			return f.ctl.sign(t, d)
		}, "expired"},
		{"garbage", func(f *fixture) []byte { return []byte("{not json") }, "malformed"},
		{"unsigned", func(f *fixture) []byte { return []byte(`{"payloadType":"x","payload":"eA==","signatures":[]}`) }, "bad_signature"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			a := f.applier(t)
			good := f.ctl.sign(t, doc(2, t0, "line-1"))
			mustOutcome(t, a.Handle(context.Background(), good), apply.Applied)
			f.now = t0.Add(5 * time.Minute)

			res := a.Handle(context.Background(), tc.raw(f))
			mustOutcome(t, res, apply.Rejected)
			if got := protocol.Reason(res.Err); got != tc.reason {
				t.Fatalf("reason %q (%v), want %q", got, res.Err, tc.reason)
			}
			if p := a.Current(); p.Revision != 2 || p.Doc.Groups[0] != "line-1" {
				t.Fatalf("policy after rejection: revision %d groups %v, want last good revision 2", p.Revision, p.Doc.Groups)
			}
			stored, _ := f.store.Applied(context.Background())
			if string(stored.Envelope) != string(good) {
				t.Fatal("stored document changed by a rejected one")
			}
			rej, err := f.store.LastRejection(context.Background())
			if err != nil || rej == nil || rej.Reason != tc.reason || rej.Message == "" {
				t.Fatalf("last rejection %+v, %v", rej, err)
			}
			evs, _ := f.store.PendingEvents(context.Background(), 10)
			if len(evs) != 1 || evs[0].Kind != "document_rejected" || evs[0].Severity != "warning" || evs[0].Details["reason"] != tc.reason {
				t.Fatalf("outbox %+v, want one document_rejected event", evs)
			}

			// The same bytes again (e.g. re-delivered on reconnect) are
			// refused again but not reported twice.
			res = a.Handle(context.Background(), tc.raw(f))
			if res.Outcome != apply.Rejected {
				t.Fatalf("second delivery: %v", res.Outcome)
			}
			if n, _ := f.store.CountEvents(context.Background()); n > 2 {
				t.Fatalf("%d events after the same rejection twice", n)
			}
		})
	}
}

func TestRefreshRenewsExpiryOnly(t *testing.T) {
	f := newFixture(t)
	a := f.applier(t)
	mustOutcome(t, a.Handle(context.Background(), f.ctl.sign(t, doc(4, t0, "line-1"))), apply.Applied)
	before := a.Current()

	f.now = t0.Add(50 * time.Minute)
	refresh := doc(4, t0.Add(45*time.Minute), "line-1")
	res := a.Handle(context.Background(), f.ctl.sign(t, refresh))
	mustOutcome(t, res, apply.Refreshed)
	after := a.Current()
	if after.Revision != 4 || !after.ExpiresAt.Equal(refresh.ExpiresAt) || !after.AppliedAt.Equal(before.AppliedAt) {
		t.Fatalf("after refresh: %+v; want revision 4, new expiry %s, applied_at unchanged %s", after, refresh.ExpiresAt, before.AppliedAt)
	}
	if after.Doc.Groups[0] != "line-1" || before.ExpiresAt.Equal(after.ExpiresAt) {
		t.Fatal("refresh changed content or kept the old expiry")
	}
	// The old policy value is untouched (immutable).
	if !before.ExpiresAt.Equal(t0.Add(time.Hour)) || !before.Doc.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Fatal("refresh modified the previous policy in place")
	}
	// Persisted: a new applier on the same store sees the renewed expiry.
	if p := f.applier(t).Current(); !p.ExpiresAt.Equal(refresh.ExpiresAt) {
		t.Fatalf("stored expiry %s, want %s", p.ExpiresAt, refresh.ExpiresAt)
	}
	if n, _ := f.store.CountEvents(context.Background()); n != 0 {
		t.Fatalf("%d events after a refresh, want none", n)
	}
}

// After a restart the broker re-delivers the retained document already in
// force: a quiet no-op, even once it has expired.
func TestRedeliveredDocumentIsNoOp(t *testing.T) {
	f := newFixture(t)
	raw := f.ctl.sign(t, doc(7, t0))
	mustOutcome(t, f.applier(t).Handle(context.Background(), raw), apply.Applied)

	f.store.Close()
	f.open(t)
	a := f.applier(t)
	if p := a.Current(); p == nil || p.Revision != 7 {
		t.Fatalf("policy after restart: %+v", p)
	}
	f.now = t0.Add(time.Minute)
	mustOutcome(t, a.Handle(context.Background(), raw), apply.Unchanged)

	// Re-encoded (same signed payload, different JSON layout): still the same.
	env, err := protocol.DecodeEnvelope(raw)
	if err != nil {
		t.Fatal(err)
	}
	reenc, _ := json.MarshalIndent(env, "", "  ")
	mustOutcome(t, a.Handle(context.Background(), reenc), apply.Unchanged)

	f.now = t0.Add(2 * time.Hour) // expired meanwhile
	mustOutcome(t, a.Handle(context.Background(), raw), apply.Unchanged)

	if rej, _ := f.store.LastRejection(context.Background()); rej != nil {
		t.Fatalf("re-delivery recorded a rejection: %+v", rej)
	}
	if n, _ := f.store.CountEvents(context.Background()); n != 0 {
		t.Fatalf("re-delivery queued %d events", n)
	}
}

func TestNextControllerKeyIsLearned(t *testing.T) {
	f := newFixture(t)
	next := newController(t)
	d := doc(1, t0)
	d.NextControllerKey = &next.pub
	a := f.applier(t)
	mustOutcome(t, a.Handle(context.Background(), f.ctl.sign(t, d)), apply.Applied)

	// Signed by the announced key: accepted, also after a restart.
	mustOutcome(t, a.Handle(context.Background(), next.sign(t, doc(2, t0))), apply.Applied)
	mustOutcome(t, f.applier(t).Handle(context.Background(), next.sign(t, doc(3, t0))), apply.Applied)
}

// A key announced in a rejected document is not learned.
func TestNextControllerKeyFromRejectedDocumentIsIgnored(t *testing.T) {
	f := newFixture(t)
	a := f.applier(t)
	mustOutcome(t, a.Handle(context.Background(), f.ctl.sign(t, doc(5, t0))), apply.Applied)
	attacker := newController(t)
	d := doc(4, t0) // stale revision: rejected
	d.NextControllerKey = &attacker.pub
	mustOutcome(t, a.Handle(context.Background(), f.ctl.sign(t, d)), apply.Rejected)
	res := a.Handle(context.Background(), attacker.sign(t, doc(6, t0)))
	if res.Outcome != apply.Rejected || !errors.Is(res.Err, protocol.ErrSignature) {
		t.Fatalf("document signed by an unlearned key: %v %v", res.Outcome, res.Err)
	}
}

// A store failure leaves nothing in force and reports an error, not a
// rejection, so the message is not acknowledged.
func TestStoreFailureAppliesNothing(t *testing.T) {
	f := newFixture(t)
	a := f.applier(t)
	f.store.Close()
	res := a.Handle(context.Background(), f.ctl.sign(t, doc(1, t0)))
	if res.Outcome != 0 || res.Err == nil {
		t.Fatalf("handle with a closed store: %v %v", res.Outcome, res.Err)
	}
	if a.Current() != nil {
		t.Fatal("policy swapped in although it was not stored")
	}
}

func BenchmarkVerifyApply(b *testing.B) {
	f := newFixture(b)
	a := f.applier(b)
	docs := make([][]byte, b.N)
	for i := range docs {
		d := doc(uint64(i+1), t0, "line-1", "plant-a")
		d.Labels = map[string]string{"site": "plant-a", "line": "1"}
		docs[i] = f.ctl.sign(b, d)
	}
	b.SetBytes(int64(len(docs[0])))
	b.ResetTimer()
	for i := range b.N {
		if res := a.Handle(context.Background(), docs[i]); res.Outcome != apply.Applied {
			b.Fatalf("revision %d: %v %v", i+1, res.Outcome, res.Err)
		}
	}
}
