package buildinfo

import (
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	if got := Version("1.4.2"); got != "1.4.2" {
		t.Errorf("stamped version replaced: %q", got)
	}
	if got := Version("dev"); got == "" {
		t.Error("no version for an unstamped build")
	}
	line := Line("edgewarden-agent", "1.4.2")
	if !strings.HasPrefix(line, "edgewarden-agent 1.4.2 (document schema ") || !strings.Contains(line, "go1.") {
		t.Errorf("Line = %q", line)
	}
}
