package agent_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/edgewarden/edgewarden/test/fulldisk"
)

// onTmpfs moves the env's state directory onto a tmpfs of size, so that
// the test can fill it. It skips, loudly, if the mount is refused.
func (e *env) onTmpfs(size string) {
	t := e.t
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	fulldisk.Mount(t, dir, size)
	ents, err := os.ReadDir(e.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		b, err := os.ReadFile(filepath.Join(e.stateDir, ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ent.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e.stateDir = dir
}

// While the state directory is full the status report says so, with the
// path; a document that arrives meanwhile cannot be stored, and is applied
// as soon as space returns, on the same connection (no reconnect, no
// redelivery by the broker).
func TestFullDiskStatusAndLateDocument(t *testing.T) {
	e := newEnv(t)
	e.onTmpfs("8m")
	a := e.start()
	e.publishDesired(e.sign(e.doc(1, "line-1")))
	waitFor(t, "revision 1 in force", func() bool { return revision(a.Agent) == 1 })

	filler := filepath.Join(e.stateDir, "filler")
	fulldisk.Fill(t, filler)
	waitFor(t, "a status report with disk_full", func() bool {
		s := e.lastStatus()
		return s != nil && s.DiskFull != nil
	})
	if d := e.lastStatus().DiskFull; d.Path != e.stateDir || d.Since.IsZero() {
		t.Fatalf("status disk_full = %+v, want path %s and a time", d, e.stateDir)
	}

	e.publishDesired(e.sign(e.doc(2, "line-2")))
	waitFor(t, "the document refused for lack of space", func() bool {
		return len(a.logs.records("could not handle desired state; it will be retried")) > 0
	})
	if r := revision(a.Agent); r != 1 {
		t.Fatalf("revision %d in force on a full disk, want 1 (nothing could be stored)", r)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", a.logs.buf.String())
		}
	}()
	waitFor(t, "revision 2 applied once space returned", func() bool { return revision(a.Agent) == 2 })
	waitFor(t, "a status report of revision 2 without disk_full", func() bool {
		s := e.lastStatus()
		return s != nil && s.AppliedRevision == 2 && s.DiskFull == nil
	})
	if n, m := len(a.logs.records("reconnected")), len(a.logs.records("agent running")); n != 0 || m != 1 {
		t.Fatalf("the agent connected %d times and reconnected %d times to get the document, want one connection", m, n)
	}
	if n := len(a.logs.records("applied")); n != 2 {
		t.Fatalf("%d documents applied, want 2 (each once)", n)
	}
}
