package test

import (
	"strings"
	"testing"
	"time"
)

// TestFleet is the first whole slice: three agents enroll, the admin moves
// devices between groups, nests groups and uses a label selector, and every
// change reaches every affected device as a verified, applied document.
func TestFleet(t *testing.T) {
	p := newPlant(t)
	p.mustCLI("groups", "create", "line-1")
	p.mustCLI("groups", "create", "line-2")
	token := p.enrollToken("--groups", "line-1", "--uses", "3", "--label-keys", "arch")
	p.mustEnroll("dev-1", token)
	p.mustEnroll("dev-2", token)
	p.mustEnroll("dev-3", token, "--label", "arch=arm64")
	for _, id := range []string{"dev-1", "dev-2", "dev-3"} {
		p.startAgent(id)
	}
	p.converged(map[string][]string{"dev-1": {"line-1"}, "dev-2": {"line-1"}, "dev-3": {"line-1"}})

	// Move dev-2 from line-1 to line-2.
	before := p.device("dev-2").AppliedRevision
	p.mustCLI("groups", "add", "line-2", "dev-2")
	p.mustCLI("groups", "remove", "line-1", "dev-2")
	p.converged(map[string][]string{"dev-1": {"line-1"}, "dev-2": {"line-2"}, "dev-3": {"line-1"}})
	if after := p.device("dev-2").AppliedRevision; after <= before {
		t.Fatalf("dev-2 applied revision %d after the move, was %d", after, before)
	}
	if got := p.agentStatus("dev-2"); got.AppliedRevision != p.device("dev-2").AppliedRevision || got.PolicyExpiresAt.Before(time.Now()) {
		t.Fatalf("agent status disagrees with the controller: %+v", got)
	}

	// Nested: plant includes line-1 and line-2, so every device is in plant.
	p.mustCLI("groups", "create", "plant")
	p.mustCLI("groups", "include", "plant", "line-1")
	p.mustCLI("groups", "include", "plant", "line-2")
	// Selector: arm devices.
	p.mustCLI("groups", "create", "arm", "--selector", "arch=arm64")
	p.converged(map[string][]string{
		"dev-1": {"line-1", "plant"},
		"dev-2": {"line-2", "plant"},
		"dev-3": {"arm", "line-1", "plant"},
	})

	// A label change moves a device into the selector group.
	p.mustCLI("devices", "label", "dev-1", "arch=arm64")
	p.converged(map[string][]string{"dev-1": {"arm", "line-1", "plant"}})

	// Bad input: each is refused with a clear message and changes nothing.
	rev := p.device("dev-1").DesiredRevision
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"groups", "include", "line-1", "plant"}, "cycle"},
		{[]string{"groups", "include", "plant", "plant"}, "itself"},
		{[]string{"groups", "add", "line-1", "no-such-device"}, "no-such-device"},
		{[]string{"groups", "add", "no-such-group", "dev-1"}, "no-such-group"},
		{[]string{"groups", "create", "Bad Name"}, "group name"},
		{[]string{"groups", "create", "line-1"}, "exists"},
	} {
		out, code := p.cli(bad.args...)
		if code != 1 || !strings.Contains(strings.ToLower(out), bad.want) {
			t.Errorf("edgewarden %s: exit %d, output %q; want exit 1 mentioning %q", strings.Join(bad.args, " "), code, out, bad.want)
		}
	}
	if got := p.device("dev-1").DesiredRevision; got != rev {
		t.Fatalf("refused commands changed dev-1's document: revision %d → %d", rev, got)
	}
	var g struct {
		Members []string `json:"members"`
	}
	p.cliJSON(&g, "groups", "show", "line-1")
	if strings.Join(g.Members, ",") != "dev-1,dev-3" {
		t.Fatalf("line-1 members after refused commands: %v", g.Members)
	}
}

// TestEnrollmentRefusals tries the ways enrollment must fail.
func TestEnrollmentRefusals(t *testing.T) {
	p := newPlant(t)
	single := p.enrollToken()
	p.mustEnroll("dev-a", single)

	cases := []struct {
		name, id, token string
		extra           []string
		want            string
	}{
		{"wrong token", "dev-b", "ewt_not-a-real-token", nil, "token"},
		{"reused single-use token", "dev-b", single, nil, "token"},
		{"someone else's id", "dev-a", p.enrollToken(), nil, "dev-a"},
		{"wrong CA fingerprint", "dev-c", p.enrollToken(), []string{"--ca-fingerprint", "sha256:" + strings.Repeat("00", 32)}, "fingerprint"},
	}
	for _, c := range cases {
		args := c.extra
		out, code := p.enroll(c.id, c.token, args...)
		if code != 1 || !strings.Contains(strings.ToLower(out), c.want) {
			t.Errorf("%s: exit %d, output %q; want exit 1 mentioning %q", c.name, code, out, c.want)
		}
	}
	var devs []device
	p.cliJSON(&devs, "devices", "ls")
	if len(devs) != 1 || devs[0].ID != "dev-a" {
		t.Fatalf("devices after refused enrollments: %+v", devs)
	}
}

// TestRestarts: an agent restart re-applies nothing; a controller killed with
// SIGKILL comes back with everything it had acknowledged.
func TestRestarts(t *testing.T) {
	p := newPlant(t)
	p.mustCLI("groups", "create", "line-1")
	token := p.enrollToken("--groups", "line-1", "--uses", "3")
	for _, id := range []string{"dev-1", "dev-2", "dev-3"} {
		p.mustEnroll(id, token)
		p.startAgent(id)
	}
	p.converged(map[string][]string{"dev-1": {"line-1"}, "dev-2": {"line-1"}, "dev-3": {"line-1"}})

	// Agent restart: the broker re-delivers the retained document, which is
	// the one already applied: no second apply, no rejection.
	rev := p.device("dev-1").AppliedRevision
	p.agents["dev-1"].stop(t)
	a := p.startAgent("dev-1")
	eventually(t, 20*time.Second, func() (bool, string) {
		return strings.Contains(a.logs.String(), "agent running"), "agent never logged running"
	})
	p.converged(map[string][]string{"dev-1": {"line-1"}})
	if strings.Contains(a.logs.String(), "msg=applied") {
		t.Fatalf("restarted agent applied its document again:\n%s", a.logs.String())
	}
	if d := p.device("dev-1"); d.AppliedRevision != rev || d.LastRejected != nil {
		t.Fatalf("after agent restart: applied %d (was %d), rejected %+v", d.AppliedRevision, rev, d.LastRejected)
	}

	// Controller kill -9 and restart on the same addresses.
	p.mustCLI("groups", "create", "line-2")
	p.mustCLI("groups", "add", "line-2", "dev-3")
	p.converged(map[string][]string{"dev-3": {"line-1", "line-2"}})
	p.ctl.kill()
	p.startController()
	p.converged(map[string][]string{"dev-1": {"line-1"}, "dev-2": {"line-1"}, "dev-3": {"line-1", "line-2"}})
	var groups []struct {
		Name string `json:"name"`
	}
	p.cliJSON(&groups, "groups", "ls")
	if len(groups) != 2 {
		t.Fatalf("groups after controller restart: %+v", groups)
	}
	// And it still pushes changes.
	p.mustCLI("groups", "remove", "line-1", "dev-1")
	p.converged(map[string][]string{"dev-1": {}})
}
