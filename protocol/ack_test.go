package protocol

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ackVector is one golden case of DecodeAck: a second implementation can
// check itself against testdata/ack_vectors.json.
type ackVector struct {
	Name     string          `json:"name"`
	DeviceID string          `json:"device_id"`
	Raw      json.RawMessage `json:"raw"`
	// Want is "ok" or a rejection code from Reason.
	Want string `json:"want"`
}

func TestAckGoldenVectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "ack_vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vectors []ackVector
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) < 8 {
		t.Fatalf("only %d ack vectors", len(vectors))
	}
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			_, err := DecodeAck(v.Raw, v.DeviceID)
			got := "ok"
			if err != nil {
				got = Reason(err)
			}
			if got != v.Want {
				t.Fatalf("got %s (%v), want %s", got, err, v.Want)
			}
		})
	}
}

func TestDecodeAck(t *testing.T) {
	a, err := DecodeAck([]byte(`{"schema":1,"device_id":"dev-1","events":{"first":3,"last":9},"status_seq":4,"later":1}`), "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if a.Events == nil || a.Events.First != 3 || a.Events.Last != 9 || a.StatusSeq != 4 {
		t.Fatalf("decoded %+v", a)
	}
	if _, err := DecodeAck([]byte(`{"device_id":"dev-1","status_seq":1,"pad":"`+strings.Repeat("x", MaxAckBytes)+`"}`), "dev-1"); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	// Round trip of what the controller writes.
	b, _ := json.Marshal(Ack{Schema: Schema, DeviceID: "dev-1", Events: &SeqRange{First: 1, Last: MaxSeq}})
	if _, err := DecodeAck(b, "dev-1"); err != nil {
		t.Fatalf("largest range: %v", err)
	}
}

func TestDecodeEventsRange(t *testing.T) {
	for raw, want := range map[string]error{
		`{"device_id":"dev-1","events":[],"first":2,"last":5}`:                   nil,
		`{"device_id":"dev-1","events":[]}`:                                      nil, // schema-1 agent
		`{"device_id":"dev-1","events":[],"first":5,"last":2}`:                   ErrMalformed,
		`{"device_id":"dev-1","events":[],"first":0,"last":2}`:                   ErrMalformed,
		`{"device_id":"dev-1","events":[],"first":1,"last":9223372036854775808}`: ErrMalformed,
	} {
		if _, err := DecodeEvents([]byte(raw), "dev-1"); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", raw, err, want)
		}
	}
}
