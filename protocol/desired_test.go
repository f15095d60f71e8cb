package protocol

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func testKey(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed
	}
	return ed25519.NewKeyFromSeed(s)
}

func keysOf(keys ...ed25519.PrivateKey) map[string]ed25519.PublicKey {
	m := map[string]ed25519.PublicKey{}
	for _, k := range keys {
		pub := k.Public().(ed25519.PublicKey)
		m[KeyID(pub)] = pub
	}
	return m
}

func doc(device string, rev uint64, issued time.Time) *DesiredState {
	return &DesiredState{
		Schema:    Schema,
		DeviceID:  device,
		Revision:  rev,
		IssuedAt:  issued,
		ExpiresAt: issued.Add(24 * time.Hour),
		Groups:    []string{"line-1"},
	}
}

func sign(t *testing.T, d *DesiredState, k ed25519.PrivateKey) []byte {
	t.Helper()
	raw, err := SignDesired(d, k)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestCheckDesired(t *testing.T) {
	ctl := testKey(1)
	other := testKey(2)
	applied := doc("dev-1", 5, t0)
	appliedState := Applied{Revision: 5, ContentDigest: applied.ContentDigest(), IssuedAt: t0}

	changed := doc("dev-1", 5, t0.Add(time.Hour))
	changed.Groups = []string{"line-2"}

	tests := []struct {
		name    string
		raw     []byte
		now     time.Time
		want    Verdict
		wantErr error
	}{
		{"new revision", sign(t, doc("dev-1", 6, t0), ctl), t0.Add(time.Minute), Apply, nil},
		{"refresh", sign(t, doc("dev-1", 5, t0.Add(time.Hour)), ctl), t0.Add(2 * time.Hour), Refresh, nil},
		{"identical copy re-delivered", sign(t, doc("dev-1", 5, t0), ctl), t0.Add(time.Minute), 0, ErrReplay},
		{"equal revision other content", sign(t, changed, ctl), t0.Add(2 * time.Hour), 0, ErrReplay},
		{"older revision", sign(t, doc("dev-1", 4, t0.Add(time.Hour)), ctl), t0.Add(2 * time.Hour), 0, ErrReplay},
		{"other device", sign(t, doc("dev-2", 9, t0), ctl), t0.Add(time.Minute), 0, ErrWrongDevice},
		{"untrusted key", sign(t, doc("dev-1", 9, t0), other), t0.Add(time.Minute), 0, ErrSignature},
		{"expired", sign(t, doc("dev-1", 9, t0), ctl), t0.Add(25 * time.Hour), 0, ErrExpired},
		{"garbage", []byte("{not json"), t0, 0, ErrMalformed},
		{"oversized", make([]byte, MaxEnvelopeBytes+1), t0, 0, ErrTooLarge},
		{"unsigned", mustJSON(t, Envelope{PayloadType: PayloadTypeDesired, Payload: []byte(`{}`)}), t0, 0, ErrSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, v, err := CheckDesired(tc.raw, CheckOptions{DeviceID: "dev-1", Keys: keysOf(ctl), Applied: appliedState, Now: tc.now})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if d != nil {
					t.Fatal("rejected document returned")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v != tc.want {
				t.Fatalf("verdict = %v, want %v", v, tc.want)
			}
		})
	}
}

func TestCheckDesiredTamperedPayload(t *testing.T) {
	ctl := testKey(1)
	raw := sign(t, doc("dev-1", 2, t0), ctl)
	var env Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	env.Payload = []byte(strings.Replace(string(env.Payload), "line-1", "line-9", 1))
	_, _, err := CheckDesired(mustJSON(t, env), CheckOptions{DeviceID: "dev-1", Keys: keysOf(ctl), Now: t0})
	if !errors.Is(err, ErrSignature) {
		t.Fatalf("tampered payload: err = %v, want bad signature", err)
	}
	// A signature moved to another payload type must not verify either.
	env2 := env
	env2.PayloadType = "application/json"
	if _, err := VerifyEnvelope(&env2, PayloadTypeDesired, keysOf(ctl)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("payload type swap: err = %v", err)
	}
}

func TestRotationKeyTrusted(t *testing.T) {
	oldK, newK := testKey(1), testKey(3)
	raw := sign(t, doc("dev-1", 1, t0), newK)
	if _, _, err := CheckDesired(raw, CheckOptions{DeviceID: "dev-1", Keys: keysOf(oldK), Now: t0}); !errors.Is(err, ErrSignature) {
		t.Fatalf("new key before announcement: %v", err)
	}
	if _, _, err := CheckDesired(raw, CheckOptions{DeviceID: "dev-1", Keys: keysOf(oldK, newK), Now: t0}); err != nil {
		t.Fatalf("new key after announcement: %v", err)
	}
}

func TestReason(t *testing.T) {
	for err, want := range map[error]string{ErrTooLarge: "too_large", ErrSignature: "bad_signature", ErrReplay: "replay", ErrExpired: "expired", ErrWrongDevice: "wrong_device", ErrMalformed: "malformed", errors.New("x"): "other"} {
		if got := Reason(err); got != want {
			t.Errorf("Reason(%v) = %q, want %q", err, got, want)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ed25519FromSeed(s []byte) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(s) }

func TestSignDesiredKeys(t *testing.T) {
	a, b := ed25519.NewKeyFromSeed(make([]byte, 32)), ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	d := &DesiredState{Schema: Schema, DeviceID: "press-01", Revision: 1, IssuedAt: time.Unix(100, 0).UTC(), ExpiresAt: time.Unix(100000, 0).UTC()}
	raw, err := SignDesiredKeys(d, a, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []ed25519.PrivateKey{a, b} {
		pub := k.Public().(ed25519.PublicKey)
		if _, _, err := CheckDesired(raw, CheckOptions{DeviceID: "press-01", Keys: map[string]ed25519.PublicKey{KeyID(pub): pub}, Now: time.Unix(200, 0)}); err != nil {
			t.Errorf("key %s alone: %v", KeyID(pub), err)
		}
	}
	one, err := SignDesired(d, a)
	if err != nil {
		t.Fatal(err)
	}
	if env, _ := DecodeEnvelope(one); len(env.Signatures) != 1 {
		t.Errorf("SignDesired made %d signatures, want 1", len(env.Signatures))
	}
	if _, err := SignDesiredKeys(d); err == nil {
		t.Error("no keys accepted")
	}
	if _, err := SignDesiredKeys(d, a, a, a, a, a); err == nil {
		t.Error("more than MaxSignatures keys accepted")
	}
	if _, err := SignDesiredKeys(d, a, ed25519.PrivateKey{1, 2}); err == nil {
		t.Error("malformed key accepted")
	}
}
