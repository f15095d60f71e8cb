package test

import (
	"regexp"
	"strings"
	"testing"
)

// TestRecoverAdmin: break-glass recovery refuses to run beside a running
// controller (the data directory's lock) and changes nothing then; with the
// controller stopped it creates an admin with a one-time password, and the
// controller's next start audits the recovery as security.
func TestRecoverAdmin(t *testing.T) {
	p := newPlant(t)
	out, code := run(t, nil, nil, bin.controller, "recover-admin", "--data", p.ctlDir, "--user", "rescuer")
	if code == 0 || !strings.Contains(out, "is running on") {
		t.Fatalf("recover-admin beside a running controller: exit %d: %s", code, out)
	}
	if users := p.mustCLI("users", "ls"); strings.Contains(users, "rescuer") {
		t.Fatalf("a refused recovery created the user:\n%s", users)
	}

	p.ctl.stop(t)
	out, code = run(t, nil, nil, bin.controller, "recover-admin", "--data", p.ctlDir, "--user", "rescuer")
	if code != 0 {
		t.Fatalf("recover-admin: exit %d: %s", code, out)
	}
	m := regexp.MustCompile(`password \(shown once[^)]*\): (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("recover-admin printed no password:\n%s", out)
	}
	p.startController()
	p.login("rescuer", m[1])
	if got := p.mustCLI("users", "ls"); !strings.Contains(got, "rescuer") {
		t.Fatalf("rescuer is not listed:\n%s", got)
	}
	var audit []struct {
		Action, Kind, Target, Actor string
	}
	p.cliJSON(&audit, "audit", "ls", "--kind", "security")
	seen := map[string]bool{}
	for _, e := range audit {
		if e.Target == "rescuer" && e.Kind == "security" {
			seen[e.Action] = true
		}
	}
	if !seen["user.recover-admin"] || !seen["controller.admin-recovered"] {
		t.Fatalf("security audit lacks the recovery and its notice at start: %+v", audit)
	}
	// The notice is written once, not at every start.
	p.ctl.stop(t)
	p.startController()
	p.cliJSON(&audit, "audit", "ls", "--kind", "security")
	n := 0
	for _, e := range audit {
		if e.Action == "controller.admin-recovered" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d admin-recovered notices after two starts, want 1", n)
	}
}
