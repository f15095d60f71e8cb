package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDeletedAndReinvitedUser: olga holds operator on line-1, a session
// and an operator token. She is deleted and a new olga is invited and
// given the same grant. Old olga's session is refused by the controller
// and her operator token by the device, although the name has every right
// the token would need; the new olga's token works.
func TestDeletedAndReinvitedUser(t *testing.T) {
	p := newPlant(t)
	p.mustCLI("groups", "create", "line-1")
	p.mustEnroll("press-1", p.enrollToken("--groups", "line-1"))
	socket := p.startAgentWithSocket("press-1")
	p.converged(map[string][]string{"press-1": {"line-1"}})

	old := p.newUser("olga")
	p.mustCLI("grants", "create", "--role", "operator", "--user", "olga", "--group", "line-1")
	oldToken, oldID := old.issueToken()
	p.waitLocal(socket, oldToken, "device:app-operate", 0)
	// Keep old olga's CLI session: newUser writes the new one in its place.
	oldConfig := filepath.Join(p.dir, "olga-old-cli.json")
	b, err := os.ReadFile(old.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(oldConfig, b, 0o600); err != nil {
		t.Fatal(err)
	}

	p.mustCLI("users", "delete", "olga")
	fresh := p.newUser("olga")
	p.mustCLI("grants", "create", "--role", "operator", "--user", "olga", "--group", "line-1")
	newToken, _ := fresh.issueToken()
	p.waitLocal(socket, newToken, "device:app-operate", 0)

	out, code := run(t, nil, []string{"EDGEWARDEN_CONFIG=" + oldConfig}, bin.cli, "devices", "ls")
	if code == 0 || !strings.Contains(out, "no longer exists") {
		t.Fatalf("old olga's session after delete and re-invite: exit %d: %s", code, out)
	}
	// The document in force grants "olga" operator: only the revocation
	// keeps the old token out.
	eventually(t, 30*time.Second, func() (bool, string) {
		out, code := p.local(socket, oldToken, "authorize", "device:app-operate")
		return code == 1 && strings.Contains(out, "revoked"), fmt.Sprintf("old olga's token %s: exit %d: %s", oldID, code, out)
	})
	p.waitLocal(socket, newToken, "device:app-operate", 0)
}
