package test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// startMosquitto runs a real mosquitto with packaging/mosquitto's config,
// changing only what a test must: port, file paths, user. It uses the
// controller's CA and server certificate, as packaging/mosquitto/README.md
// tells an operator to.
func startMosquitto(t *testing.T, ctlDir, addr string) *proc {
	t.Helper()
	return startMosquittoIn(t, ctlDir, addr, t.TempDir(), nil)
}

// startMosquittoIn is startMosquitto with its persistence in dir (so a
// restart finds what the last run saved) and extra config rewrites.
func startMosquittoIn(t *testing.T, ctlDir, addr, dir string, extra map[string]string) *proc {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			t.Skip("mosquitto is not installed (apt-get install -y mosquitto; .ci/run does this)")
		}
		bin = "/usr/sbin/mosquitto"
	}
	conf, err := os.ReadFile("../packaging/mosquitto/mosquitto.conf")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	c := string(conf)
	rewrites := []struct{ re, to string }{
		{`(?m)^user .*$`, "user root"}, // the test's key files are root's
		{`(?m)^persistence_location .*$`, "persistence_location " + dir + "/"},
		{`(?m)^listener 8883$`, "listener " + port + " 127.0.0.1"},
		{`(?m)^cafile .*$`, "cafile " + filepath.Join(ctlDir, "ca.pem")},
		{`(?m)^certfile .*$`, "certfile " + filepath.Join(ctlDir, "server.pem")},
		{`(?m)^keyfile .*$`, "keyfile " + filepath.Join(ctlDir, "server.key")},
		{`(?m)^acl_file .*$`, "acl_file " + mustAbs(t, "../packaging/mosquitto/acl")},
	}
	for re, to := range extra {
		rewrites = append(rewrites, struct{ re, to string }{re, to})
	}
	for _, r := range rewrites {
		re := regexp.MustCompile(r.re)
		if !re.MatchString(c) {
			t.Fatalf("packaging/mosquitto/mosquitto.conf has no line matching %s", r.re)
		}
		c = re.ReplaceAllString(c, r.to)
	}
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(c), 0o600); err != nil {
		t.Fatal(err)
	}
	m := start(t, "mosquitto", bin, "-c", path)
	eventually(t, 10*time.Second, func() (bool, string) {
		if m.exited() {
			t.Fatalf("mosquitto exited:\n%s", m.logs.String())
		}
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
		}
		return err == nil, "mosquitto not listening"
	})
	return m
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// externalBrokerPlant starts mosquitto and a controller using it, with groups
// line-1 and line-2 and agents dev-1 and dev-2 converged in line-1.
func externalBrokerPlant(t *testing.T) (p *plant, brokerAddr string, mosq *proc) {
	t.Helper()
	brokerAddr = freeAddr(t)
	p = newPlantWith(t, func(p *plant) []string {
		mosq = startMosquitto(t, p.ctlDir, brokerAddr)
		return []string{"--broker-url", "tls://" + brokerAddr}
	})
	p.mustCLI("groups", "create", "line-1")
	p.mustCLI("groups", "create", "line-2")
	token := p.enrollToken("--groups", "line-1", "--uses", "2")
	p.mustEnroll("dev-1", token)
	p.mustEnroll("dev-2", token)
	p.startAgent("dev-1")
	p.startAgent("dev-2")
	p.converged(map[string][]string{"dev-1": {"line-1"}, "dev-2": {"line-1"}})
	return p, brokerAddr, mosq
}

// TestExternalBroker runs the controller against a real mosquitto with the
// shipped config: devices enroll, converge and follow group changes exactly
// as with the embedded broker, and the ACL keeps a device to its own topics.
func TestExternalBroker(t *testing.T) {
	p, brokerAddr, _ := externalBrokerPlant(t)
	p.mustCLI("groups", "add", "line-2", "dev-2")
	p.mustCLI("groups", "remove", "line-1", "dev-2")
	p.converged(map[string][]string{"dev-1": {"line-1"}, "dev-2": {"line-2"}})
	if !strings.Contains(p.ctl.logs.String(), "mqtt=tls://"+brokerAddr) {
		t.Fatalf("controller did not use the external broker:\n%s", p.ctl.logs.String())
	}

	// Restart the controller: its persistent session and the broker's
	// retained documents carry over, and changes flow again.
	p.ctl.stop(t)
	p.startController()
	p.mustCLI("groups", "add", "line-2", "dev-1")
	p.converged(map[string][]string{"dev-1": {"line-1", "line-2"}, "dev-2": {"line-2"}})
}

// TestExternalBrokerCrashRepublishes kills mosquitto with -9 right after it
// acknowledged a changed document (mosquitto saves its retained messages
// only every autosave_interval, so the crash loses it) while the device was
// away, and starts mosquitto again: the controller must publish again what
// the broker lost once its link reconnects, and every device converge,
// without a controller restart.
func TestExternalBrokerCrashRepublishes(t *testing.T) {
	p, _, mosq := externalBrokerPlant(t)
	ctlPID := p.ctl.cmd.Process.Pid

	// dev-1 goes away; its next document is acknowledged by the broker,
	// then the broker dies before it saved it.
	p.agents["dev-1"].kill()
	published := strings.Count(p.ctl.logs.String(), `msg="published desired state"`)
	p.mustCLI("groups", "add", "line-2", "dev-1")
	eventually(t, 10*time.Second, func() (bool, string) {
		return strings.Count(p.ctl.logs.String(), `msg="published desired state"`) > published, "the controller never published the change"
	})
	mosq.kill()
	published = strings.Count(p.ctl.logs.String(), `msg="published desired state"`)
	start(t, "mosquitto", mosq.cmd.Args...)
	// The link reconnects and the controller publishes again what the broker
	// may have lost, before any device asks (well within the 30 s drift grace
	// after which a device seen drifting would get its document again).
	eventually(t, 20*time.Second, func() (bool, string) {
		return strings.Count(p.ctl.logs.String(), `msg="published desired state"`) > published, "nothing published again after the broker came back"
	})

	p.startAgent("dev-1")
	p.converged(map[string][]string{"dev-1": {"line-1", "line-2"}, "dev-2": {"line-1"}})
	if p.ctl.exited() || p.ctl.cmd.Process.Pid != ctlPID {
		t.Fatal("the controller restarted")
	}
	// And changes keep flowing over the new connection.
	p.mustCLI("groups", "add", "line-2", "dev-2")
	p.converged(map[string][]string{"dev-1": {"line-1", "line-2"}, "dev-2": {"line-1", "line-2"}})
}
