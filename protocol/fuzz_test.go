package protocol

import (
	"testing"
	"time"
)

// The fuzz targets check that no input makes a decoder panic and that
// CheckDesired never accepts a document without a trusted signature.

func FuzzCheckDesired(f *testing.F) {
	ctl := testKey(1)
	good, _ := SignDesired(doc("dev-1", 2, t0), ctl)
	f.Add(good)
	f.Add([]byte(`{"payloadType":"x","payload":"e30=","signatures":[{"keyid":"k","sig":"AA=="}]}`))
	f.Add([]byte(`null`))
	keys := keysOf(ctl)
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, _, err := CheckDesired(raw, CheckOptions{DeviceID: "dev-1", Keys: keys, Now: t0.Add(time.Minute)})
		if err == nil {
			env, derr := DecodeEnvelope(raw)
			if derr != nil {
				t.Fatalf("accepted an envelope DecodeEnvelope refuses: %v", derr)
			}
			if _, verr := VerifyEnvelope(env, PayloadTypeDesired, keys); verr != nil {
				t.Fatalf("accepted without a valid signature: %v", verr)
			}
			if d.DeviceID != "dev-1" {
				t.Fatalf("accepted a document for %q", d.DeviceID)
			}
		}
	})
}

func FuzzDecodeStatus(f *testing.F) {
	f.Add([]byte(`{"schema":1,"device_id":"dev-1","seq":3,"apps":[{"name":"a"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := DecodeStatus(raw, "dev-1")
		if err == nil && (s.DeviceID != "dev-1" || len(s.Apps) > MaxAppsPerDevice) {
			t.Fatalf("accepted %+v", s)
		}
	})
}

func FuzzDecodeEvents(f *testing.F) {
	f.Add([]byte(`{"device_id":"dev-1","events":[{"id":"e1","kind":"x"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := DecodeEvents(raw, "dev-1")
		if err == nil && (b.DeviceID != "dev-1" || len(b.Events) > MaxEventsPerBatch) {
			t.Fatalf("accepted %+v", b)
		}
	})
}

func FuzzDecodePresence(f *testing.F) {
	f.Add([]byte(`{"device_id":"dev-1","state":"online"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := DecodePresence(raw, "dev-1")
		if err == nil && p.State != Online && p.State != Offline {
			t.Fatalf("accepted %+v", p)
		}
	})
}

func FuzzParseTopic(f *testing.F) {
	f.Add(StatusTopic("dev-1"))
	f.Fuzz(func(t *testing.T, topic string) {
		id, kind, err := ParseTopic(topic)
		if err == nil && topic != TopicRoot+id+"/"+kind {
			t.Fatalf("ParseTopic(%q) = %q %q", topic, id, kind)
		}
	})
}

func FuzzDecodeAck(f *testing.F) {
	f.Add([]byte(`{"device_id":"dev-1","events":{"first":1,"last":5},"status_seq":2}`))
	f.Add([]byte(`{"device_id":"dev-1","events":{"first":5,"last":1}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := DecodeAck(raw, "dev-1")
		if err != nil {
			return
		}
		if a.DeviceID != "dev-1" || (a.Events == nil && a.StatusSeq == 0) || a.StatusSeq > MaxSeq {
			t.Fatalf("accepted %+v", a)
		}
		if r := a.Events; r != nil && (r.First == 0 || r.First > r.Last || r.Last > MaxSeq) {
			t.Fatalf("accepted range %+v", r)
		}
	})
}
