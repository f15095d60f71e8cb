// Package apps is the agent's app reconciler: it brings the apps installed
// and running on the device in line with the apps of the applied document.
//
// Each pass diffs the document's apps against what is installed, keyed by
// name and version (added, updated, removed):
//
//   - removed (installed, no longer assigned): stopped, then its files, logs
//     and data directory are deleted;
//   - kept (installed at the assigned version): started if no driver runs it
//     (after an agent restart, including one after kill -9: the installer's
//     Recover leaves exactly one complete current version, and that is the
//     one started); its signature is checked against the document's
//     publisher keys, and if no key verifies it any more it keeps running
//     but is flagged "publisher key removed";
//   - added or updated (a different version, or different manifest bytes):
//     the signature is verified against the document's keys of the
//     manifest's publisher, installation guidance is checked again on the
//     device (manifest.Guide: dependencies and upgrade rules; Block means it
//     is not installed, with the reasons reported), then agent/install
//     downloads, verifies and moves it into place while the previous
//     version keeps running. Only then is the previous version stopped and
//     the new one started (stop-then-start: two versions of one app would
//     usually clash on a port or a data directory). If the new version
//     cannot be started, the previous one is made current again and
//     restarted. Apps are installed in dependency order.
//
// The loop: Run is the device's one reconcile loop. Submit hands it each
// newly applied policy; it runs one pass at a time, towards the latest
// policy, and passes again when a failed install is due for a retry. A pass
// goes through explicit phases (Progress): removing, starting (kept apps),
// then per install pending → downloading → verifying → installing →
// switching (stop the old version, start the new one). A newer policy
// pre-empts a pass that is still fetching or checking: its context is
// cancelled, the download stops (what was received stays in staging and is
// resumed if the same artifact is wanted again), and the next pass starts
// on the new policy at once. A switch that has begun is never cut short: it
// runs on a context without cancellation (every driver command has its own
// timeout), so an app is never left stopped half-way.
//
// Failures: a download or disk failure (install.ErrDownload, ErrInstall) is
// retried with exponential backoff (Run owns the retry timer); a manifest
// that fails verification or an artifact that does not match
// (install.ErrVerify, ErrArtifact) is never retried for the same manifest
// bytes, only a new document can change it. Downgrades are allowed on the
// device: the controller refuses them at assignment unless the admin forced
// them, and the signed document carries that decision.
//
// The removed-publisher-key signal: the controller keeps the app assigned
// in the document but its publisher's key is gone from Publishers (or the
// publisher entirely). The app is then not installable (a new version or a
// reinstall fails verification), while the version already running keeps
// running and reports reason "publisher key removed". Unassigning it
// removes it as usual.
//
// States reported by Apps (for status reports): pending, downloading,
// verifying, installing (an install in progress of the version shown),
// running, stopped, failed (with a reason), installed (in place but not
// run). Every change calls Options.OnChange so the agent publishes status.
package apps

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/edgewarden/edgewarden/agent/apply"
	"github.com/edgewarden/edgewarden/agent/backoff"
	"github.com/edgewarden/edgewarden/agent/install"
	"github.com/edgewarden/edgewarden/agent/runtime"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// Options configure a Reconciler.
type Options struct {
	// AppsDir holds installed apps; StagingDir downloads in progress (same
	// file system). Required.
	AppsDir, StagingDir string
	// DataDir holds one writable directory per app (DataDir/NAME).
	// Required.
	DataDir string
	// Fetch downloads artifacts (see NewFetch). Required.
	Fetch install.FetchFunc
	// Drivers run apps, keyed by manifest runtime (manifest.RuntimeProcess,
	// manifest.RuntimeSystemd). An app whose runtime has no driver fails
	// with a reason. At least one is required.
	Drivers map[string]runtime.Driver
	// OnChange, if set, is called whenever an app's reported state
	// changes. It must not block.
	OnChange func()
	// MinRetry and MaxRetry bound the backoff between attempts of a failed
	// install (agent/backoff: doubling, jittered to [d/2, d]). Zero means 5s and 5m.
	MinRetry, MaxRetry time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Journal records each install's plan and steps before they act and
	// queues the app_installed event when it completes (intents.go). Nil:
	// nothing is recorded and no install events are reported.
	Journal Journal
}

// Phases of the reconcile loop (Progress).
const (
	PhaseIdle      = "idle"      // waiting for a policy or a due retry
	PhaseRemoving  = "removing"  // stopping and deleting unassigned apps
	PhaseStarting  = "starting"  // starting installed apps nothing runs
	PhaseSwitching = "switching" // stopping the old version, starting the new
	// and the installer's steps: protocol.AppPending, AppDownloading,
	// AppVerifying, AppInstalling.
)

// Reconciler implements the agent's AppReconciler and the local API's Apps.
// Reconcile runs one pass; Run owns the retry timer. Passes are serialised.
type Reconciler struct {
	opts Options
	log  *slog.Logger
	in   *install.Installer

	passMu sync.Mutex // one pass at a time
	runMu  sync.Mutex // driver start/stop (short), shared with the local API

	mu     sync.Mutex
	policy *apply.Policy
	apps   map[string]*entry
	wake   chan struct{}
	// pending is the policy Submit handed in and Run has not taken yet;
	// cancelPass pre-empts the pass in flight (nil: none). Guarded by mu.
	pending    *apply.Policy
	cancelPass context.CancelFunc
	// phase of the loop and when it last made progress (a phase change,
	// bytes of a download). Guarded by mu.
	phase    string
	phaseRev uint64
	lastStep time.Time
	// plans are the open install intents by app (intents.go). Guarded by mu.
	plans map[string]*installPlan
}

// entry is what the reconciler knows of one app name. Guarded by mu.
type entry struct {
	// version is the installed current version ("" if none) and runtime the
	// driver key it runs with.
	version, runtime string
	// phase/target/reason describe an install of target: in progress
	// (pending…installing) or failed. Empty phase: nothing pending.
	phase, target, reason string
	// flag is a standing remark on the running version ("publisher key
	// removed: …"); startErr why it could not be started.
	flag, startErr string
	// operatorStopped: stopped through the local API; not restarted by a
	// pass until started again (or the agent restarts).
	operatorStopped bool
	// sideloaded: installed from a local package (local.go), not from
	// the document.
	sideloaded bool
	// permanent failures by attemptKey; retry state of the target.
	permanent map[[32]byte]string
	attempts  int
	retryAt   time.Time
	retryFor  [32]byte
}

// New creates the reconciler and its installer, and runs the installer's
// Recover once (clearing what an interrupted install left).
func New(opts Options) (*Reconciler, error) {
	if opts.AppsDir == "" || opts.StagingDir == "" || opts.DataDir == "" || opts.Fetch == nil || len(opts.Drivers) == 0 {
		return nil, errors.New("apps: AppsDir, StagingDir, DataDir, Fetch and Drivers are required")
	}
	if opts.MinRetry <= 0 {
		opts.MinRetry = 5 * time.Second
	}
	if opts.MaxRetry <= 0 {
		opts.MaxRetry = 5 * time.Minute
	}
	if opts.MaxRetry < opts.MinRetry {
		opts.MaxRetry = opts.MinRetry
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Reconciler{opts: opts, log: opts.Logger, apps: make(map[string]*entry), wake: make(chan struct{}, 1),
		phase: PhaseIdle, lastStep: opts.Now(), plans: map[string]*installPlan{}}
	in, err := install.New(install.Options{
		AppsDir:    opts.AppsDir,
		StagingDir: opts.StagingDir,
		Fetch:      r.fetch,
		Progress:   r.progress,
		Step:       r.step,
		Logger:     opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	if err := in.Recover(); err != nil {
		return nil, fmt.Errorf("apps: %w", err)
	}
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("apps: create data directory: %w", err)
	}
	r.in = in
	ctx, cancel := context.WithTimeout(context.Background(), journalTimeout)
	defer cancel()
	if err := r.recoverInstalls(ctx); err != nil {
		return nil, fmt.Errorf("apps: finish interrupted installs: %w", err)
	}
	return r, nil
}

func (r *Reconciler) changed() {
	if r.opts.OnChange != nil {
		r.opts.OnChange()
	}
}

// entryLocked returns the entry of name, creating it. Call with mu held.
func (r *Reconciler) entryLocked(name string) *entry {
	e := r.apps[name]
	if e == nil {
		e = &entry{permanent: make(map[[32]byte]string)}
		r.apps[name] = e
	}
	return e
}

func (r *Reconciler) update(name string, f func(e *entry)) {
	r.mu.Lock()
	f(r.entryLocked(name))
	r.mu.Unlock()
	r.changed()
}

// Progress is the loop's current phase (one of the Phase constants or an
// installer step) and when it last made progress. The agent feeds the
// systemd watchdog only while a phase other than idle keeps progressing.
func (r *Reconciler) Progress() (phase string, revision uint64, last time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.phase, r.phaseRev, r.lastStep
}

// setPhase enters a phase (progress). Call without mu.
func (r *Reconciler) setPhase(phase string) {
	r.mu.Lock()
	r.phase, r.lastStep = phase, r.opts.Now()
	r.mu.Unlock()
}

// fetch is Options.Fetch whose bodies count as progress as bytes arrive.
func (r *Reconciler) fetch(ctx context.Context, digest string, offset int64) (io.ReadCloser, error) {
	rc, err := r.opts.Fetch(ctx, digest, offset)
	if err != nil {
		return nil, err
	}
	return progressReader{rc, r}, nil
}

type progressReader struct {
	io.ReadCloser
	r *Reconciler
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.ReadCloser.Read(b)
	if n > 0 {
		p.r.mu.Lock()
		p.r.lastStep = p.r.opts.Now()
		p.r.mu.Unlock()
	}
	return n, err
}

// progress receives the installer's steps.
func (r *Reconciler) progress(p install.Progress) {
	switch p.State {
	case protocol.AppPending, protocol.AppDownloading, protocol.AppVerifying, protocol.AppInstalling:
		r.mu.Lock()
		r.phase, r.lastStep = p.State, r.opts.Now()
		e := r.entryLocked(p.Name)
		same := e.phase == p.State && e.target == p.Version
		e.phase, e.target, e.reason = p.State, p.Version, ""
		r.mu.Unlock()
		if !same {
			r.changed()
		}
	}
}

// Reconcile runs one pass towards p now (p becomes the policy retries
// use) and returns when it is done or ctx is. Passes never overlap. The
// agent uses Submit and Run instead; Reconcile serves one-shot callers.
func (r *Reconciler) Reconcile(ctx context.Context, p *apply.Policy) error {
	if p == nil || p.Doc == nil {
		return nil
	}
	r.mu.Lock()
	r.policy = p
	r.mu.Unlock()
	err := r.pass(ctx, p)
	notify(r.wake)
	return err
}

// Submit hands Run a newly applied policy. It never blocks: only the
// latest submitted policy is kept, and a pass in flight is pre-empted
// (see the package comment) so the loop turns to p at once.
func (r *Reconciler) Submit(p *apply.Policy) {
	if p == nil || p.Doc == nil {
		return
	}
	r.mu.Lock()
	r.pending = p
	cancel := r.cancelPass
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	notify(r.wake)
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Run is the device's one reconcile loop (see the package comment): a
// pass on every submitted policy, and again when a failed install is due,
// until ctx is done. passed, if not nil, is called after every pass that
// was not pre-empted (the agent re-checks the sideload guard and reports).
func (r *Reconciler) Run(ctx context.Context, passed func(p *apply.Policy)) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		passCtx, cancel := context.WithCancel(ctx)
		// Taking the pending policy and publishing the pass's cancel in
		// one critical section: a Submit either is seen here or cancels
		// this pass.
		r.mu.Lock()
		p, submitted := r.pending, r.pending != nil
		if submitted {
			r.policy, r.pending = p, nil
		} else {
			p = r.policy
		}
		due := p != nil && (submitted || r.nextRetryLocked() == 0)
		if due {
			r.cancelPass = cancel
			r.phase, r.phaseRev, r.lastStep = PhaseStarting, p.Revision, r.opts.Now()
		}
		r.mu.Unlock()
		if !due {
			cancel()
			t.Reset(r.nextRetry())
			select {
			case <-ctx.Done():
				return
			case <-r.wake:
			case <-t.C:
			}
			continue
		}
		err := r.pass(passCtx, p)
		preempted := passCtx.Err() != nil && ctx.Err() == nil
		r.mu.Lock()
		r.cancelPass = nil
		r.phase, r.lastStep = PhaseIdle, r.opts.Now()
		r.mu.Unlock()
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case preempted:
			r.log.Info("newer desired state pre-empted the reconcile pass", "revision", p.Revision)
		case err != nil:
			r.log.Error("reconcile apps", "revision", p.Revision, "err", err)
		}
		if !preempted && passed != nil {
			passed(p)
		}
	}
}

// nextRetry is the time until the earliest due retry (an hour if none).
func (r *Reconciler) nextRetry() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nextRetryLocked()
}

func (r *Reconciler) nextRetryLocked() time.Duration {
	d := time.Hour
	now := r.opts.Now()
	for _, e := range r.apps {
		if !e.retryAt.IsZero() {
			d = min(d, max(e.retryAt.Sub(now), 0))
		}
	}
	return d
}

// pass is one reconciliation towards p.
func (r *Reconciler) pass(ctx context.Context, p *apply.Policy) error {
	r.passMu.Lock()
	defer r.passMu.Unlock()
	desired := make(map[string]protocol.AppAssignment, len(p.Doc.Apps))
	for _, a := range p.Doc.Apps {
		desired[a.Name] = a
	}
	keys := make(map[string][]string, len(p.Doc.Publishers))
	for _, pub := range p.Doc.Publishers {
		keys[pub.Name] = append(keys[pub.Name], pub.Keys...)
	}
	installed, err := r.in.Installed()
	if err != nil {
		return fmt.Errorf("list installed apps: %w", err)
	}
	// Removing and starting run to the end once begun (a newer policy
	// pre-empts only fetching and checking): steady is ctx without its
	// cancellation; every driver command has its own timeout.
	steady := context.WithoutCancel(ctx)
	// Sideloaded apps are not the document's to remove (local.go).
	side := r.sideloadedApps(steady, p, installed, desired)

	// Removed.
	r.setPhase(PhaseRemoving)
	for _, name := range slices.Sorted(maps.Keys(installed)) {
		if _, ok := desired[name]; !ok {
			if err := r.remove(steady, name); err != nil {
				r.log.Error("remove unassigned app", "app", name, "err", err)
			} else {
				delete(installed, name)
			}
		}
	}
	r.mu.Lock()
	for name := range r.apps {
		if _, ok := desired[name]; !ok {
			if _, inst := installed[name]; !inst && !side[name] {
				delete(r.apps, name)
			}
		}
	}
	r.mu.Unlock()

	// Kept: the installed current version of each assigned app runs.
	r.setPhase(PhaseStarting)
	var pending []string
	for _, name := range slices.Sorted(maps.Keys(desired)) {
		a := desired[name]
		if _, ok := installed[name]; ok {
			cur, err := r.in.CurrentApp(name)
			if err != nil {
				r.log.Error("read installed app", "app", name, "err", err)
			} else {
				r.keep(steady, cur, keys[manifestPublisherOf(cur.Manifest)])
				if cur.Version == a.Version && string(cur.Manifest) == string(a.Manifest) {
					r.update(name, func(e *entry) { e.phase, e.target, e.reason, e.attempts, e.retryAt = "", "", "", 0, time.Time{} })
					continue
				}
			}
		}
		pending = append(pending, name)
	}

	// Added and updated, dependencies first.
	for _, name := range dependencyOrder(pending, desired) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.installOne(ctx, desired[name], keys[desired[name].Publisher], installed)
	}
	return nil
}

// manifestPublisherOf reads the publisher of an installed manifest (it was
// verified at install time).
func manifestPublisherOf(raw []byte) string {
	m, err := manifest.Parse(raw)
	if err != nil {
		return ""
	}
	return m.Publisher
}

// keep starts an installed current version if nothing runs it, and flags it
// if its publisher's keys in the document no longer verify it.
func (r *Reconciler) keep(ctx context.Context, cur *install.InstalledApp, keys []string) {
	m, err := manifest.Parse(cur.Manifest)
	if err != nil {
		r.update(cur.Name, func(e *entry) { e.version, e.startErr = cur.Version, "installed manifest unreadable: "+err.Error() })
		return
	}
	flag := ""
	if _, err := manifest.VerifySignature(m.Publisher, cur.Manifest, cur.Signature, keys); err != nil {
		flag = "publisher key removed: the document no longer holds a key of publisher " + m.Publisher + " that verifies this version; it keeps running but cannot be reinstalled or upgraded with these keys"
	}
	r.mu.Lock()
	e := r.entryLocked(cur.Name)
	changedFlag := e.flag != flag
	e.version, e.runtime, e.flag = cur.Version, m.Runtime, flag
	stopped := e.operatorStopped
	r.mu.Unlock()
	if changedFlag {
		if flag != "" {
			r.log.Warn("running app's publisher key was removed; it keeps running", "app", cur.Name, "version", cur.Version, "publisher", m.Publisher)
		}
		r.changed()
	}
	if stopped {
		return
	}
	r.ensureRunning(ctx, cur.Name, m, false)
}

// ensureRunning starts m (the current version of name) unless its driver
// already runs it (or, without force, has given up on it).
func (r *Reconciler) ensureRunning(ctx context.Context, name string, m *manifest.Manifest, force bool) error {
	drv := r.opts.Drivers[m.Runtime]
	if drv == nil {
		err := fmt.Errorf("runtime %q is not supported by this agent", m.Runtime)
		r.update(name, func(e *entry) { e.startErr = err.Error() })
		return err
	}
	r.runMu.Lock()
	defer r.runMu.Unlock()
	st := drv.Status(ctx, name)
	if st.Version == m.Version && (st.State == protocol.AppRunning || (!force && st.State != "")) {
		return nil
	}
	if st.State == protocol.AppRunning {
		if err := drv.Stop(ctx, name); err != nil {
			return err
		}
	}
	err := r.start(ctx, drv, name, m)
	r.update(name, func(e *entry) {
		e.startErr = ""
		if err != nil {
			e.startErr = err.Error()
		}
	})
	return err
}

func (r *Reconciler) start(ctx context.Context, drv runtime.Driver, name string, m *manifest.Manifest) error {
	data := filepath.Join(r.opts.DataDir, name)
	if err := os.MkdirAll(data, 0o750); err != nil {
		return fmt.Errorf("start %s: create data directory: %w", name, err)
	}
	err := drv.Start(ctx, runtime.App{Name: name, Version: m.Version, Dir: r.in.Dir(name), DataDir: data, Exec: m.Exec})
	if err != nil {
		r.log.Warn("app did not start", "app", name, "version", m.Version, "err", err)
		return err
	}
	r.log.Info("app started", "app", name, "version", m.Version, "runtime", m.Runtime)
	return nil
}

// stopAll stops name in every driver (the old version may have run under
// another runtime).
func (r *Reconciler) stopAll(ctx context.Context, name string) {
	for _, k := range slices.Sorted(maps.Keys(r.opts.Drivers)) {
		if err := r.opts.Drivers[k].Stop(ctx, name); err != nil {
			r.log.Warn("stop app", "app", name, "runtime", k, "err", err)
		}
	}
}

// remove stops an unassigned app and deletes it, its logs and its data.
func (r *Reconciler) remove(ctx context.Context, name string) error {
	r.runMu.Lock()
	for _, k := range slices.Sorted(maps.Keys(r.opts.Drivers)) {
		if err := r.opts.Drivers[k].Remove(ctx, name); err != nil {
			r.runMu.Unlock()
			return err
		}
	}
	r.runMu.Unlock()
	if err := r.in.Remove(name); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(r.opts.DataDir, name)); err != nil {
		return fmt.Errorf("remove data of %s: %w", name, err)
	}
	r.mu.Lock()
	delete(r.apps, name)
	r.mu.Unlock()
	r.log.Info("app removed (unassigned)", "app", name)
	r.changed()
	return nil
}

// installOne installs assignment a (a new app, an upgrade, a downgrade or
// a republished version) and switches to it. installed is updated.
func (r *Reconciler) installOne(ctx context.Context, a protocol.AppAssignment, keys []string, installed map[string]string) {
	digest := attemptKey(a, keys)
	old := installed[a.Name]
	r.mu.Lock()
	e := r.entryLocked(a.Name)
	if reason, ok := e.permanent[digest]; ok {
		e.phase, e.target, e.reason = protocol.AppFailed, a.Version, reason
		r.mu.Unlock()
		return
	}
	if e.retryFor == digest && r.opts.Now().Before(e.retryAt) {
		r.mu.Unlock()
		return // still failed; Run retries when due
	}
	if e.retryFor != digest {
		e.attempts, e.retryAt = 0, time.Time{}
	}
	e.retryFor = digest
	r.mu.Unlock()

	fail := func(err error, retry bool) {
		reason := err.Error()
		r.mu.Lock()
		e := r.entryLocked(a.Name)
		if retry {
			delay := backoff.Delay(e.attempts, r.opts.MinRetry, r.opts.MaxRetry)
			e.attempts++
			e.retryAt = r.opts.Now().Add(delay)
			reason += fmt.Sprintf("; retrying in %s", delay.Round(time.Second))
		} else {
			e.permanent[digest] = reason
			e.retryAt = time.Time{}
		}
		if old != "" && old != a.Version {
			reason += "; version " + old + " keeps running"
		}
		e.phase, e.target, e.reason = protocol.AppFailed, a.Version, reason
		r.mu.Unlock()
		r.log.Warn("app not installed", "app", a.Name, "version", a.Version, "retry", retry, "err", err)
		r.changed()
	}

	// Verify and check guidance before downloading anything.
	if _, err := manifest.VerifySignature(a.Publisher, a.Manifest, a.Signature, keys); err != nil {
		fail(fmt.Errorf("%w: %s@%s: %v; not installed", install.ErrVerify, a.Name, a.Version, err), false)
		return
	}
	m, err := manifest.Parse(a.Manifest)
	if err != nil {
		fail(fmt.Errorf("%w: %s@%s: %v; not installed", install.ErrVerify, a.Name, a.Version, err), false)
		return
	}
	if adv := manifest.Guide(m, installed, manifest.GuideOptions{AllowDowngrade: true}); adv.Verdict == manifest.Block {
		reason := "blocked by installation guidance: " + strings.Join(adv.Reasons, "; ")
		r.mu.Lock()
		e := r.entryLocked(a.Name)
		e.phase, e.target, e.reason, e.retryAt = protocol.AppFailed, a.Version, reason, time.Time{}
		if old != "" && old != a.Version {
			e.reason += "; version " + old + " keeps running"
		}
		r.mu.Unlock()
		r.log.Warn("app install blocked", "app", a.Name, "version", a.Version, "reasons", adv.Reasons)
		r.changed()
		return
	}

	plan, err := r.beginInstall(a, old)
	if err != nil {
		fail(fmt.Errorf("%w: record the install of %s@%s before acting: %v", install.ErrInstall, a.Name, a.Version, err), true)
		return
	}
	if err := r.in.Install(ctx, a, keys); err != nil {
		r.endInstall(plan) // nothing changed: the previous version stays current
		if ctx.Err() != nil {
			return // pre-empted by a newer policy, or shutting down: the next pass resumes
		}
		retry := errors.Is(err, install.ErrDownload) || errors.Is(err, install.ErrInstall)
		fail(err, retry)
		return
	}
	if err := r.step(a.Name, a.Version, StepStart); err != nil {
		// Not recorded: do not switch. The new version is current on disk
		// but not started; its record says activate, so a restart reports
		// it, and the next pass starts it.
		r.endInstall(plan)
		fail(fmt.Errorf("%w: record the start of %s@%s before acting: %v", install.ErrInstall, a.Name, a.Version, err), true)
		return
	}

	// In place and current: stop the old version, start the new one. Once
	// begun the switch is not pre-empted (see the package comment).
	ctx = context.WithoutCancel(ctx)
	r.setPhase(PhaseSwitching)
	r.runMu.Lock()
	r.stopAll(ctx, a.Name)
	drv := r.opts.Drivers[m.Runtime]
	var startErr error
	if drv == nil {
		startErr = fmt.Errorf("runtime %q is not supported by this agent", m.Runtime)
	} else {
		startErr = r.start(ctx, drv, a.Name, m)
	}
	r.runMu.Unlock()
	if startErr != nil {
		r.endInstall(plan) // its failure (and any rollback) shows in status
		err := fmt.Errorf("%s@%s did not start: %w", a.Name, a.Version, startErr)
		if old != "" && old != a.Version {
			if rb := r.rollback(ctx, a.Name, old); rb != nil {
				err = fmt.Errorf("%w; rolling back to %s failed too: %v", err, old, rb)
				old = ""
			} else {
				err = fmt.Errorf("%w; rolled back to %s", err, old)
			}
		}
		fail(err, true)
		return
	}
	installed[a.Name] = a.Version
	hook("started")
	r.endInstall(plan, r.installedEvent(plan, false))
	r.update(a.Name, func(e *entry) {
		e.version, e.runtime, e.flag, e.startErr, e.operatorStopped = a.Version, m.Runtime, "", "", false
		e.phase, e.target, e.reason, e.attempts, e.retryAt = "", "", "", 0, time.Time{}
	})
}

// attemptKey identifies an install attempt: the exact manifest and
// signature and the publisher keys it is checked with. A permanent failure
// is remembered under it, so the same bytes are not fetched again, while a
// new document with other keys (a key added back) gets a fresh attempt.
func attemptKey(a protocol.AppAssignment, keys []string) [32]byte {
	h := sha256.New()
	h.Write(a.Manifest)
	h.Write([]byte{0})
	h.Write(a.Signature)
	for _, k := range keys {
		h.Write([]byte{0})
		h.Write([]byte(k))
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// rollback makes version current again and starts it.
func (r *Reconciler) rollback(ctx context.Context, name, version string) error {
	if err := r.in.Activate(name, version); err != nil {
		return err
	}
	cur, err := r.in.CurrentApp(name)
	if err != nil {
		return err
	}
	m, err := manifest.Parse(cur.Manifest)
	if err != nil {
		return err
	}
	r.update(name, func(e *entry) { e.version, e.runtime = version, m.Runtime })
	return r.ensureRunning(ctx, name, m, true)
}

// dependencyOrder sorts names so that an app comes after the apps it
// depends on (as its manifest says; unparsable manifests keep their place).
func dependencyOrder(names []string, desired map[string]protocol.AppAssignment) []string {
	deps := make(map[string][]string, len(names))
	for _, n := range names {
		if m, err := manifest.Parse(desired[n].Manifest); err == nil {
			for _, d := range m.Dependencies {
				deps[n] = append(deps[n], d.Name)
			}
		}
	}
	var out []string
	state := make(map[string]int) // 1 visiting, 2 done
	var visit func(n string)
	visit = func(n string) {
		if state[n] != 0 {
			return // done, or a cycle (Guide will block it)
		}
		state[n] = 1
		for _, d := range deps[n] {
			if _, ok := deps[d]; ok || slices.Contains(names, d) {
				visit(d)
			}
		}
		state[n] = 2
		out = append(out, n)
	}
	sort.Strings(names)
	for _, n := range names {
		visit(n)
	}
	return out
}

// Apps implements the agent's AppReconciler: the state of every assigned
// or installed app, sorted by name.
func (r *Reconciler) Apps() []protocol.AppStatus {
	return r.list(context.Background())
}

func (r *Reconciler) list(ctx context.Context) []protocol.AppStatus {
	r.mu.Lock()
	snap := make(map[string]entry, len(r.apps))
	for n, e := range r.apps {
		if e.sideloaded && !r.in.Sideloaded(n) {
			delete(r.apps, n) // quarantined by the sideload guard, or replaced
			continue
		}
		snap[n] = *e
	}
	r.mu.Unlock()
	out := make([]protocol.AppStatus, 0, len(snap))
	for _, n := range slices.Sorted(maps.Keys(snap)) {
		out = append(out, r.statusOf(ctx, n, snap[n]))
	}
	return out
}

func (r *Reconciler) statusOf(ctx context.Context, name string, e entry) protocol.AppStatus {
	if e.phase != "" {
		return protocol.AppStatus{Name: name, Version: e.target, State: e.phase, Reason: e.reason, Sideloaded: e.sideloaded}
	}
	if e.version == "" {
		return protocol.AppStatus{Name: name, State: protocol.AppPending}
	}
	st := protocol.AppStatus{Name: name, Version: e.version, State: protocol.AppInstalled, Sideloaded: e.sideloaded}
	var reasons []string
	if e.startErr != "" {
		st.State = protocol.AppFailed
		reasons = append(reasons, e.startErr)
	} else if drv := r.opts.Drivers[e.runtime]; drv != nil {
		ds := drv.Status(ctx, name)
		if ds.State != "" {
			st.State = ds.State
		}
		if ds.Reason != "" {
			reasons = append(reasons, ds.Reason)
		}
	}
	if e.operatorStopped && st.State != protocol.AppRunning {
		reasons = append(reasons, "stopped by an operator")
	}
	if e.flag != "" {
		reasons = append(reasons, e.flag)
	}
	st.Reason = strings.Join(reasons, "; ")
	return st
}
