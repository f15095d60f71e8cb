package agent_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/edgewarden/edgewarden/agent"
	"github.com/edgewarden/edgewarden/protocol"
)

// The sideload guard runs inside the agent: a file dropped into the apps
// directory is quarantined and its security events reach the broker
// through the outbox; with the ban lifted by a document, a local app is
// reported as sideloaded in status.
func TestAgentSideloadGuard(t *testing.T) {
	e := newEnv(t)
	e.start()
	apps := agent.AppsDir(e.stateDir)
	e.publishDesired(e.sign(e.doc(1, "line-1"))) // ban on (the default)
	waitFor(t, "status with revision 1", func() bool { s := e.lastStatus(); return s != nil && s.AppliedRevision == 1 })
	waitFor(t, "apps directory", func() bool { _, err := os.Stat(apps); return err == nil })

	if err := os.WriteFile(filepath.Join(apps, "dropper"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "sideload_blocked and quarantined events delivered", func() bool {
		var blocked, quarantined bool
		for _, ev := range e.events() {
			if ev.Details["app"] == "dropper" && ev.Severity == "security" {
				blocked = blocked || ev.Kind == "sideload_blocked"
				quarantined = quarantined || ev.Kind == "quarantined"
			}
		}
		return blocked && quarantined
	})
	if _, err := os.Lstat(filepath.Join(apps, "dropper")); !os.IsNotExist(err) {
		t.Fatalf("dropper still in the apps directory: %v", err)
	}
	if q, _ := filepath.Glob(filepath.Join(filepath.Dir(apps), "quarantine", "*-dropper")); len(q) != 1 {
		t.Fatalf("quarantine holds %v", q)
	}

	d := e.doc(2, "line-1")
	d.Sideload = protocol.SideloadPolicy{Allowed: true}
	e.publishDesired(e.sign(d))
	waitFor(t, "status with revision 2", func() bool { return e.lastStatus().AppliedRevision == 2 })
	os.MkdirAll(filepath.Join(apps, "local-tool"), 0o755)
	waitFor(t, "local-tool reported as sideloaded", func() bool {
		for _, a := range e.lastStatus().Apps {
			if a.Name == "local-tool" && a.Sideloaded {
				return true
			}
		}
		return false
	})
}
