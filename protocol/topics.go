package protocol

import (
	"fmt"
	"regexp"
	"strings"
)

// TopicRoot is the prefix of every Edgewarden topic. The version segment
// changes only with an incompatible wire change.
const TopicRoot = "edgewarden/v1/devices/"

// Topic kinds: the last segment of a device topic.
const (
	KindDesired  = "desired"  // controller → agent, QoS 1, retained: signed envelope of DesiredState
	KindStatus   = "status"   // agent → controller, QoS 1, retained: StatusReport
	KindEvents   = "events"   // agent → controller, QoS 1: EventBatch
	KindPresence = "presence" // agent → controller, QoS 1, retained, last will = offline: Presence
	KindAck      = "ack"      // controller → agent, QoS 1, not retained: Ack, after the controller stored events or status
)

// QoS is the MQTT quality of service used for every Edgewarden message.
const QoS = 1

// DesiredTopic is where the controller publishes the device's signed document.
func DesiredTopic(deviceID string) string { return TopicRoot + deviceID + "/" + KindDesired }

// StatusTopic is where the device publishes its StatusReport.
func StatusTopic(deviceID string) string { return TopicRoot + deviceID + "/" + KindStatus }

// EventsTopic is where the device publishes EventBatches.
func EventsTopic(deviceID string) string { return TopicRoot + deviceID + "/" + KindEvents }

// PresenceTopic is where the device publishes Presence (and its last will).
func PresenceTopic(deviceID string) string { return TopicRoot + deviceID + "/" + KindPresence }

// AckTopic is where the controller acknowledges what it stored from the
// device. Only the controller may publish there; only the device may read it.
func AckTopic(deviceID string) string { return TopicRoot + deviceID + "/" + KindAck }

// AllDevices returns the wildcard filter the controller subscribes to for
// one kind of device-published message, e.g. "edgewarden/v1/devices/+/status".
func AllDevices(kind string) string { return TopicRoot + "+/" + kind }

// ParseTopic splits a device topic into its device id and kind. It returns an
// error for anything that is not exactly TopicRoot + id + "/" + kind with a
// valid id and a known kind.
func ParseTopic(topic string) (deviceID, kind string, err error) {
	rest, ok := strings.CutPrefix(topic, TopicRoot)
	if !ok {
		return "", "", fmt.Errorf("topic %q is not under %s", topic, TopicRoot)
	}
	deviceID, kind, ok = strings.Cut(rest, "/")
	if !ok || strings.Contains(kind, "/") {
		return "", "", fmt.Errorf("topic %q: want %s{device}/{kind}", topic, TopicRoot)
	}
	if err := ValidateDeviceID(deviceID); err != nil {
		return "", "", fmt.Errorf("topic %q: %w", topic, err)
	}
	switch kind {
	case KindDesired, KindStatus, KindEvents, KindPresence, KindAck:
		return deviceID, kind, nil
	}
	return "", "", fmt.Errorf("topic %q: unknown kind %q", topic, kind)
}

var deviceIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidateDeviceID reports whether id can name a device. Device ids appear in
// topics, certificate common names and file names, so they are restricted to
// lower-case letters, digits, '.', '_' and '-', at most 63 characters, and
// never contain MQTT wildcards or path separators.
func ValidateDeviceID(id string) error {
	if !deviceIDPattern.MatchString(id) {
		return fmt.Errorf("invalid device id %q: use 1-63 characters a-z, 0-9, '.', '_' or '-', starting with a letter or digit", id)
	}
	return nil
}
