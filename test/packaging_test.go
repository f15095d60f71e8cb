package test

// Checks of what packaging/ ships: the systemd units (syntax, the binaries'
// flags, the hardening score), the default config files, and the external
// mosquitto config, which is started for real and attacked from a device.

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgewarden/edgewarden/controller/pki"
	"github.com/edgewarden/edgewarden/protocol"
)

const packagingDir = "../packaging"

// maxExposure is the highest `systemd-analyze security` score the units may
// have (issue 6: "at most 2.5").
const maxExposure = 2.5

// shippedUnit is one unit in packaging/systemd and the binary it starts.
type shippedUnit struct {
	name   string // file name
	binary string // path of the built binary
}

func shippedUnits() []shippedUnit {
	return []shippedUnit{
		{"edgewarden-agent.service", bin.agent},
		{"edgewarden-controller.service", bin.controller},
	}
}

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (apt-get install -y systemd); skipping the unit checks")
	}
	return p
}

// unitDirectives parses a unit file into "Section.Key" → values, in order.
func unitDirectives(t *testing.T, text string) map[string][]string {
	t.Helper()
	d := map[string][]string{}
	section := ""
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("line %d: %q is not Key=Value", i+1, line)
			}
			d[section+"."+k] = append(d[section+"."+k], v)
		}
	}
	return d
}

// localUnit copies a shipped unit into a temp dir with ExecStart pointing at
// the built binary (the /usr/bin path does not exist here) and returns its path.
func localUnit(t *testing.T, u shippedUnit) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(packagingDir, "systemd", u.name))
	if err != nil {
		t.Fatal(err)
	}
	installed := "/usr/bin/" + strings.TrimSuffix(u.name, ".service")
	text := string(b)
	if !strings.Contains(text, "ExecStart="+installed+" ") {
		t.Fatalf("%s: ExecStart does not start %s", u.name, installed)
	}
	text = strings.ReplaceAll(text, "ExecStart="+installed+" ", "ExecStart="+u.binary+" ")
	p := filepath.Join(t.TempDir(), u.name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// verifyUnit runs `systemd-analyze verify` and returns what it said about
// the unit (it may also talk about unrelated units of this machine).
func verifyUnit(t *testing.T, analyze, path string) (complaints []string, err error) {
	t.Helper()
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	name := filepath.Base(path)
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, name) {
			complaints = append(complaints, line)
		}
	}
	return complaints, err
}

func TestSystemdUnitsVerify(t *testing.T) {
	analyze := systemdAnalyze(t)
	for _, u := range shippedUnits() {
		t.Run(u.name, func(t *testing.T) {
			path := localUnit(t, u)
			complaints, err := verifyUnit(t, analyze, path)
			if err != nil || len(complaints) > 0 {
				t.Fatalf("systemd-analyze verify %s: %v\n%s", u.name, err, strings.Join(complaints, "\n"))
			}
			// The check itself can fail: a misspelt key is reported.
			b, _ := os.ReadFile(path)
			broken := strings.Replace(string(b), "ProtectHome=", "ProtectHomes=", 1)
			if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
				t.Fatal(err)
			}
			if complaints, _ := verifyUnit(t, analyze, path); len(complaints) == 0 {
				t.Fatal("systemd-analyze verify accepted an unknown key: the check is blind")
			}
		})
	}
}

// exposureLine is systemd-analyze's summary, e.g.
// "→ Overall exposure level for x.service: 1.1 OK 🙂".
var exposureLine = regexp.MustCompile(`Overall exposure level for \S+: ([0-9]+\.[0-9]+)`)

// exposure returns the `systemd-analyze security --offline=true` score of
// the unit file at path. systemd older than 252 has no --offline (it can
// only score loaded units, which needs systemd as PID 1): the test skips.
func exposure(t *testing.T, analyze, path string) float64 {
	t.Helper()
	out, err := exec.Command(analyze, "security", "--offline=true", "--no-pager", path).CombinedOutput()
	if m := exposureLine.FindSubmatch(out); m != nil {
		v, perr := strconv.ParseFloat(string(m[1]), 64)
		if perr != nil {
			t.Fatalf("exposure %q: %v", m[1], perr)
		}
		return v
	}
	if bytes.Contains(out, []byte("unrecognized option")) || bytes.Contains(out, []byte("Unknown option")) {
		t.Skipf("systemd-analyze here has no --offline (systemd >= 252 needed): %s", bytes.TrimSpace(out))
	}
	t.Fatalf("systemd-analyze security %s: %v, no exposure line in:\n%s", path, err, out)
	return 0
}

func TestSystemdUnitsExposure(t *testing.T) {
	analyze := systemdAnalyze(t)
	for _, u := range shippedUnits() {
		t.Run(u.name, func(t *testing.T) {
			if got := exposure(t, analyze, localUnit(t, u)); got > maxExposure {
				out, _ := exec.Command(analyze, "security", "--offline=true", "--no-pager", localUnit(t, u)).CombinedOutput()
				t.Fatalf("exposure of %s is %.1f, want at most %.1f:\n%s", u.name, got, maxExposure, out)
			}
		})
	}
	// The score is really read: an unhardened unit is far above the limit.
	bare := filepath.Join(t.TempDir(), "bare.service")
	if err := os.WriteFile(bare, []byte("[Service]\nExecStart="+bin.agent+" run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := exposure(t, analyze, bare); got <= maxExposure {
		t.Fatalf("an unhardened unit scored %.1f, at most %.1f: the check is blind", got, maxExposure)
	}
}

// TestSystemdUnitsContract holds the units to what the binaries and the
// packages rely on, which the exposure score does not cover.
func TestSystemdUnitsContract(t *testing.T) {
	for _, u := range shippedUnits() {
		t.Run(u.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(packagingDir, "systemd", u.name))
			if err != nil {
				t.Fatal(err)
			}
			d := unitDirectives(t, string(b))
			short := strings.TrimPrefix(strings.TrimSuffix(u.name, ".service"), "edgewarden-")
			want := map[string]string{
				"Service.Type":                   "notify",
				"Service.NotifyAccess":           "main",
				"Service.Restart":                "on-failure",
				"Service.User":                   "edgewarden",
				"Service.StateDirectory":         "edgewarden-" + short,
				"Service.ConfigurationDirectory": "edgewarden",
				"Service.CapabilityBoundingSet":  "",
				"Service.NoNewPrivileges":        "yes",
				"Service.ProtectSystem":          "strict",
				"Service.UMask":                  "0077",
				"Service.SystemCallFilter":       "@system-service",
				"Install.WantedBy":               "multi-user.target",
			}
			for k, v := range want {
				if got := d[k]; !slices.Contains(got, v) {
					t.Errorf("%s = %q, want %q among them", k, got, v)
				}
			}
			for _, k := range []string{"Service.WatchdogSec", "Service.RestartSec", "Unit.ConditionPathExists"} {
				if len(d[k]) == 0 {
					t.Errorf("%s is not set", k)
				}
			}
			if d["Service.DynamicUser"] != nil {
				t.Error("DynamicUser is set: the packages create a static user")
			}
			if short == "agent" && !slices.Contains(d["Service.RuntimeDirectory"], "edgewarden") {
				t.Errorf("RuntimeDirectory = %q, want edgewarden (the local API socket lives in /run/edgewarden)", d["Service.RuntimeDirectory"])
			}
		})
	}
}

// TestSystemdUnitsMatchBinaries checks that the command line in each unit's
// ExecStart names a subcommand and flags the built binary accepts.
func TestSystemdUnitsMatchBinaries(t *testing.T) {
	for _, u := range shippedUnits() {
		t.Run(u.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(packagingDir, "systemd", u.name))
			if err != nil {
				t.Fatal(err)
			}
			exec1 := unitDirectives(t, string(b))["Service.ExecStart"]
			if len(exec1) != 1 {
				t.Fatalf("ExecStart = %q, want one command", exec1)
			}
			args := strings.Fields(exec1[0])
			if len(args) < 2 {
				t.Fatalf("ExecStart %q has no subcommand", exec1[0])
			}
			help, err := exec.Command(u.binary, args[1], "--help").CombinedOutput()
			if err != nil {
				t.Fatalf("%s %s --help: %v\n%s", u.binary, args[1], err, help)
			}
			for _, a := range args[2:] {
				if strings.HasPrefix(a, "--") && !bytes.Contains(help, []byte(a+" ")) {
					t.Errorf("ExecStart passes %s, which `%s --help` does not list:\n%s", a, args[1], help)
				}
			}
		})
	}
}

// TestDefaultAgentConfigAccepted runs the agent with the shipped
// /etc/edgewarden/agent.yaml: it is decoded strictly, so a key the agent
// does not know would stop the service from starting.
func TestDefaultAgentConfigAccepted(t *testing.T) {
	conf := filepath.Join(packagingDir, "config", "agent.yaml")
	state := t.TempDir()
	out, err := exec.Command(bin.agent, "status", "--state", state, "--config", conf).CombinedOutput()
	if err == nil {
		t.Fatalf("status of an empty state dir succeeded:\n%s", out)
	}
	if !bytes.Contains(out, []byte("not enrolled")) || bytes.Contains(out, []byte("config")) {
		t.Fatalf("want only a not-enrolled error with the shipped config, got:\n%s", out)
	}

	// The check can fail: the same file with a misspelt key is refused.
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(bad, bytes.Replace(b, []byte("\nlog_level:"), []byte("\nlog_levle:"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(bin.agent, "status", "--state", state, "--config", bad).CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("log_levle")) {
		t.Fatalf("a misspelt key was not reported: %v\n%s", err, out)
	}
}

// TestDefaultControllerConfigMatchesFlags holds controller.yaml to its
// rule: every key is a `serve` flag with "_" for "-", so a flag overrides
// the key of the same name.
func TestDefaultControllerConfigMatchesFlags(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(packagingDir, "config", "controller.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	help, err := exec.Command(bin.controller, "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("serve --help: %v\n%s", err, help)
	}
	keys := regexp.MustCompile(`(?m)^([a-z_]+):`).FindAllStringSubmatch(string(b), -1)
	if len(keys) == 0 {
		t.Fatal("controller.yaml sets no option")
	}
	for _, k := range keys {
		flag := "--" + strings.ReplaceAll(k[1], "_", "-") + " "
		if !bytes.Contains(help, []byte(flag)) {
			t.Errorf("controller.yaml key %s: `serve --help` has no %s", k[1], flag)
		}
	}
}

// TestDefaultControllerConfigAccepted does the same for controller.yaml once
// `serve` reads a config file.
func TestDefaultControllerConfigAccepted(t *testing.T) {
	help, _ := exec.Command(bin.controller, "serve", "--help").CombinedOutput()
	if !bytes.Contains(help, []byte("--config ")) {
		t.Skip("edgewarden-controller serve has no --config flag yet")
	}
	conf := filepath.Join(packagingDir, "config", "controller.yaml")
	out, err := exec.Command(bin.controller, "serve", "--data", t.TempDir(), "--config", conf).CombinedOutput()
	if err == nil {
		t.Fatalf("serve on an empty data dir succeeded:\n%s", out)
	}
	if bytes.Contains(out, []byte("controller.yaml")) {
		t.Fatalf("the shipped controller.yaml was refused:\n%s", out)
	}
}

// mosquittoBinary returns the mosquitto daemon or skips.
func mosquittoBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	t.Skip("mosquitto is not installed (apt-get install -y mosquitto); skipping the external-broker config test")
	return ""
}

// rewriteMosquittoConf replaces the value of each key in set (the whole line
// "key value"); every key must occur exactly once, so that a change to the
// shipped file that this test would silently miss fails instead.
func rewriteMosquittoConf(t *testing.T, conf string, set map[string]string) string {
	t.Helper()
	seen := map[string]int{}
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(conf))
	for sc.Scan() {
		line := sc.Text()
		key, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if v, ok := set[key]; ok && !strings.HasPrefix(line, "#") {
			seen[key]++
			if v == "" {
				continue
			}
			line = key + " " + v
		}
		out.WriteString(line + "\n")
	}
	for k := range set {
		if seen[k] != 1 {
			t.Fatalf("mosquitto.conf has %d %q lines, want 1", seen[k], k)
		}
	}
	return out.String()
}

// mqttInbox records what a client received.
type mqttInbox struct {
	mu   sync.Mutex
	msgs map[string][]string // topic → payloads
}

func (b *mqttInbox) handle(_ paho.Client, m paho.Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.msgs == nil {
		b.msgs = map[string][]string{}
	}
	b.msgs[m.Topic()] = append(b.msgs[m.Topic()], string(m.Payload()))
}

func (b *mqttInbox) has(topic, payload string) (bool, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Contains(b.msgs[topic], payload), fmt.Sprintf("%q not received on %s (got %d topics)", payload, topic, len(b.msgs))
}

func (b *mqttInbox) topics() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ts []string
	for t := range b.msgs {
		ts = append(ts, t)
	}
	return ts
}

// deviceTLSConfig issues a client certificate for device id from the CA.
func deviceTLSConfig(t *testing.T, a *pki.Authority, id string) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := a.SignDeviceCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: a.CACertPool(), Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

const mqttWait = 10 * time.Second

// mqttConnect connects a client; lost is closed when the broker drops it.
func mqttConnect(t *testing.T, url, clientID string, cfg *tls.Config, inbox *mqttInbox) (c paho.Client, lost chan struct{}) {
	t.Helper()
	lost = make(chan struct{})
	var once sync.Once
	o := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).SetTLSConfig(cfg).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).SetOrderMatters(true).
		SetConnectionLostHandler(func(paho.Client, error) { once.Do(func() { close(lost) }) })
	if inbox != nil {
		o.SetDefaultPublishHandler(inbox.handle)
	}
	c = paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(mqttWait) || tok.Error() != nil {
		t.Fatalf("%s: connect: %v", clientID, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, lost
}

func mqttDo(t *testing.T, what string, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(mqttWait) || tok.Error() != nil {
		t.Fatalf("%s: %v", what, tok.Error())
	}
}

// TestMosquittoConfig starts mosquitto with the shipped config (port, file
// paths and user rewritten for the test) and checks, as a device and as the
// controller would see it, every rule the config is there for.
func TestMosquittoConfig(t *testing.T) {
	mosquitto := mosquittoBinary(t)
	shipped, err := os.ReadFile(filepath.Join(packagingDir, "mosquitto", "mosquitto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(shipped, []byte(fmt.Sprintf("\nmessage_size_limit %d\n", protocol.MaxMessageBytes))) {
		t.Fatalf("mosquitto.conf: message_size_limit is not protocol.MaxMessageBytes (%d)", protocol.MaxMessageBytes)
	}

	dir := t.TempDir()
	a, err := pki.Init(filepath.Join(dir, "pki"), pki.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	acl, err := os.ReadFile(filepath.Join(packagingDir, "mosquitto", "acl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "acl"), acl, 0o644); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(freeAddr(t))
	user := "" // not root: mosquitto keeps running as the current user
	if os.Geteuid() == 0 {
		user = "root" // the test's keys are readable only by their owner
	}
	persist := filepath.Join(dir, "persist") + "/"
	if err := os.Mkdir(persist, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := rewriteMosquittoConf(t, string(shipped), map[string]string{
		"listener":             port + " 127.0.0.1",
		"cafile":               filepath.Join(dir, "pki", pki.CAFile),
		"certfile":             filepath.Join(dir, "pki", pki.ServerCertFile),
		"keyfile":              filepath.Join(dir, "pki", pki.ServerKeyFile),
		"acl_file":             filepath.Join(dir, "acl"),
		"persistence_location": persist,
		"user":                 user,
	})
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	broker := start(t, "mosquitto", mosquitto, "-c", confPath)
	addr := net.JoinHostPort("127.0.0.1", port)
	eventually(t, mqttWait, func() (bool, string) {
		if broker.exited() {
			t.Fatalf("mosquitto exited with the shipped config:\n%s", broker.logs.String())
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
	url := "tls://" + addr

	// The controller sees every device's status, and publishes desired
	// documents (retained) for dev-1 and dev-2.
	ctlInbox := &mqttInbox{}
	ctl, ctlLost := mqttConnect(t, url, pki.ControllerIdentity, a.ClientConfig(), ctlInbox)
	mqttDo(t, "controller subscribe", ctl.Subscribe(protocol.AllDevices(protocol.KindStatus), 1, nil))
	for _, id := range []string{"dev-1", "dev-2"} {
		mqttDo(t, "controller publish desired", ctl.Publish(protocol.DesiredTopic(id), 1, true, "doc-"+id))
	}

	devInbox := &mqttInbox{}
	dev, _ := mqttConnect(t, url, "dev-1", deviceTLSConfig(t, a, "dev-1"), devInbox)

	t.Run("device reads only its own desired state", func(t *testing.T) {
		// A wildcard and a direct subscription to another device's document
		// first, its own last: once its own arrives, the others would have.
		mqttDo(t, "subscribe wildcard", dev.Subscribe(protocol.AllDevices(protocol.KindDesired), 1, nil))
		dev.Subscribe(protocol.DesiredTopic("dev-2"), 1, nil).WaitTimeout(mqttWait) // may be refused
		mqttDo(t, "subscribe own", dev.Subscribe(protocol.DesiredTopic("dev-1"), 1, nil))
		eventually(t, mqttWait, func() (bool, string) { return devInbox.has(protocol.DesiredTopic("dev-1"), "doc-dev-1") })
		if ok, _ := devInbox.has(protocol.DesiredTopic("dev-2"), "doc-dev-2"); ok {
			t.Fatal("dev-1 read dev-2's desired document")
		}
	})

	t.Run("device writes only its own reports", func(t *testing.T) {
		dev.Publish(protocol.StatusTopic("dev-2"), 1, false, "forged").WaitTimeout(mqttWait)
		dev.Publish(protocol.DesiredTopic("dev-1"), 1, true, "self-signed").WaitTimeout(mqttWait)
		mqttDo(t, "publish own status", dev.Publish(protocol.StatusTopic("dev-1"), 1, false, "mine"))
		eventually(t, mqttWait, func() (bool, string) { return ctlInbox.has(protocol.StatusTopic("dev-1"), "mine") })
		if ok, _ := ctlInbox.has(protocol.StatusTopic("dev-2"), "forged"); ok {
			t.Fatal("dev-1 published dev-2's status")
		}
		// Its own desired document is unchanged: the retained copy is still
		// the controller's. (A second controller connection would take over
		// the first one's client id, so the controller itself looks.)
		mqttDo(t, "subscribe", ctl.Subscribe(protocol.DesiredTopic("dev-1"), 1, nil))
		eventually(t, mqttWait, func() (bool, string) { return ctlInbox.has(protocol.DesiredTopic("dev-1"), "doc-dev-1") })
		if ok, _ := ctlInbox.has(protocol.DesiredTopic("dev-1"), "self-signed"); ok {
			t.Fatal("dev-1 replaced its own desired document")
		}
	})

	t.Run("acknowledgements: only the controller writes, a device reads only its own", func(t *testing.T) {
		dev.Subscribe(protocol.AckTopic("dev-2"), 1, nil).WaitTimeout(mqttWait) // may be refused
		mqttDo(t, "subscribe own ack", dev.Subscribe(protocol.AckTopic("dev-1"), 1, nil))
		// A device acknowledging its own events (so they would be deleted
		// unstored) is dropped by the broker.
		dev.Publish(protocol.AckTopic("dev-1"), 1, false, "forged-ack").WaitTimeout(mqttWait)
		mqttDo(t, "controller acks dev-2", ctl.Publish(protocol.AckTopic("dev-2"), 1, false, "ack-dev-2"))
		mqttDo(t, "controller acks dev-1", ctl.Publish(protocol.AckTopic("dev-1"), 1, false, "ack-dev-1"))
		eventually(t, mqttWait, func() (bool, string) { return devInbox.has(protocol.AckTopic("dev-1"), "ack-dev-1") })
		if ok, _ := devInbox.has(protocol.AckTopic("dev-1"), "forged-ack"); ok {
			t.Fatal("dev-1 wrote its own ack topic")
		}
		if ok, _ := devInbox.has(protocol.AckTopic("dev-2"), "ack-dev-2"); ok {
			t.Fatal("dev-1 read dev-2's acknowledgements")
		}
	})

	t.Run("device cannot take over the controller's session", func(t *testing.T) {
		// With use_username_as_clientid the client id is the certificate's
		// name, so this connection does not kick the controller off.
		imp, _ := mqttConnect(t, url, pki.ControllerIdentity, deviceTLSConfig(t, a, "dev-3"), nil)
		mqttDo(t, "publish", imp.Publish(protocol.StatusTopic("dev-3"), 1, false, "after"))
		eventually(t, mqttWait, func() (bool, string) { return ctlInbox.has(protocol.StatusTopic("dev-3"), "after") })
		select {
		case <-ctlLost:
			t.Fatal("the controller was disconnected by a device using its client id")
		default:
		}
	})

	t.Run("message size limit", func(t *testing.T) {
		big := strings.Repeat("x", protocol.MaxMessageBytes)
		dev.Publish(protocol.StatusTopic("dev-1"), 1, false, big+"y").WaitTimeout(mqttWait)
		mqttDo(t, "publish at the limit", dev.Publish(protocol.StatusTopic("dev-1"), 1, false, big))
		eventually(t, mqttWait, func() (bool, string) {
			ok, _ := ctlInbox.has(protocol.StatusTopic("dev-1"), big)
			return ok, "a status of exactly protocol.MaxMessageBytes did not arrive"
		})
		if ok, _ := ctlInbox.has(protocol.StatusTopic("dev-1"), big+"y"); ok {
			t.Fatal("a message over protocol.MaxMessageBytes was delivered")
		}
	})

	t.Run("clients without a certificate from the CA are refused", func(t *testing.T) {
		noCert := &tls.Config{RootCAs: a.CACertPool(), MinVersion: tls.VersionTLS12}
		other, err := pki.Init(filepath.Join(dir, "other-pki"), pki.InitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		foreign := deviceTLSConfig(t, other, "dev-1")
		foreign.RootCAs = a.CACertPool()
		for name, cfg := range map[string]*tls.Config{"no certificate": noCert, "other CA": foreign} {
			c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("intruder").SetTLSConfig(cfg).
				SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
			tok := c.Connect()
			if tok.WaitTimeout(mqttWait) && tok.Error() == nil {
				c.Disconnect(0)
				t.Errorf("%s: connected", name)
			}
		}
	})

	t.Run("persistence", func(t *testing.T) {
		ctl.Disconnect(0)
		dev.Disconnect(0)
		broker.stop(t)
		if _, err := os.Stat(filepath.Join(persist, "mosquitto.db")); err != nil {
			t.Fatalf("no persistence database after a clean stop: %v\n%s", err, broker.logs.String())
		}
	})
	if topics := devInbox.topics(); slices.Contains(topics, protocol.DesiredTopic("dev-2")) {
		t.Errorf("dev-1 received %v", topics)
	}
}
