package test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRestoreFromOlderBackup: a controller restored from a backup older than
// what its devices applied catches up by itself (no admin action): it
// issues revisions above what each device reports, and until then does not
// count the device as in sync.
func TestRestoreFromOlderBackup(t *testing.T) {
	p := newPlant(t)
	p.mustCLI("groups", "create", "line-1")
	token := p.enrollToken("--groups", "line-1")
	p.mustEnroll("dev-1", token)
	p.startAgent("dev-1")
	p.converged(map[string][]string{"dev-1": {"line-1"}})

	// Back up the stopped controller, then move on past the backup.
	p.ctl.stop(t)
	backup := p.dir + "/ctl-backup"
	if out, err := exec.Command("cp", "-a", p.ctlDir, backup).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v %s", err, out)
	}
	p.startController()
	for _, g := range []string{"line-2", "line-3"} {
		p.mustCLI("groups", "create", g)
		p.mustCLI("groups", "add", g, "dev-1")
	}
	p.converged(map[string][]string{"dev-1": {"line-1", "line-2", "line-3"}})
	ahead := p.device("dev-1").AppliedRevision

	// Restore the older backup.
	p.ctl.stop(t)
	if out, err := exec.Command("sh", "-c", `rm -rf "$1" && cp -a "$2" "$1"`, "sh", p.ctlDir, backup).CombinedOutput(); err != nil {
		t.Fatalf("restore: %v %s", err, out)
	}
	p.startController()
	// The restored database still says dev-1 applied the backup's revision;
	// wait for the device itself to report one above what it ran.
	eventually(t, 30*time.Second, func() (bool, string) {
		d := p.device("dev-1")
		return d.AppliedRevision > ahead && d.AppliedRevision == d.DesiredRevision && strings.Join(d.Groups, ",") == "line-1",
			fmt.Sprintf("desired %d applied %d (ran %d before the restore), groups %v", d.DesiredRevision, d.AppliedRevision, ahead, d.Groups)
	})
}
