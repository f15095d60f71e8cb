package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSigningKeyRotation walks the documented rotation: announce the next
// key, promote it, retire the previous one. dev-1 runs throughout; dev-2 is
// stopped during the announcement and catches up after promotion thanks to
// the previous key's co-signature. Once the previous key is deleted,
// documents carry the new key's signature alone, and both devices still
// converge: both trust it.
func TestSigningKeyRotation(t *testing.T) {
	p := newPlant(t)
	p.mustCLI("groups", "create", "line-1")
	token := p.enrollToken("--groups", "line-1", "--uses", "2")
	p.mustEnroll("dev-1", token)
	p.mustEnroll("dev-2", token)
	p.startAgent("dev-1")
	p.startAgent("dev-2")
	p.converged(map[string][]string{"dev-1": {"line-1"}, "dev-2": {"line-1"}})
	p.agents["dev-2"].stop(t)
	before := p.device("dev-1").AppliedRevision

	// Promote without a next key: refused.
	rotate := func(args ...string) (string, int) {
		return run(t, nil, nil, bin.controller, append([]string{"rotate-signing-key", "--data", p.ctlDir}, args...)...)
	}
	if out, code := rotate("--promote"); code != 1 || !strings.Contains(out, "rotate-signing-key") {
		t.Fatalf("promote without a next key: exit %d: %s", code, out)
	}
	if out, code := rotate("--bogus"); code != 2 {
		t.Fatalf("unknown flag: exit %d: %s", code, out)
	}

	// Announce.
	out, code := rotate()
	if code != 0 || !strings.Contains(out, "next signing key") || !strings.Contains(out, "--promote") {
		t.Fatalf("rotate-signing-key: exit %d: %s", code, out)
	}
	if out, code := rotate(); code != 1 || !strings.Contains(out, "already exists") {
		t.Fatalf("second rotate-signing-key: exit %d: %s", code, out)
	}
	p.ctl.stop(t)
	p.startController()
	eventually(t, 30*time.Second, func() (bool, string) {
		d := p.device("dev-1")
		return d.Online && d.AppliedRevision > before && d.AppliedRevision == d.DesiredRevision,
			fmt.Sprintf("dev-1 desired %d applied %d (before the announcement %d)", d.DesiredRevision, d.AppliedRevision, before)
	})

	// Promote, with the controller stopped.
	p.ctl.stop(t)
	if out, code := rotate("--promote"); code != 0 || !strings.Contains(out, "promoted") {
		t.Fatalf("rotate-signing-key --promote: exit %d: %s", code, out)
	}
	p.startController()
	p.mustCLI("groups", "create", "line-2")
	p.mustCLI("groups", "add", "line-2", "dev-1", "dev-2")
	p.converged(map[string][]string{"dev-1": {"line-1", "line-2"}})

	// dev-2 never saw the announcement: it trusts only the old key, which
	// co-signs.
	p.startAgent("dev-2")
	p.converged(map[string][]string{"dev-1": {"line-1", "line-2"}, "dev-2": {"line-1", "line-2"}})

	// Retire the previous key: documents are signed by the new key alone.
	p.ctl.stop(t)
	if err := os.Remove(filepath.Join(p.ctlDir, "signing.prev.key")); err != nil {
		t.Fatal(err)
	}
	p.startController()
	p.mustCLI("groups", "create", "line-3")
	p.mustCLI("groups", "add", "line-3", "dev-1", "dev-2")
	want := []string{"line-1", "line-2", "line-3"}
	p.converged(map[string][]string{"dev-1": want, "dev-2": want})
	for _, id := range []string{"dev-1", "dev-2"} {
		if d := p.device(id); d.LastRejected != nil {
			t.Errorf("%s rejected a document during the rotation: %+v", id, *d.LastRejected)
		}
	}
}
