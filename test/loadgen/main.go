package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/edgewarden/edgewarden/controller/pki"
)

// options are the command-line flags.
type options struct {
	Devices          int
	Bin              string
	Repo             string
	Broker           string
	Concurrency      int
	StormConcurrency int
	CleanSession     bool
	Verify           bool
	Pin              bool
	Settle           time.Duration
	Poll             time.Duration
	PhaseTimeout     time.Duration
	Timeout          time.Duration
	Output           string
	Keep             bool
	Profile          string
	GCTrace          bool
	ControllerEnv    []string
}

func main() {
	var o options
	flag.IntVar(&o.Devices, "devices", 1000, "number of simulated devices (1-99999)")
	flag.StringVar(&o.Bin, "bin", "", "directory holding a built edgewarden-controller (default: build it into the temp dir)")
	flag.StringVar(&o.Repo, "repo", "", "Edgewarden module root (default: found from the working directory)")
	flag.StringVar(&o.Broker, "broker", "embedded", "embedded (the controller's own broker) or mosquitto (Debian's, with packaging/mosquitto's config)")
	flag.IntVar(&o.Concurrency, "concurrency", 200, "connection attempts in flight at once during the initial connect")
	flag.IntVar(&o.StormConcurrency, "storm-concurrency", 0, "connection attempts in flight at once during the reconnect storm (0: all at once)")
	flag.BoolVar(&o.CleanSession, "clean-session", false, "connect with clean session on (agents use off)")
	flag.BoolVar(&o.Verify, "verify", true, "verify every received document with protocol.CheckDesired (signature, device, expiry)")
	flag.BoolVar(&o.Pin, "pin", true, "pin the broker's certificate bytes instead of verifying its chain on every handshake")
	flag.DurationVar(&o.Settle, "settle", 3*time.Second, "wait this long with all devices connected before reading steady-state memory")
	flag.DurationVar(&o.Poll, "poll", 100*time.Millisecond, "interval of GET /api/v1/status polls while waiting for the controller to count devices in sync")
	flag.DurationVar(&o.PhaseTimeout, "phase-timeout", 2*time.Minute, "give up on a phase after this long")
	flag.DurationVar(&o.Timeout, "timeout", 15*time.Minute, "give up on the whole run after this long")
	flag.StringVar(&o.Output, "o", "table", "output format: table or json")
	flag.BoolVar(&o.Keep, "keep", false, "keep the temp dir (controller data and logs) for inspection")
	flag.StringVar(&o.Profile, "profile", "", "write CPU and heap profiles of the controller per phase into this directory (runs test/loadgen/profserve, the same server with pprof)")
	flag.Func("controller-env", "KEY=VALUE added to the controller's environment, e.g. GOMEMLIMIT=300MiB (repeatable)", func(v string) error {
		if !strings.Contains(v, "=") {
			return errors.New("want KEY=VALUE")
		}
		o.ControllerEnv = append(o.ControllerEnv, v)
		return nil
	})
	flag.BoolVar(&o.GCTrace, "gctrace", true, "run the controller with GODEBUG=gctrace=1 and report its live heap")
	flag.Parse()
	if flag.NArg() > 0 || o.Devices < 1 || o.Devices > 99999 || (o.Broker != "embedded" && o.Broker != "mosquitto") || (o.Output != "table" && o.Output != "json") {
		fmt.Fprintln(os.Stderr, "loadgen: bad usage: -devices 1..99999, -broker embedded|mosquitto, -o table|json, no arguments")
		flag.Usage()
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	r := &report{Devices: o.Devices, Broker: o.Broker, CleanSession: o.CleanSession, Verify: o.Verify, Pin: o.Pin,
		Concurrency: o.Concurrency, StormConcurrency: o.StormConcurrency, LoadAvgStart: loadAvg(), Started: time.Now().UTC()}
	err := run(ctx, o, r)
	switch {
	case errors.Is(err, context.Canceled):
		err = errors.New("interrupted; the controller was stopped and the temp dir removed")
	case errors.Is(err, context.DeadlineExceeded):
		err = fmt.Errorf("the run took longer than -timeout %s: %w", o.Timeout, err)
	}
	r.LoadAvgEnd = loadAvg()
	if err != nil {
		r.Error = err.Error()
	}
	if o.Output == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(r)
	} else {
		r.print(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// progress writes a line to stderr (the summary goes to stdout).
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s loadgen: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

var readyLine = regexp.MustCompile(`msg=ready\b`)

func run(ctx context.Context, o options, r *report) (err error) {
	repo := o.Repo
	if repo == "" {
		wd, _ := os.Getwd()
		if repo, err = moduleRoot(wd); err != nil {
			return err
		}
	}
	work, err := os.MkdirTemp("", "ew-loadgen-")
	if err != nil {
		return err
	}
	if o.Keep {
		progress("keeping %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	bin := o.Bin
	if bin == "" {
		bin = filepath.Join(work, "bin")
		progress("building edgewarden-controller")
		if err := buildController(ctx, repo, bin); err != nil {
			return err
		}
	}
	ctlBin := filepath.Join(bin, "edgewarden-controller")
	dataDir := filepath.Join(work, "data")

	// 1. Controller data, devices, certificates.
	password, err := initController(ctx, ctlBin, work, dataDir)
	if err != nil {
		return err
	}
	auth, err := pki.Load(dataDir)
	if err != nil {
		return err
	}
	t := time.Now()
	certs, err := mintDevices(ctx, auth, o.Devices)
	if err != nil {
		return err
	}
	r.add("setup", "issue device certificates", time.Since(t), "")
	t = time.Now()
	if err := enrollDevices(ctx, dataDir, certs); err != nil {
		return err
	}
	r.add("setup", "enroll devices in the store", time.Since(t), "")
	progress("%d devices enrolled with certificates", o.Devices)

	// 2. Broker and controller as child processes.
	httpAddr, err := freeAddr()
	if err != nil {
		return err
	}
	mqttAddr, err := freeAddr()
	if err != nil {
		return err
	}
	args := []string{"serve", "--data", dataDir, "--http", httpAddr, "--log-format", "text"}
	var brokerProc *child
	if o.Broker == "mosquitto" {
		if brokerProc, err = startMosquitto(ctx, repo, work, dataDir, mqttAddr); err != nil {
			return err
		}
		defer brokerProc.stop()
		args = append(args, "--broker-url", "tls://"+mqttAddr)
	} else {
		args = append(args, "--mqtt", mqttAddr)
	}
	serveBin := ctlBin
	var prof *profiler
	if o.Profile != "" {
		if prof, err = newProfiler(ctx, repo, work, o.Profile); err != nil {
			return err
		}
		serveBin = prof.bin
		args = append(prof.args, args[1:]...) // profserve has no "serve" subcommand
		args = slices.DeleteFunc(args, func(a string) bool { return a == "--log-format" || a == "text" })
	}
	env := slices.Clone(o.ControllerEnv)
	if o.GCTrace {
		env = append(env, "GODEBUG=gctrace=1")
	}
	t = time.Now()
	ctl, err := startChild("edgewarden-controller", filepath.Join(work, "controller.log"), readyLine, env, serveBin, args...)
	if err != nil {
		return err
	}
	defer ctl.stop()
	if err := ctl.waitReady(ctx, o.PhaseTimeout); err != nil {
		return err
	}
	r.add("setup", "controller start: compile, sign, publish all documents, ready", time.Since(t), "")
	r.ControllerPID = ctl.pid()
	cpu := newCPUMeter(ctl, brokerProc)
	progress("controller ready (pid %d) on https://%s, mqtt %s", ctl.pid(), httpAddr, mqttAddr)

	api, err := login(ctx, "https://"+httpAddr, filepath.Join(dataDir, pki.CAFile), password)
	if err != nil {
		return err
	}
	serverPEM, err := os.ReadFile(filepath.Join(dataDir, pki.ServerCertFile))
	if err != nil {
		return err
	}
	block, _ := pem.Decode(serverPEM)
	if block == nil {
		return errors.New("server.pem holds no certificate")
	}
	f, err := newFleet(fleetOptions{
		BrokerAddr: mqttAddr, CAPEM: auth.CAPEM(), ServerCert: block.Bytes, Pin: o.Pin,
		CleanSession: o.CleanSession, Verify: o.Verify, Keys: controllerKeys(auth), Timeout: 60 * time.Second,
	}, certs)
	if err != nil {
		return err
	}
	defer f.disconnectAll()
	n := int64(o.Devices)

	// 3. Connect everyone; initial documents; steady-state memory.
	f.beginPhase(func(*device) uint64 { return 0 })
	prof.start(ctx, "connect")
	cpu.mark()
	t0 := time.Now()
	pctx, pcancel := context.WithTimeout(ctx, o.PhaseTimeout)
	failed, err := f.connectAll(pctx, o.Concurrency)
	pcancel()
	r.add("connect", fmt.Sprintf("all %d connected + subscribed (concurrency %d)", n, o.Concurrency), time.Since(t0), "")
	r.count("connect", "failed connection attempts", failed)
	if err != nil {
		return err
	}
	progress("all %d connected in %s", n, time.Since(t0).Round(time.Millisecond))
	if err := waitCount(ctx, &f.got, n, o.PhaseTimeout); err != nil {
		return fmt.Errorf("initial documents: %w", err)
	}
	r.add("connect", "every device holds its retained document (from first dial)", spreadOf(f.devices, gotAt, t0).Max, "")
	if err := waitInSync(ctx, api, n, o); err != nil {
		return fmt.Errorf("initial status: %w", err)
	}
	r.add("connect", "controller counts all in sync (GET /api/v1/status)", time.Since(t0), "")
	r.cpu("connect", cpu)
	prof.stop(ctx)
	if err := sleepCtx(ctx, o.Settle); err != nil {
		return err
	}
	r.memory("connect", fmt.Sprintf("steady state, %d connections, after %s", n, o.Settle), ctl, brokerProc, o.Broker == "embedded" && o.Devices >= 10000)
	prof.heap(ctx, "connect")

	// 4. One change that touches every device.
	f.beginPhase(func(d *device) uint64 { return d.rev.Load() })
	prof.start(ctx, "change")
	cpu.mark()
	callStart := time.Now()
	if _, err := api.SetBanner(ctx, "loadgen "+time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
		return fmt.Errorf("set banner: %w", err)
	}
	t0 = time.Now()
	r.add("change", "PUT /api/v1/settings/banner", t0.Sub(callStart), "")
	if err := waitCount(ctx, &f.got, n, o.PhaseTimeout); err != nil {
		return fmt.Errorf("new documents: %w", err)
	}
	s := spreadOf(f.devices, gotAt, t0)
	r.add("change", fmt.Sprintf("every device holds the new document (p50 %s, p99 %s)", ms(s.P50), ms(s.P99)), s.Max, "")
	if err := waitCount(ctx, &f.acked, n, o.PhaseTimeout); err != nil {
		return fmt.Errorf("status acknowledgements: %w", err)
	}
	s = spreadOf(f.devices, ackAt, t0)
	ackWhat := "every status report acknowledged (PUBACK after SQLite commit)"
	if o.Broker != "embedded" {
		ackWhat = "every status report acknowledged by mosquitto"
	}
	r.add("change", fmt.Sprintf("%s (p50 %s, p99 %s)", ackWhat, ms(s.P50), ms(s.P99)), s.Max, "")
	if err := waitInSync(ctx, api, n, o); err != nil {
		return fmt.Errorf("status after the change: %w", err)
	}
	target := "≤ 3 s"
	if o.Broker != "embedded" {
		target = "reference for ≤ 1.5×"
	}
	r.add("change", fmt.Sprintf("change → all applied and reported: controller counts all %d in sync (polled every %s)", n, o.Poll), time.Since(t0), target)
	r.cpu("change", cpu)
	prof.stop(ctx)
	r.memory("change", "after the change", ctl, brokerProc, false)
	prof.heap(ctx, "change")

	// 5. Reconnect storm.
	f.beginPhase(func(d *device) uint64 { return d.rev.Load() - 1 })
	lostBefore := f.lost.Load()
	prof.start(ctx, "storm")
	cpu.mark()
	t0 = time.Now()
	for _, d := range f.devices {
		d.cut()
	}
	if err := waitCount(ctx, &f.lost, lostBefore+n, 30*time.Second); err != nil {
		return fmt.Errorf("storm: clients noticing the cut: %w", err)
	}
	r.add("storm", "cut every TCP connection (RST), all clients noticed", time.Since(t0), "")
	t0 = time.Now()
	pctx, pcancel = context.WithTimeout(ctx, o.PhaseTimeout)
	failed, err = f.connectAll(pctx, o.StormConcurrency)
	pcancel()
	conc := "all at once"
	if o.StormConcurrency > 0 {
		conc = fmt.Sprintf("concurrency %d", o.StormConcurrency)
	}
	r.add("storm", fmt.Sprintf("all %d reconnected + subscribed (%s)", n, conc), time.Since(t0), "survive")
	r.count("storm", "failed connection attempts (retried after 1-2 s)", failed)
	if err != nil {
		return fmt.Errorf("storm: %w", err)
	}
	if err := waitCount(ctx, &f.got, n, o.PhaseTimeout); err != nil {
		return fmt.Errorf("storm: documents after reconnect: %w", err)
	}
	r.add("storm", "every device holds its document again", spreadOf(f.devices, gotAt, t0).Max, "")
	up := !ctl.exited() && (brokerProc == nil || !brokerProc.exited())
	if up {
		st, err := api.FleetStatus(ctx)
		up = err == nil
		if err == nil {
			r.count("storm", "controller answers GET /api/v1/status after the storm: devices online", int64(st.Online))
		}
	}
	r.ControllerSurvived = up
	r.cpu("storm", cpu)
	prof.stop(ctx)
	r.memory("storm", "after the storm", ctl, brokerProc, false)
	prof.heap(ctx, "storm")
	r.count("run", "documents that failed verification", f.badDocs.Load())
	r.count("run", "status publishes not acknowledged in time", f.pubFailures.Load())
	if !up {
		return fmt.Errorf("the controller or broker did not survive the storm; log: %s", ctl.log)
	}
	if f.badDocs.Load() > 0 {
		return fmt.Errorf("%d documents failed verification (first: %v)", f.badDocs.Load(), f.err())
	}
	return nil
}

func gotAt(d *device) int64 { return d.gotAt.Load() }
func ackAt(d *device) int64 { return d.ackAt.Load() }

func login(ctx context.Context, url, caFile, password string) (*client.Client, error) {
	anon, err := client.New(client.Options{BaseURL: url, CAFile: caFile})
	if err != nil {
		return nil, err
	}
	lr, err := anon.Login(ctx, adminName, password)
	if err != nil {
		return nil, fmt.Errorf("log in as %s: %w", adminName, err)
	}
	return client.New(client.Options{BaseURL: url, CAFile: caFile, Token: lr.Token})
}

// waitInSync polls the fleet summary until the controller counts want
// devices in sync.
func waitInSync(ctx context.Context, api *client.Client, want int64, o options) error {
	deadline := time.Now().Add(o.PhaseTimeout)
	last := -1
	for {
		st, err := api.FleetStatus(ctx)
		if err == nil {
			last = st.InSync
			if int64(st.InSync) >= want {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("controller counts %d of %d in sync after %s (last error: %v)", last, want, o.PhaseTimeout, err)
		}
		if err := sleepCtx(ctx, o.Poll); err != nil {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// cpuMeter reports the CPU the controller (and external broker) used since
// the last mark.
type cpuMeter struct {
	ctl, broker *child
	at          time.Time
	ctlCPU      float64
	brokerCPU   float64
}

func newCPUMeter(ctl, broker *child) *cpuMeter { return &cpuMeter{ctl: ctl, broker: broker} }

func (c *cpuMeter) mark() {
	c.at = time.Now()
	c.ctlCPU = cpuSeconds(c.ctl.pid())
	if c.broker != nil {
		c.brokerCPU = cpuSeconds(c.broker.pid())
	}
}

// report is everything measured, for the table and -o json.
type report struct {
	Devices            int       `json:"devices"`
	Broker             string    `json:"broker"`
	CleanSession       bool      `json:"clean_session"`
	Verify             bool      `json:"verify"`
	Pin                bool      `json:"pin_server_cert"`
	Concurrency        int       `json:"concurrency"`
	StormConcurrency   int       `json:"storm_concurrency"`
	Started            time.Time `json:"started"`
	LoadAvgStart       string    `json:"load_avg_start"`
	LoadAvgEnd         string    `json:"load_avg_end"`
	ControllerPID      int       `json:"controller_pid"`
	ControllerSurvived bool      `json:"controller_survived_storm"`
	Metrics            []metric  `json:"metrics"`
	Error              string    `json:"error,omitempty"`
}

type metric struct {
	Phase   string   `json:"phase"`
	What    string   `json:"what"`
	Seconds *float64 `json:"seconds,omitempty"`
	Count   *int64   `json:"count,omitempty"`
	MB      *float64 `json:"mb,omitempty"`
	Target  string   `json:"target,omitempty"`
}

func (r *report) add(phase, what string, d time.Duration, target string) {
	s := d.Seconds()
	r.Metrics = append(r.Metrics, metric{Phase: phase, What: what, Seconds: &s, Target: target})
}

func (r *report) count(phase, what string, n int64) {
	r.Metrics = append(r.Metrics, metric{Phase: phase, What: what, Count: &n})
}

func (r *report) mb(phase, what string, bytes int64, target string) {
	v := float64(bytes) / (1 << 20)
	r.Metrics = append(r.Metrics, metric{Phase: phase, What: what, MB: &v, Target: target})
}

func (r *report) cpu(phase string, c *cpuMeter) {
	wall := time.Since(c.at).Seconds()
	used := cpuSeconds(c.ctl.pid()) - c.ctlCPU
	r.Metrics = append(r.Metrics, metric{Phase: phase, What: fmt.Sprintf("controller CPU seconds over %.2f s wall", wall), Seconds: &used})
	if c.broker != nil {
		b := cpuSeconds(c.broker.pid()) - c.brokerCPU
		r.Metrics = append(r.Metrics, metric{Phase: phase, What: fmt.Sprintf("mosquitto CPU seconds over %.2f s wall", wall), Seconds: &b})
	}
}

func (r *report) memory(phase, when string, ctl, broker *child, target bool) {
	t := ""
	if target {
		t = "≤ 400 MB"
	}
	if m, err := readMemory(ctl.pid()); err == nil {
		r.mb(phase, "controller VmRSS, "+when, m.RSS, t)
		r.mb(phase, "controller VmHWM (peak so far)", m.HWM, "")
	}
	if live, goal, ok := lastGC(ctl.log); ok {
		r.mb(phase, fmt.Sprintf("controller Go heap live after its last GC (gctrace; next GC goal %d MB)", goal>>20), live, "")
	}
	if broker != nil {
		if m, err := readMemory(broker.pid()); err == nil {
			r.mb(phase, "mosquitto VmRSS, "+when, m.RSS, "")
			r.mb(phase, "mosquitto VmHWM (peak so far)", m.HWM, "")
		}
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "loadgen: %d devices, broker %s, clean session %v, verify %v, load average %s → %s\n",
		r.Devices, r.Broker, r.CleanSession, r.Verify, r.LoadAvgStart, r.LoadAvgEnd)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tMEASURE\tVALUE\tTARGET")
	for _, m := range r.Metrics {
		var v string
		switch {
		case m.Seconds != nil:
			v = fmt.Sprintf("%.3f s", *m.Seconds)
		case m.Count != nil:
			v = fmt.Sprint(*m.Count)
		case m.MB != nil:
			v = fmt.Sprintf("%.0f MB", *m.MB)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Phase, m.What, v, m.Target)
	}
	tw.Flush()
	if r.Error != "" {
		fmt.Fprintln(w, "error:", strings.TrimSpace(r.Error))
	} else {
		fmt.Fprintf(w, "controller survived the storm: %v\n", r.ControllerSurvived)
	}
}
