package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDeletedAndReinvitedUser: olga holds operator on line-1, a session
// and an operator token. She is deleted and a new olga is invited: before
// any grant she holds none of the old olga's rights (whoami, tokens ls,
// the device), then she is given the same grant. Old olga's session is refused by the controller
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
	// Before any grant, the new olga holds none of the old one's rights:
	// no grant, no token of hers, and her own token is denied on the device.
	var me struct {
		Name   string            `json:"name"`
		ID     string            `json:"id"`
		Grants []json.RawMessage `json:"grants"`
	}
	if out, code := run(t, nil, fresh.env(), bin.cli, "whoami", "-o", "json"); code != 0 || json.Unmarshal([]byte(out), &me) != nil {
		t.Fatalf("whoami as the new olga: exit %d: %s", code, out)
	}
	if me.Name != "olga" || me.ID == "" || len(me.Grants) != 0 {
		t.Fatalf("the new olga: %+v, want her own id and no grant", me)
	}
	if out, code := run(t, nil, fresh.env(), bin.cli, "tokens", "ls", "-o", "json"); code != 0 || strings.Contains(out, oldID) {
		t.Fatalf("tokens ls as the new olga shows the old olga's token %s (exit %d): %s", oldID, code, out)
	}
	if out, code := run(t, nil, fresh.env(), bin.cli, "tokens", "revoke", oldID); code != 1 {
		t.Fatalf("the new olga revoking the old olga's token: exit %d: %s", code, out)
	}
	newToken, _ := fresh.issueToken()
	p.waitLocal(socket, newToken, "device:app-operate", 3)
	p.waitLocal(socket, oldToken, "device:app-operate", 1)

	p.mustCLI("grants", "create", "--role", "operator", "--user", "olga", "--group", "line-1")
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

	// logout ends the session on the controller: a copy of the config
	// (someone who took the token) is refused from then on.
	stolen := filepath.Join(p.dir, "olga-stolen-cli.json")
	if b, err = os.ReadFile(fresh.config); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stolen, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := run(t, nil, fresh.env(), bin.cli, "logout"); code != 0 {
		t.Fatalf("logout: exit %d: %s", code, out)
	}
	if out, code := run(t, nil, []string{"EDGEWARDEN_CONFIG=" + stolen}, bin.cli, "devices", "ls"); code != 1 || !strings.Contains(out, "logged out") {
		t.Fatalf("a copy of the logged-out session: exit %d: %s", code, out)
	}
}
