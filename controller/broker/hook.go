package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgewarden/edgewarden/controller/pki"
	"github.com/edgewarden/edgewarden/protocol"
)

// hook enforces identity and the ACL and hands device messages to Ingest.
type hook struct {
	mqtt.HookBase
	b *Broker
}

func (h *hook) ID() string { return "edgewarden-access" }

func (h *hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnWill, mqtt.OnDisconnect, mqtt.OnQosPublish:
		return true
	}
	return false
}

// peerIdentity returns the common name of the verified client certificate
// on conn.
func peerIdentity(conn any) (string, error) {
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return "", errors.New("not a TLS connection")
	}
	st := tc.ConnectionState()
	if !st.HandshakeComplete || len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return "", errors.New("no verified client certificate")
	}
	cn := st.VerifiedChains[0][0].Subject.CommonName
	if cn == "" {
		return "", errors.New("client certificate has no common name")
	}
	return cn, nil
}

// identity is who the client is, as established in OnConnect: mochi keeps
// it in the username field, which OnConnect overwrites with the certificate
// name (whatever the client sent as username is ignored).
func identity(cl *mqtt.Client) string { return string(cl.Properties.Username) }

func isController(id string) bool { return id == pki.ControllerIdentity }

// OnConnect decides whether a connection may proceed: the identity is the
// certificate's CN, a device must use its id as client id, may not be
// refused by AllowDevice, and may register only its own presence topic as
// last will. A refused client gets CONNACK "not authorized".
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	id, err := h.admit(cl, pk)
	if err != nil {
		h.b.log.Warn("mqtt connection refused", "remote", cl.Net.Remote, "client_id", cl.ID, "reason", err.Error())
		code := packets.ErrNotAuthorized
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.ErrBadUsernameOrPassword // mochi maps it to 3.1.1's "not authorized" (5)
		}
		_ = h.b.srv.SendConnack(cl, code, false, nil)
		return code
	}
	cl.Properties.Username = []byte(id)
	if !isController(id) {
		h.b.mu.Lock()
		h.b.current[id] = cl
		h.b.mu.Unlock()
	}
	return nil
}

func (h *hook) admit(cl *mqtt.Client, pk packets.Packet) (string, error) {
	if cl.Net.Inline {
		return "", errors.New("inline client cannot connect")
	}
	id, err := peerIdentity(cl.Net.Conn)
	if err != nil {
		return "", err
	}
	if isController(id) {
		if !strings.HasPrefix(cl.ID, pki.ControllerIdentity) {
			return "", fmt.Errorf("controller certificate with client id %q: the client id must start with %q", cl.ID, pki.ControllerIdentity)
		}
		return id, nil
	}
	if err := protocol.ValidateDeviceID(id); err != nil {
		return "", fmt.Errorf("certificate common name: %w", err)
	}
	if cl.ID != id {
		return "", fmt.Errorf("device %q connected with client id %q: the client id must be the device id", id, cl.ID)
	}
	if allow := h.b.opts.AllowDevice; allow != nil && !allow(id) {
		return "", fmt.Errorf("device %q is not allowed to connect (deleted or unknown)", id)
	}
	if pk.Connect.WillFlag {
		if want := protocol.PresenceTopic(id); pk.Connect.WillTopic != want {
			return "", fmt.Errorf("device %q registered last will on %q: only %q is allowed", id, pk.Connect.WillTopic, want)
		}
		if len(pk.Connect.WillPayload) > protocol.MaxPresenceBytes {
			return "", fmt.Errorf("device %q: last will is %d bytes, limit %d", id, len(pk.Connect.WillPayload), protocol.MaxPresenceBytes)
		}
	}
	return id, nil
}

// OnConnectAuthenticate accepts only connections OnConnect admitted and
// whose certificate still names the identity it recorded.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	id, err := peerIdentity(cl.Net.Conn)
	return err == nil && id == identity(cl)
}

// OnACLCheck is the per-device rule. For a subscription, topic is the
// filter, so wildcards never equal the device's own desired or ack topic.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	return allowed(identity(cl), topic, write)
}

func allowed(id, topic string, write bool) bool {
	if isController(id) {
		return true
	}
	if protocol.ValidateDeviceID(id) != nil {
		return false
	}
	if !write {
		// Its signed document, and the controller's acknowledgements of
		// what it stored. A device never writes either.
		return topic == protocol.DesiredTopic(id) || topic == protocol.AckTopic(id)
	}
	switch topic {
	case protocol.StatusTopic(id), protocol.EventsTopic(id), protocol.PresenceTopic(id):
		return true
	}
	return false
}

// maxPayload is the limit per device-published kind.
func maxPayload(kind string) int {
	switch kind {
	case protocol.KindStatus:
		return protocol.MaxStatusBytes
	case protocol.KindEvents:
		return protocol.MaxEventsBytes
	case protocol.KindPresence:
		return protocol.MaxPresenceBytes
	}
	return 0
}

// OnPublish runs before mochi acknowledges, retains or forwards a publish.
// A device message is stored through Ingest first; if that fails the packet
// is rejected and the connection closed, so the device will send it again.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	id := identity(cl)
	if isController(id) {
		return pk, nil
	}
	deviceID, kind, err := protocol.ParseTopic(pk.TopicName)
	if err == nil && (deviceID != id || !allowed(id, pk.TopicName, true)) {
		err = fmt.Errorf("not its own topic")
	}
	if err == nil && len(pk.Payload) > maxPayload(kind) {
		err = fmt.Errorf("%s message is %d bytes, limit %d", kind, len(pk.Payload), maxPayload(kind))
	}
	if err != nil {
		h.b.log.Warn("mqtt publish refused; disconnecting device", "device", id, "topic", pk.TopicName, "reason", err.Error())
		cl.Stop(packets.ErrNotAuthorized)
		return pk, packets.ErrRejectPacket
	}

	ctx, cancel := context.WithTimeout(h.b.ctx, h.b.opts.IngestTimeout)
	err = h.b.opts.Ingest(ctx, id, kind, pk.Payload)
	cancel()
	if err != nil {
		h.b.log.Warn("storing device message failed; not acknowledging it and disconnecting the device so it sends it again",
			"device", id, "kind", kind, "error", err)
		cl.Stop(fmt.Errorf("ingest %s from %s: %w", kind, id, err))
		return pk, packets.ErrRejectPacket
	}
	// Stored by Ingest: the broker keeps no retained copy of device
	// reports (status, presence). No one but the controller reads them, and
	// at 10k devices the copies cost memory and mochi's periodic scan of
	// retained messages (test/loadgen profiles).
	pk.FixedHeader.Retain = false
	return pk, nil
}

// OnWill stores a device's last will (presence offline) when mochi is about
// to publish it. It is skipped when the connection was superseded by a newer
// one of the same device (session take-over) or the broker is shutting down:
// in both cases the device is not offline. A failure is logged; the will is
// still published.
func (h *hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	id := identity(cl)
	if isController(id) || protocol.ValidateDeviceID(id) != nil || will.TopicName != protocol.PresenceTopic(id) {
		return will, nil
	}
	if h.b.ctx.Err() != nil {
		return will, nil
	}
	h.b.mu.Lock()
	superseded := h.b.current[id] != cl
	h.b.mu.Unlock()
	if superseded {
		h.b.log.Debug("last will of a superseded connection not stored", "device", id)
		return will, nil
	}
	ctx, cancel := context.WithTimeout(h.b.ctx, h.b.opts.IngestTimeout)
	defer cancel()
	if err := h.b.opts.Ingest(ctx, id, protocol.KindPresence, will.Payload); err != nil {
		h.b.log.Error("storing device last will failed", "device", id, "error", err)
	}
	return will, nil
}

// OnDisconnect forgets the connection as the device's current one.
func (h *hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	id := identity(cl)
	h.b.mu.Lock()
	if h.b.current[id] == cl {
		delete(h.b.current, id)
	}
	h.b.mu.Unlock()
}

// OnQosPublish keeps at most one desired document queued for an offline
// device: each document replaces the whole previous one, so when a new one
// is queued for a disconnected persistent session, older queued ones are
// dropped. Without this an offline device would hold every revision
// published while it was away (up to MaxInflight documents each).
func (h *hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Dup || cl.Net.Inline || !cl.Closed() {
		return
	}
	id := identity(cl)
	if isController(id) || pk.TopicName != protocol.DesiredTopic(id) {
		return
	}
	for _, old := range cl.State.Inflight.GetAll(false) {
		if old.FixedHeader.Type != packets.Publish || old.TopicName != pk.TopicName || old.PacketID == pk.PacketID {
			continue
		}
		if cl.State.Inflight.Delete(old.PacketID) {
			cl.State.Inflight.IncreaseSendQuota()
			atomic.AddInt64(&h.b.srv.Info.Inflight, -1)
		}
	}
}
