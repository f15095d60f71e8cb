package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A systemctl that never answers (a wedged systemd) must not wedge the
// agent: every command of the systemd driver ends at CommandTimeout with an
// error that says what hung. The hanging systemctl is a real process.
func TestSystemctlTimeout(t *testing.T) {
	bin := t.TempDir()
	script := "#!/bin/sh\nsleep 600\n"
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	units := t.TempDir()
	d := NewSystemd(SystemdOptions{UnitDir: units, CommandTimeout: 200 * time.Millisecond})
	if err := os.WriteFile(d.UnitPath("web"), []byte("[Service]\n"), 0o644); err != nil { // an installed app
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Stop(context.Background(), "web") }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "systemctl stop edgewarden-app-web.service did not finish within 200ms") {
			t.Fatalf("Stop with a hanging systemctl: %v", err)
		}
	case <-time.After(time.Minute): // a bound on the test, not a measurement
		t.Fatal("Stop still waits on a hanging systemctl after a minute")
	}
}
