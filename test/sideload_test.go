package test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sideloadPackage writes a local package (a tar.gz of manifest.json and the
// files it lists, unsigned) of a process app whose script records its pid
// in its data directory and runs until stopped; it returns its path.
func sideloadPackage(t *testing.T, dir, name, version string) string {
	t.Helper()
	script := []byte("#!/bin/sh\necho $$ > \"$EDGEWARDEN_DATA_DIR/pid\"\nexec sleep 1000\n")
	m := map[string]any{
		"name": name, "version": version, "publisher": "local", "runtime": "process",
		"exec":      map[string]any{"command": "bin/run.sh"},
		"artifacts": []map[string]any{{"path": "bin/run.sh", "sha256": fmt.Sprintf("%x", sha256.Sum256(script)), "size": len(script), "mode": 0o755}},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range []struct {
		name string
		body []byte
	}{{"manifest.json", raw}, {"bin/run.sh", script}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.body))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(f.body)
	}
	tw.Close()
	gz.Close()
	p := filepath.Join(dir, name+"-"+version+".tar.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// auditRecord is the part of `audit ls -o json` (and a --siem-log line)
// the test reads.
type auditRecord struct {
	Origin   string            `json:"origin"`
	Kind     string            `json:"kind"`
	Actor    string            `json:"actor"`
	Action   string            `json:"action"`
	Target   string            `json:"target"`
	Detail   string            `json:"detail"`
	DeviceID string            `json:"device_id"`
	Details  map[string]string `json:"details"`
}

// hasRecord reports whether rs holds a record of origin and action about
// target ("" matches any), and says what it saw otherwise.
func hasRecord(rs []auditRecord, origin, action, target string) (bool, string) {
	var seen []string
	for _, r := range rs {
		if r.Origin == origin && r.Action == action && (target == "" || r.Target == target) {
			return true, ""
		}
		seen = append(seen, r.Origin+"/"+r.Action+"/"+r.Target)
	}
	return false, fmt.Sprintf("no %s %s on %q in %v", origin, action, target, seen)
}

// securityAudit runs `audit ls --kind security -o json`.
func (p *plant) securityAudit() []auditRecord {
	p.t.Helper()
	var rs []auditRecord
	p.cliJSON(&rs, "audit", "ls", "--kind", "security")
	return rs
}

// quarantined lists the entries of the agent's quarantine directory.
func quarantined(t *testing.T, appsDir string) []string {
	t.Helper()
	es, _ := os.ReadDir(filepath.Join(filepath.Dir(appsDir), "quarantine"))
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func pidAlive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && strings.Fields(string(b[i+1:]))[0] != "Z"
}

// TestSideloadBan: a fresh controller bans sideloading. A local install is
// refused with the command that lifts the ban; a directory dropped into
// the apps directory is quarantined and reported (audit ls, status, the
// SIEM log). A user with device:sideload on the device's group lifts the
// ban for that group only (not for another group, not globally); the
// device's document allows it; a local package installs, runs and is
// reported sideloaded and audited. Banning it again stops, quarantines
// and reports it.
func TestSideloadBan(t *testing.T) {
	var siemLog string
	p := newPlantWith(t, func(p *plant) []string {
		siemLog = filepath.Join(p.dir, "siem", "security.jsonl")
		return []string{"--siem-log", siemLog}
	})
	p.mustCLI("groups", "create", "line-1")
	p.mustCLI("groups", "create", "line-2")
	p.mustEnroll("press-1", p.enrollToken("--groups", "line-1"))
	socket := p.startAgentWithSocket("press-1")
	p.converged(map[string][]string{"press-1": {"line-1"}})
	appsDir := p.agentStatus("press-1").AppsDir

	var settings struct {
		Sideload  string `json:"sideload"`
		Overrides []struct {
			Group  string `json:"group"`
			Policy string `json:"policy"`
			SetBy  string `json:"set_by"`
		} `json:"sideload_overrides"`
	}
	p.cliJSON(&settings, "settings", "show")
	if settings.Sideload != "deny" || len(settings.Overrides) != 0 {
		t.Fatalf("a fresh controller: %+v, want sideloading banned", settings)
	}

	// sam may sideload on line-1's devices, nothing else.
	p.mustCLI("roles", "create", "sideloader", "--actions", "device:view,device:sideload,device:app-operate")
	sam := p.newUser("sam")
	p.mustCLI("grants", "create", "--role", "sideloader", "--user", "sam", "--group", "line-1")
	token, _ := sam.issueToken()
	p.waitLocal(socket, token, "device:sideload", 0)

	// Banned: the install is refused with the command that lifts it.
	pkg := sideloadPackage(t, p.dir, "tool", "0.1.0")
	out, code := p.local(socket, token, "apps", "install", pkg)
	if code == 0 || !strings.Contains(out, "ban is on") || !strings.Contains(out, "edgewarden settings sideload allow --group line-1") {
		t.Fatalf("install while banned: exit %d: %s", code, out)
	}

	// Something dropped into the apps directory is quarantined, kept and
	// reported.
	dropped := filepath.Join(appsDir, "dropped")
	if err := os.MkdirAll(filepath.Join(dropped, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dropped, "bin", "miner"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		_, err := os.Stat(dropped)
		q := quarantined(t, appsDir)
		return os.IsNotExist(err) && len(q) == 1 && strings.HasSuffix(q[0], "-dropped"), fmt.Sprintf("dropped dir: %v, quarantine %v", err, q)
	})
	eventually(t, 30*time.Second, func() (bool, string) {
		rs := p.securityAudit()
		if ok, msg := hasRecord(rs, "device", "sideload_blocked", "dropped"); !ok {
			return false, msg
		}
		return hasRecord(rs, "device", "quarantined", "dropped")
	})
	var st struct {
		SecurityEvents int `json:"security_events_24h"`
		Recent         []struct {
			DeviceID string `json:"device_id"`
			Kind     string `json:"kind"`
		} `json:"recent_security_events"`
	}
	p.cliJSON(&st, "status")
	if st.SecurityEvents < 2 || len(st.Recent) == 0 || st.Recent[0].DeviceID != "press-1" {
		t.Fatalf("status: %+v", st)
	}
	if out := p.mustCLI("status"); !strings.Contains(out, "Security events (24h):") || !strings.Contains(out, "quarantined") {
		t.Fatalf("status table:\n%s", out)
	}

	// sam cannot lift the ban elsewhere or globally; nothing changes.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"settings", "sideload", "allow", "--group", "line-2"}, "device:sideload"},
		{[]string{"settings", "sideload", "allow"}, "controller:settings"},
		{[]string{"settings", "sideload", "inherit", "--group", "line-2"}, "device:sideload"},
	} {
		out, code := run(t, nil, sam.env(), bin.cli, tc.args...)
		if code != 1 || !strings.Contains(out, tc.want) {
			t.Fatalf("sam: %s: exit %d: %s", strings.Join(tc.args, " "), code, out)
		}
	}
	p.cliJSON(&settings, "settings", "show")
	if settings.Sideload != "deny" || len(settings.Overrides) != 0 {
		t.Fatalf("settings after refused changes: %+v", settings)
	}

	// sam lifts it for line-1.
	if out, code := run(t, nil, sam.env(), bin.cli, "settings", "sideload", "allow", "--group", "line-1"); code != 0 {
		t.Fatalf("sam: allow on line-1: exit %d: %s", code, out)
	}
	p.cliJSON(&settings, "settings", "show")
	if settings.Sideload != "deny" || len(settings.Overrides) != 1 || settings.Overrides[0].Group != "line-1" ||
		settings.Overrides[0].Policy != "allow" || settings.Overrides[0].SetBy != "sam" {
		t.Fatalf("settings after the override: %+v", settings)
	}
	if out := p.mustCLI("settings", "show"); !strings.Contains(out, "allow for group line-1") {
		t.Fatalf("settings show:\n%s", out)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		out, code := p.local(socket, token, "status", "-o", "json")
		var ls struct {
			SideloadAllowed bool `json:"sideload_allowed"`
		}
		json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &ls)
		return code == 0 && ls.SideloadAllowed, "the device's document does not allow sideloading yet: " + out
	})

	// The local package installs, runs, and is reported sideloaded.
	out, code = p.local(socket, token, "apps", "install", pkg)
	if code != 0 || !strings.Contains(out, "sideloaded") {
		t.Fatalf("install with the ban lifted: exit %d: %s", code, out)
	}
	pidFile := filepath.Join(p.stateDir("press-1"), "appdata", "tool", "pid")
	var pid int
	eventually(t, 30*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		var d struct {
			Apps []struct {
				Name       string `json:"name"`
				State      string `json:"state"`
				Sideloaded bool   `json:"sideloaded"`
			} `json:"apps"`
		}
		p.cliJSON(&d, "devices", "show", "press-1")
		for _, a := range d.Apps {
			if a.Name == "tool" && a.State == "running" && a.Sideloaded && pidAlive(pid) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("devices show apps %+v, pid %d", d.Apps, pid)
	})
	eventually(t, 30*time.Second, func() (bool, string) {
		rs := p.securityAudit()
		for _, r := range rs {
			if r.Origin == "device" && r.Action == "sideload_installed" && r.Details["user"] == "sam" && r.Details["app"] == "tool" {
				return hasRecord(rs, "audit", "settings.sideload", "device-group:line-1")
			}
		}
		return false, "no sideload_installed by sam in the audit"
	})
	// The guard leaves it alone while sideloading is allowed.
	if q := quarantined(t, appsDir); len(q) != 1 {
		t.Fatalf("quarantine %v: the sideloaded app was quarantined while allowed", q)
	}

	// Banned again for line-1: stopped, quarantined, reported.
	if out, code := run(t, nil, sam.env(), bin.cli, "settings", "sideload", "deny", "--group", "line-1"); code != 0 {
		t.Fatalf("sam: deny on line-1: exit %d: %s", code, out)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		_, err := os.Stat(filepath.Join(appsDir, "tool"))
		q := quarantined(t, appsDir)
		return os.IsNotExist(err) && len(q) == 2 && !pidAlive(pid), fmt.Sprintf("tool dir: %v, quarantine %v, pid %d alive %v", err, q, pid, pidAlive(pid))
	})
	eventually(t, 30*time.Second, func() (bool, string) {
		var d struct {
			Apps []struct {
				Name  string `json:"name"`
				State string `json:"state"`
			} `json:"apps"`
		}
		p.cliJSON(&d, "devices", "show", "press-1")
		for _, a := range d.Apps {
			if a.Name == "tool" && a.State == "quarantined" {
				return hasRecord(p.securityAudit(), "device", "quarantined", "tool")
			}
		}
		return false, fmt.Sprintf("devices show apps %+v", d.Apps)
	})
	// Nothing restarts it.
	if b, _ := os.ReadFile(pidFile); strings.TrimSpace(string(b)) != strconv.Itoa(pid) {
		t.Fatalf("the quarantined app was started again (pid file %q)", b)
	}

	// The SIEM log has the security events of both origins, one JSON
	// object per line.
	eventually(t, 20*time.Second, func() (bool, string) {
		f, err := os.Open(siemLog)
		if err != nil {
			return false, err.Error()
		}
		defer f.Close()
		var rs []auditRecord
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r auditRecord
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("siem line %q: %v", sc.Text(), err)
			}
			if r.Kind != "security" {
				t.Fatalf("siem line of kind %q: %s", r.Kind, sc.Text())
			}
			rs = append(rs, r)
		}
		for _, want := range [][3]string{
			{"device", "sideload_blocked", "dropped"}, {"device", "sideload_installed", "tool"},
			{"device", "quarantined", "tool"}, {"audit", "settings.sideload", "device-group:line-1"},
		} {
			if ok, msg := hasRecord(rs, want[0], want[1], want[2]); !ok {
				return false, msg
			}
		}
		return true, ""
	})

	// audit export prints the same as JSON lines.
	out = p.mustCLI("audit", "export", "--kind", "security", "--since", "1h")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 4 || !strings.Contains(out, `"sideload_installed"`) {
		t.Fatalf("audit export:\n%s", out)
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Fatalf("audit export line is not JSON: %q", l)
		}
	}
}

// TestSideloadGuardTamper: a managed (signed, assigned) app whose file is
// replaced with one of the same size is stopped, quarantined and
// reported, and the controller shows it.
func TestSideloadGuardTamper(t *testing.T) {
	cosign := cosignBin(t)
	p := newPlant(t)
	p.mustCLI("groups", "create", "line-1")
	p.mustEnroll("press-1", p.enrollToken("--groups", "line-1"))
	p.startAgent("press-1")
	p.converged(map[string][]string{"press-1": {"line-1"}})

	work := filepath.Join(p.dir, "publisher")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	pass := []string{"COSIGN_PASSWORD=publisher secret"}
	mustInDir(t, work, pass, cosign, "generate-key-pair")
	p.mustCLI("publishers", "add", "acme", "--key", filepath.Join(work, "cosign.pub"))
	script := "#!/bin/sh\necho $$ > \"$EDGEWARDEN_DATA_DIR/pid\"\nexec sleep 1000\n"
	if err := os.WriteFile(filepath.Join(work, "run.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out, code := inDir(t, work, p.env(), bin.cli, "apps", "manifest", "--name", "web", "--version", "1.0.0",
		"--publisher", "acme", "--runtime", "process", "--exec", "run.sh", "run.sh")
	if code != 0 {
		t.Fatalf("apps manifest: %s", out)
	}
	os.WriteFile(filepath.Join(work, "manifest.json"), []byte(out), 0o644)
	mustInDir(t, work, append(p.env(), pass...), bin.cli, "apps", "sign", "--key", filepath.Join(work, "cosign.key"), "manifest.json")
	mustInDir(t, work, p.env(), bin.cli, "apps", "push", "--manifest", "manifest.json", "--signature", "manifest.json.sig", "run.sh")
	p.mustCLI("apps", "assign", "web", "1.0.0", "--group", "line-1")

	appsDir := p.agentStatus("press-1").AppsDir
	pidFile := filepath.Join(p.stateDir("press-1"), "appdata", "web", "pid")
	var pid int
	eventually(t, 60*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return pidAlive(pid), "web is not running"
	})

	// Same size, same mtime, other content.
	target := filepath.Join(appsDir, "web", "current", "run.sh")
	fi, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	evil := strings.Replace(script, "sleep 1000", "sleep 9999", 1)
	if err := os.WriteFile(target, []byte(evil), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(target, fi.ModTime(), fi.ModTime())

	eventually(t, 10*time.Second, func() (bool, string) {
		_, err := os.Stat(filepath.Join(appsDir, "web"))
		q := quarantined(t, appsDir)
		return os.IsNotExist(err) && len(q) == 1 && !pidAlive(pid), fmt.Sprintf("web dir: %v, quarantine %v, alive %v", err, q, pidAlive(pid))
	})
	eventually(t, 30*time.Second, func() (bool, string) {
		rs := p.securityAudit()
		if ok, msg := hasRecord(rs, "device", "tamper_detected", "web"); !ok {
			return false, msg
		}
		return hasRecord(rs, "device", "quarantined", "web")
	})
}
