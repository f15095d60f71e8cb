package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edgewarden/edgewarden/controller/pki"
	"github.com/edgewarden/edgewarden/controller/store"
	"github.com/edgewarden/edgewarden/protocol"
)

// dbFile is the controller's database inside its data directory
// (controller/server.DBFile; not imported, to keep this tool's build small).
const dbFile = "controller.db"

const adminName = "admin"

// deviceID names the i-th simulated device.
func deviceID(i int) string { return fmt.Sprintf("load-%05d", i) }

// moduleRoot finds the directory of the Edgewarden go.mod, from dir upwards.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/edgewarden/edgewarden\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no Edgewarden go.mod in %s or above: run loadgen from the module (go run ./test/loadgen) or pass -repo", dir)
		}
	}
}

// buildController builds cmd/edgewarden-controller into dir.
func buildController(ctx context.Context, repo, dir string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "./cmd/edgewarden-controller")
	cmd.Dir = repo
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build edgewarden-controller: %w", err)
	}
	return nil
}

// initController runs `edgewarden-controller init` into dataDir and returns
// the admin password.
func initController(ctx context.Context, bin, work, dataDir string) (string, error) {
	var b [18]byte
	rand.Read(b[:])
	password := hex.EncodeToString(b[:])
	pwFile := filepath.Join(work, "admin-password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, bin, "init", "--data", dataDir, "--admin", adminName, "--admin-password-file", pwFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("edgewarden-controller init: %w\n%s", err, out)
	}
	return password, nil
}

// deviceCert is one simulated device's identity.
type deviceCert struct {
	id     string
	cert   tls.Certificate
	serial string
}

// mintDevices makes n device keys and has the controller's CA sign their
// CSRs exactly as enrollment does, on all cores.
func mintDevices(ctx context.Context, auth *pki.Authority, n int) ([]deviceCert, error) {
	out := make([]deviceCert, n)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				c, err := mintDevice(auth, deviceID(i))
				if err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
					continue
				}
				out[i] = c
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := cmpErr(first, ctx.Err()); err != nil {
		return nil, err
	}
	return out, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func mintDevice(auth *pki.Authority, id string) (deviceCert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return deviceCert{}, err
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		return deviceCert{}, fmt.Errorf("CSR for %s: %w", id, err)
	}
	certPEM, serial, err := auth.SignDeviceCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}), id, 0)
	if err != nil {
		return deviceCert{}, fmt.Errorf("sign certificate of %s: %w", id, err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return deviceCert{}, fmt.Errorf("certificate of %s is not PEM", id)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return deviceCert{}, err
	}
	return deviceCert{id: id, serial: serial, cert: tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key, Leaf: leaf}}, nil
}

// enrollDevices creates the devices in the stopped controller's store: one
// token allowing n uses, then store.Enroll for each, as the enrollment
// endpoint does after signing the CSR.
func enrollDevices(ctx context.Context, dataDir string, certs []deviceCert) error {
	db, err := store.Open(ctx, filepath.Join(dataDir, dbFile))
	if err != nil {
		return err
	}
	defer db.Close()
	var secret [32]byte
	rand.Read(secret[:])
	sum := sha256.Sum256(secret[:])
	hash := hex.EncodeToString(sum[:])
	now := time.Now().UTC()
	if _, err := db.CreateEnrollToken(ctx, store.EnrollToken{
		Hash: hash, MaxUses: len(certs), CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour), CreatedBy: adminName,
	}); err != nil {
		return fmt.Errorf("create enrollment token: %w", err)
	}
	for _, c := range certs {
		if _, _, err := db.Enroll(ctx, hash, store.NewDevice{
			ID: c.id, Labels: map[string]string{"loadgen": "true"}, CertSerial: c.serial, At: time.Now().UTC(),
		}); err != nil {
			return fmt.Errorf("enroll %s: %w", c.id, err)
		}
	}
	return db.Close()
}

// controllerKeys returns the controller's document-signing key, indexed for
// protocol.CheckOptions.Keys.
func controllerKeys(auth *pki.Authority) map[string]ed25519.PublicKey {
	pub := auth.SigningKey().Public().(ed25519.PublicKey)
	return map[string]ed25519.PublicKey{protocol.KeyID(pub): pub}
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// child is a process loadgen started and must stop.
type child struct {
	name  string
	cmd   *exec.Cmd
	log   string
	ready chan struct{}
	done  chan struct{}
	err   error // set before done closes
}

// startChild starts bin with args, writes its stdout and stderr to logPath,
// and closes ready when a line matches readyRe (nil: never).
func startChild(name, logPath string, readyRe *regexp.Regexp, env []string, bin string, args ...string) (*child, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.Env = append(os.Environ(), env...)
	// Dies with loadgen even if loadgen is killed with SIGKILL.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, ready: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer logFile.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		seen := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if !seen && readyRe != nil && readyRe.MatchString(line) {
				seen = true
				close(c.ready)
			}
		}
		io.Copy(logFile, pr) // a line too long for the scanner
	}()
	go func() {
		c.err = cmd.Wait()
		pw.Close()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// waitReady waits for the ready line, the process's exit or ctx.
func (c *child) waitReady(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.ready:
		return nil
	case <-c.done:
		return fmt.Errorf("%s exited before it was ready (%v); its log: %s\n%s", c.name, c.err, c.log, tail(c.log, 20))
	case <-t.C:
		return fmt.Errorf("%s not ready after %s; its log: %s\n%s", c.name, timeout, c.log, tail(c.log, 20))
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop sends SIGTERM, then SIGKILL after 10 s. Safe to call twice.
func (c *child) stop() {
	if c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// memory is a process's resident set size now and at its peak, in bytes.
type memory struct{ RSS, HWM int64 }

func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		kb, _ := strconv.ParseInt(f[0], 10, 64)
		if k == "VmRSS" {
			m.RSS = kb << 10
		} else {
			m.HWM = kb << 10
		}
	}
	if m.RSS == 0 {
		return m, errors.New("no VmRSS in /proc status")
	}
	return m, nil
}

// cpuSeconds is the user+system CPU time a process used so far.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// After the command: state(0) ... utime is field 14 overall, index 11 here.
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100 // USER_HZ is 100 on Linux
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// startMosquitto runs Debian's mosquitto with packaging/mosquitto's config,
// changing only port, paths and user, as test/external_broker_test.go does.
func startMosquitto(ctx context.Context, repo, work, dataDir, addr string) (*child, error) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		bin = "/usr/sbin/mosquitto"
		if _, serr := os.Stat(bin); serr != nil {
			return nil, errors.New("mosquitto is not installed: apt-get install -y mosquitto")
		}
	}
	conf, err := os.ReadFile(filepath.Join(repo, "packaging/mosquitto/mosquitto.conf"))
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	dir := filepath.Join(work, "mosquitto")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	c := string(conf)
	for _, r := range []struct{ re, to string }{
		{`(?m)^user .*$`, "user root"},
		{`(?m)^persistence_location .*$`, "persistence_location " + dir + "/"},
		{`(?m)^listener 8883$`, "listener " + port + " 127.0.0.1"},
		{`(?m)^cafile .*$`, "cafile " + filepath.Join(dataDir, pki.CAFile)},
		{`(?m)^certfile .*$`, "certfile " + filepath.Join(dataDir, pki.ServerCertFile)},
		{`(?m)^keyfile .*$`, "keyfile " + filepath.Join(dataDir, pki.ServerKeyFile)},
		{`(?m)^acl_file .*$`, "acl_file " + filepath.Join(repo, "packaging/mosquitto/acl")},
	} {
		re := regexp.MustCompile(r.re)
		if !re.MatchString(c) {
			return nil, fmt.Errorf("packaging/mosquitto/mosquitto.conf has no line matching %s", r.re)
		}
		c = re.ReplaceAllString(c, r.to)
	}
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(c), 0o600); err != nil {
		return nil, err
	}
	m, err := startChild("mosquitto", filepath.Join(work, "mosquitto.log"), nil, nil, bin, "-c", path)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
			return m, nil
		}
		if m.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			m.stop()
			return nil, fmt.Errorf("mosquitto did not listen on %s: %v\n%s", addr, err, tail(m.log, 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
