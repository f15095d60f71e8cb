package protocol

import (
	"errors"
	"testing"
)

func TestDecodeStatus(t *testing.T) {
	raw := []byte(`{"schema":1,"device_id":"dev-1","seq":3,"applied_revision":7,"future_field":true}`)
	s, err := DecodeStatus(raw, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if s.AppliedRevision != 7 || s.Seq != 3 {
		t.Fatalf("decoded %+v", s)
	}
	if _, err := DecodeStatus(raw, "dev-2"); !errors.Is(err, ErrWrongDevice) {
		t.Fatalf("status for another device on my topic: %v", err)
	}
	if _, err := DecodeStatus(make([]byte, MaxStatusBytes+1), "dev-1"); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
}

func TestDecodeEvents(t *testing.T) {
	if _, err := DecodeEvents([]byte(`{"device_id":"dev-1","events":[{"id":""}]}`), "dev-1"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty id: %v", err)
	}
	b, err := DecodeEvents([]byte(`{"device_id":"dev-1","events":[{"id":"e1","kind":"x"}]}`), "dev-1")
	if err != nil || len(b.Events) != 1 {
		t.Fatalf("%v %v", b, err)
	}
}

func TestDecodePresence(t *testing.T) {
	if _, err := DecodePresence([]byte(`{"device_id":"dev-1","state":"sleeping"}`), "dev-1"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad state: %v", err)
	}
	p, err := DecodePresence([]byte(`{"device_id":"dev-1","state":"offline"}`), "dev-1")
	if err != nil || p.State != Offline {
		t.Fatalf("%v %v", p, err)
	}
}
