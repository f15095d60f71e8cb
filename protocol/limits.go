package protocol

// Size limits on everything that comes off the wire. A message over its limit
// is rejected before it is parsed. The broker is configured with
// MaxMessageBytes so that nothing larger is ever delivered.
const (
	// MaxEnvelopeBytes bounds a signed desired-state envelope (the document
	// carries manifests and keys, so it is the largest message).
	MaxEnvelopeBytes = 4 << 20
	// MaxStatusBytes bounds a StatusReport.
	MaxStatusBytes = 256 << 10
	// MaxEventsBytes bounds an EventBatch.
	MaxEventsBytes = 256 << 10
	// MaxPresenceBytes bounds a Presence message.
	MaxPresenceBytes = 1 << 10
	// MaxAckBytes bounds an Ack.
	MaxAckBytes = 1 << 10
	// MaxMessageBytes is the broker's limit: the largest of the above.
	MaxMessageBytes = MaxEnvelopeBytes

	// MaxSignatures bounds the signatures in one envelope.
	MaxSignatures = 4
	// MaxEventsPerBatch bounds the events in one EventBatch.
	MaxEventsPerBatch = 500
	// MaxAppsPerDevice bounds apps in a document or a status report.
	MaxAppsPerDevice = 256
)
