package protocol

import "fmt"

// Ack is what the controller publishes on a device's ack topic (QoS 1, not
// retained) once something the device sent is committed in its store. The
// agent removes an event from its outbox only on an Ack, never on the
// broker's PUBACK: a broker that acknowledged and then lost a message
// (an external broker killed before its autosave) cannot lose events.
//
// Events names the outbox positions of one stored batch (EventBatch.First
// and Last), not "everything up to": a batch the broker lost is never
// covered by the acknowledgement of a later one, and the controller keeps
// no per-device counter. The agent deletes only positions it sent in a
// batch with exactly this range, so a forged or confused Ack cannot delete
// anything unsent.
type Ack struct {
	Schema   int    `json:"schema"`
	DeviceID string `json:"device_id"`
	// Events is the range of a stored event batch; absent: no events
	// acknowledged by this message.
	Events *SeqRange `json:"events,omitempty"`
	// StatusSeq is the Seq of a stored StatusReport; 0: none.
	StatusSeq uint64 `json:"status_seq,omitempty"`
}

// SeqRange is an inclusive range of outbox positions, First ≤ Last, both
// at least 1.
type SeqRange struct {
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
}

// MaxSeq bounds every sequence number on the wire: it fits an SQLite
// INTEGER (int64), so a peer cannot make a receiver overflow it.
const MaxSeq = 1<<63 - 1

// DecodeAck parses an Ack received on deviceID's ack topic and checks its
// bounds: the device id, a non-empty, ordered range within MaxSeq, and at
// least one thing acknowledged. It does not decide what the numbers may
// delete: the receiver checks them against what it sent.
func DecodeAck(raw []byte, deviceID string) (*Ack, error) {
	var a Ack
	if err := decodeLimited(raw, MaxAckBytes, "acknowledgement", &a); err != nil {
		return nil, err
	}
	if a.DeviceID != deviceID {
		return nil, fmt.Errorf("%w: acknowledgement names device %q on the topic of %q", ErrWrongDevice, a.DeviceID, deviceID)
	}
	if a.Events == nil && a.StatusSeq == 0 {
		return nil, fmt.Errorf("%w: acknowledgement acknowledges nothing", ErrMalformed)
	}
	if a.StatusSeq > MaxSeq {
		return nil, fmt.Errorf("%w: acknowledged status seq %d is out of range", ErrMalformed, a.StatusSeq)
	}
	if r := a.Events; r != nil {
		if r.First == 0 || r.First > r.Last || r.Last > MaxSeq {
			return nil, fmt.Errorf("%w: acknowledged event range %d-%d: want 1 ≤ first ≤ last ≤ %d", ErrMalformed, r.First, r.Last, uint64(MaxSeq))
		}
	}
	return &a, nil
}
