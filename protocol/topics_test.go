package protocol

import "testing"

func TestParseTopic(t *testing.T) {
	id, kind, err := ParseTopic(StatusTopic("dev-1"))
	if err != nil || id != "dev-1" || kind != KindStatus {
		t.Fatalf("ParseTopic(status) = %q %q %v", id, kind, err)
	}
	for _, bad := range []string{
		"edgewarden/v1/devices/dev-1",
		"edgewarden/v1/devices/dev-1/status/x",
		"edgewarden/v1/devices/+/status",
		"edgewarden/v1/devices/#",
		"edgewarden/v1/devices/DEV/status",
		"edgewarden/v1/devices/dev-1/secrets",
		"edgewarden/v1/devices/dev-1/ack/x",
		"other/dev-1/status",
		"edgewarden/v1/devices//status",
	} {
		if _, _, err := ParseTopic(bad); err == nil {
			t.Errorf("ParseTopic(%q) accepted", bad)
		}
	}
}

func TestValidateDeviceID(t *testing.T) {
	for _, ok := range []string{"a", "dev-1", "plc.line_3", "0abc"} {
		if err := ValidateDeviceID(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", "A", "a/b", "a+b", "a#", "edgewarden:controller", "../x", string(make([]byte, 64))} {
		if err := ValidateDeviceID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
