package protocol

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// vector is one golden test vector: a second implementation can check itself
// against testdata/vectors.json: the key comes from a fixed seed, Ed25519 is
// deterministic, so the envelope bytes are exact.
type vector struct {
	Name string `json:"name"`
	// SeedHex is the Ed25519 seed of the key that signed Envelope.
	SeedHex string `json:"seed_hex"`
	// TrustedSeedHex is the seed of the key the verifier trusts.
	TrustedSeedHex string          `json:"trusted_seed_hex"`
	DeviceID       string          `json:"device_id"`
	Now            time.Time       `json:"now"`
	Applied        appliedJSON     `json:"applied"`
	Envelope       json.RawMessage `json:"envelope"`
	// Want is "apply", "refresh" or a rejection code from Reason.
	Want string `json:"want"`
}

type appliedJSON struct {
	Revision      uint64    `json:"revision"`
	ContentDigest string    `json:"content_digest"`
	IssuedAt      time.Time `json:"issued_at"`
}

func seed(b byte) string { return hex.EncodeToString(bytes.Repeat([]byte{b}, 32)) }

func buildVectors(t *testing.T) []vector {
	ctl, other := testKey(1), testKey(2)
	base := doc("dev-1", 5, t0)
	base.Labels = map[string]string{"site": "plant-a"}
	applied := appliedJSON{Revision: 5, ContentDigest: base.ContentDigest(), IssuedAt: t0}
	next := *base
	next.Revision, next.Groups = 6, []string{"line-1", "line-2"}
	refresh := *base
	refresh.IssuedAt, refresh.ExpiresAt = t0.Add(time.Hour), t0.Add(25*time.Hour)
	older := *base
	older.Revision = 4
	foreign := next
	foreign.DeviceID = "dev-2"
	now := t0.Add(2 * time.Hour)
	v := func(name string, d *DesiredState, k byte, want string) vector {
		key := ctl
		if k == 2 {
			key = other
		}
		return vector{Name: name, SeedHex: seed(k), TrustedSeedHex: seed(1), DeviceID: "dev-1", Now: now, Applied: applied, Envelope: sign(t, d, key), Want: want}
	}
	return []vector{
		v("new revision is applied", &next, 1, "apply"),
		v("same content re-signed later is a refresh", &refresh, 1, "refresh"),
		v("the applied copy again is a replay", base, 1, "replay"),
		v("older revision is a replay", &older, 1, "replay"),
		v("document for another device", &foreign, 1, "wrong_device"),
		v("signed by an untrusted key", &next, 2, "bad_signature"),
	}
}

func TestGoldenVectors(t *testing.T) {
	path := filepath.Join("testdata", "vectors.json")
	if *update {
		b, err := json.MarshalIndent(buildVectors(t), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./protocol -run Golden -update to create it)", err)
	}
	var vectors []vector
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	// The stored envelopes must be exactly what this code signs today:
	// otherwise the wire format changed and the vectors must be renewed
	// deliberately (with -update) and the schema history noted.
	fresh := buildVectors(t)
	if len(fresh) != len(vectors) {
		t.Fatalf("%d vectors stored, %d built", len(vectors), len(fresh))
	}
	for i, vec := range vectors {
		t.Run(vec.Name, func(t *testing.T) {
			if !bytes.Equal(compact(t, vec.Envelope), compact(t, fresh[i].Envelope)) {
				t.Fatalf("signed bytes changed; if intended, run with -update and note it in the schema history")
			}
			s, _ := hex.DecodeString(vec.TrustedSeedHex)
			trusted := keysOf(ed25519FromSeed(s))
			_, verdict, err := CheckDesired(vec.Envelope, CheckOptions{
				DeviceID: vec.DeviceID, Keys: trusted, Now: vec.Now,
				Applied: Applied{Revision: vec.Applied.Revision, ContentDigest: vec.Applied.ContentDigest, IssuedAt: vec.Applied.IssuedAt},
			})
			got := verdict.String()
			if err != nil {
				got = Reason(err)
				if got == "other" {
					t.Fatalf("unclassified error %v", errors.Unwrap(err))
				}
			}
			if got != vec.Want {
				t.Fatalf("got %s (%v), want %s", got, err, vec.Want)
			}
		})
	}
}

func compact(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
