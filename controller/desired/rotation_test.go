package desired

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/protocol"
)

// A signing-key rotation: announcing the next key changes every device's
// content (new revision carrying NextControllerKey, still signed by the
// current key only); after promotion, documents carry two signatures, and an
// agent trusting either key alone accepts them.
func TestCompileKeyRotation(t *testing.T) {
	clk := &clock{t0}
	oldKey, newKey := testKey(1), testKey(9)
	snap := fleetSnapshot()
	apply(snap, mustCompile(t, New(Options{Key: oldKey, Now: clk.now}), snap))

	// Announce.
	clk.t = clk.t.Add(time.Minute)
	announce := mustCompile(t, New(Options{Key: oldKey, NextKey: newKey, Now: clk.now}), snap)
	if len(announce) != 2 {
		t.Fatalf("announcing the next key changed %d documents, want 2", len(announce))
	}
	wantNext := protocol.ControllerPublicKey(newKey.Public().(ed25519.PublicKey))
	for _, r := range announce {
		d, v, err := protocol.CheckDesired(r.Envelope, protocol.CheckOptions{DeviceID: r.DeviceID, Keys: trusted(oldKey),
			Applied: protocol.Applied{Revision: 1}, Now: clk.t})
		if err != nil || v != protocol.Apply || d.Revision != 2 {
			t.Fatalf("%s announcement: revision %d, %v, %v", r.DeviceID, d.Revision, v, err)
		}
		if d.NextControllerKey == nil || *d.NextControllerKey != wantNext {
			t.Errorf("%s announces %+v, want %+v", r.DeviceID, d.NextControllerKey, wantNext)
		}
		if n := signatures(t, r.Envelope); n != 1 {
			t.Errorf("%s announcement has %d signatures, want 1 (current key)", r.DeviceID, n)
		}
		// Not yet signed by the next key.
		if _, _, err := protocol.CheckDesired(r.Envelope, protocol.CheckOptions{DeviceID: r.DeviceID, Keys: trusted(newKey), Now: clk.t}); !errors.Is(err, protocol.ErrSignature) {
			t.Errorf("%s announcement verified under the next key: %v", r.DeviceID, err)
		}
	}
	apply(snap, announce)

	// Promote.
	clk.t = clk.t.Add(time.Minute)
	promoted := mustCompile(t, New(Options{Key: newKey, PrevKey: oldKey, Now: clk.now}), snap)
	if len(promoted) != 2 {
		t.Fatalf("promotion re-signed %d documents, want 2", len(promoted))
	}
	for _, r := range promoted {
		if n := signatures(t, r.Envelope); n != 2 {
			t.Errorf("%s has %d signatures after promotion, want 2", r.DeviceID, n)
		}
		for name, key := range map[string]ed25519.PrivateKey{"new": newKey, "previous": oldKey} {
			d, v, err := protocol.CheckDesired(r.Envelope, protocol.CheckOptions{DeviceID: r.DeviceID, Keys: trusted(key),
				Applied: protocol.Applied{Revision: 1}, Now: clk.t})
			if err != nil || v != protocol.Apply {
				t.Fatalf("%s: an agent trusting only the %s key refuses: %v %v", r.DeviceID, name, v, err)
			}
			// Same content and revision (re-signed, a refresh for agents
			// that applied the announcement), still announcing the new key:
			// an agent that missed the announcement learns it here.
			if d.NextControllerKey == nil || *d.NextControllerKey != wantNext || d.Revision != 2 {
				t.Errorf("%s after promotion: revision %d, next key %+v; want 2 and %+v", r.DeviceID, d.Revision, d.NextControllerKey, wantNext)
			}
		}
		// A third key still verifies nothing.
		if _, _, err := protocol.CheckDesired(r.Envelope, protocol.CheckOptions{DeviceID: r.DeviceID, Keys: trusted(testKey(3)), Now: clk.t}); !errors.Is(err, protocol.ErrSignature) {
			t.Errorf("%s accepted under an unrelated key: %v", r.DeviceID, err)
		}
	}
	apply(snap, promoted)
	if again := mustCompile(t, New(Options{Key: newKey, PrevKey: oldKey, Now: clk.now}), snap); len(again) != 0 {
		t.Fatalf("compiling again after promotion re-signed %d documents, want none", len(again))
	}

	// Drop the previous key: the announcement goes, documents carry the
	// new key's signature alone.
	clk.t = clk.t.Add(time.Minute)
	dropped := mustCompile(t, New(Options{Key: newKey, Now: clk.now}), snap)
	if len(dropped) != 2 {
		t.Fatalf("dropping the previous key changed %d documents, want 2", len(dropped))
	}
	for _, r := range dropped {
		d, _, err := protocol.CheckDesired(r.Envelope, protocol.CheckOptions{DeviceID: r.DeviceID, Keys: trusted(newKey), Now: clk.t})
		if err != nil || d.NextControllerKey != nil || d.Revision != 3 || signatures(t, r.Envelope) != 1 {
			t.Errorf("%s after dropping the previous key: %+v, %v", r.DeviceID, d, err)
		}
		if _, _, err := protocol.CheckDesired(r.Envelope, protocol.CheckOptions{DeviceID: r.DeviceID, Keys: trusted(oldKey), Now: clk.t}); !errors.Is(err, protocol.ErrSignature) {
			t.Errorf("%s still verifies under the retired key: %v", r.DeviceID, err)
		}
	}
}

func signatures(t *testing.T, raw []byte) int {
	t.Helper()
	env, err := protocol.DecodeEnvelope(raw)
	if err != nil {
		t.Fatal(err)
	}
	return len(env.Signatures)
}
