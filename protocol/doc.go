// Package protocol is the contract between the Edgewarden controller and its
// agents: MQTT topic names, the wire messages (DesiredState, StatusReport,
// EventBatch, Presence), their size limits and decoders, and the DSSE
// envelope that carries the signed desired state.
//
// It has no network and no database code. Both sides import it; it imports
// nothing from agent/ or controller/ (see imports_test.go). Sub-packages hold
// the rest of the shared contract: access (the permission catalogue and the
// grant evaluator) and manifest (the app manifest and its signature check).
//
// Where a desired-state document is verified: CheckDesired in desired.go.
//
// Wire messages are JSON. Decoders tolerate unknown fields, so a newer
// controller can add fields without breaking older agents; Schema only grows.
//
// Version history of the wire schema:
//
//	1 (2026-11-22) first version: desired, status, events, presence.
//	  (2026-12-02, additive, still 1) end-to-end acknowledgement: the ack
//	  topic (Ack) and the outbox range of an EventBatch (first, last);
//	  older readers ignore both. An agent that sends a range keeps the
//	  events until the controller acknowledges that range, so agents of
//	  this version need a controller of this version or newer.
//	  (2026-12-02, additive, still 1) StatusReport.disk_full: the agent's
//	  state directory is full; older readers ignore it.
package protocol

// Schema is the version of the wire messages this code writes. Readers accept
// any message whose schema is between 1 and Schema; a message from a newer
// schema is still decoded (unknown fields are ignored) but reported.
const Schema = 1
