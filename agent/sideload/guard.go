// Package sideload is the agent's sideload guard. It keeps the apps
// directory (see agent/install for its layout) down to managed apps: app
// directories whose every version carries a manifest signed by a trusted
// publisher of the document in force and whose files are exactly what that
// manifest (and, for unpacked archives, the verified archive the installer
// keeps) says: content by SHA-256, size, type, symlink target and mode.
//
// With sideloading banned (the default), anything else that appears in the
// apps directory — an unknown directory, file or symlink — is blocked, and
// any change to a managed app — modified, added or removed files, changed
// permissions, an unreadable directory, a manifest that no longer verifies —
// is tampering. Either way the guard stops the app, moves its directory to
// QuarantineDir/<timestamp>-<name>/ (kept for forensics, never deleted) and
// reports security events. With sideloading allowed, unknown entries are
// tracked as sideloaded; when the ban returns they are quarantined too.
// Managed apps are integrity-checked either way.
//
// Detection: fsnotify watches on the apps directory and every directory of
// every managed app (fsnotify is not recursive; watches are added as
// directories appear, before they are read), debounced; a full scan at
// start-up, every ScanInterval, after an fsnotify overflow or error, and on
// Recheck. Scans compare digests, not metadata, with a hash cache keyed by
// size, mtime, ctime, inode and device (see fileKey for why ctime makes
// that safe).
package sideload

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/edgewarden/edgewarden/agent/state"
	"github.com/edgewarden/edgewarden/protocol"
)

// Policy is what the guard enforces; Options.Policy returns the one in
// force. The zero value bans sideloading and manages nothing (fail closed).
type Policy struct {
	// SideloadAllowed is the document's sideload policy for this device
	// (protocol.SideloadPolicy.Allowed). False: banned.
	SideloadAllowed bool
	// Managed names the apps the agent manages: those assigned in the
	// document, plus those the reconciler installed and has not removed
	// yet. A directory of another name is not a managed app.
	Managed map[string]bool
	// Leaving names managed apps the document no longer assigns: the
	// reconciler is removing them. The guard leaves them alone (neither
	// sideloaded nor checked: their publisher's keys may have left the
	// document with them). An app stays here only until the reconciler
	// has removed it.
	Leaving map[string]bool
	// Publishers maps a publisher name to its trusted PEM public keys (the
	// document's Publishers); every version of a managed app must carry a
	// manifest signed with one of them, or one the document vouches for.
	Publishers map[string][]string
	// Vouched holds the SHA-256 (hex) of every manifest the verified
	// document carries in its Apps. The controller checked those bytes at
	// checkpoint 1 and signed the document, so they stay trusted when their
	// publisher's key is removed: the rule is that running apps of
	// a removed key keep running (flagged by the reconciler), while the
	// guard still quarantines any manifest the document does not carry.
	Vouched map[string]bool
}

// PolicyFrom builds the Policy of a document (nil: none applied yet, so
// banned and nothing managed) and the names of apps installed by the
// reconciler.
func PolicyFrom(d *protocol.DesiredState, installed []string) Policy {
	p := Policy{Managed: map[string]bool{}, Leaving: map[string]bool{}, Publishers: map[string][]string{}, Vouched: map[string]bool{}}
	for _, n := range installed {
		p.Managed[n] = true
		p.Leaving[n] = true
	}
	if d == nil {
		return p
	}
	p.SideloadAllowed = d.Sideload.Allowed
	for _, a := range d.Apps {
		p.Managed[a.Name] = true
		delete(p.Leaving, a.Name)
		sum := sha256.Sum256(a.Manifest)
		p.Vouched[hex.EncodeToString(sum[:])] = true
	}
	for _, pub := range d.Publishers {
		p.Publishers[pub.Name] = append(p.Publishers[pub.Name], pub.Keys...)
	}
	return p
}

// Options configure a Guard.
type Options struct {
	// AppsDir is the apps directory to guard. Required; created if missing.
	AppsDir string
	// QuarantineDir receives quarantined apps. Required; created (0700) if
	// missing. It must be on the same file system as AppsDir (quarantine is
	// a rename) and outside it.
	QuarantineDir string
	// ScanInterval is how often a full scan runs. Zero means 5 minutes.
	// Nothing polls faster.
	ScanInterval time.Duration
	// Debounce is how long after a first fsnotify event the affected apps
	// are checked, so a burst is checked once. Zero means 50ms.
	Debounce time.Duration
	// Policy returns the policy in force. Required. It is called for every
	// check and must be cheap and safe to call from another goroutine.
	Policy func() Policy
	// Stop stops a running app (the runtime driver). Nil: nothing is
	// stopped. It is called with names that may not be apps at all (a
	// stray file's name) and must treat an unknown name as stopped.
	Stop func(ctx context.Context, app string) error
	// Report queues a security event in the agent's durable outbox.
	// Nil: events are only logged.
	Report func(ctx context.Context, ev protocol.Event) error
	// Journal records each quarantine plan with its events before a file
	// moves and queues the events when it is done (record, then act); Run
	// finishes plans a crash left open before its first scan. Nil: no
	// plan is kept and the events go through Report after acting.
	Journal Journal
	// OnReport, if set, is called for each event once it is queued
	// (metrics, a status report). It must not block.
	OnReport func(ev protocol.Event)
	// OnChange, if set, is called when the sideloaded or quarantined apps
	// change (for a status report). It must not block.
	OnChange func()
	// Logger. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// NewEventID makes event ids. Nil means random 128-bit hex.
	NewEventID func() string
}

// Journal is the durable record of intents: the agent's SQLite state
// (*state.Store) implements it.
type Journal interface {
	RecordIntent(ctx context.Context, kind, id string, plan []byte) error
	// CompleteIntent queues events and forgets the intent, in one
	// transaction; completing a forgotten intent queues nothing.
	CompleteIntent(ctx context.Context, id string, events []protocol.Event) error
	OpenIntents(ctx context.Context, kind string) ([]state.Intent, error)
}

var _ Journal = (*state.Store)(nil)

// Quarantine records one app moved to quarantine.
type Quarantine struct {
	App  string    `json:"app"`
	Path string    `json:"path"` // where its files are now
	Kind string    `json:"kind"` // the finding that caused it
	At   time.Time `json:"at"`
}

// Guard watches the apps directory. Create it with New, run it with Run.
// Its status methods are safe to call from any goroutine.
type Guard struct {
	opts Options
	log  *slog.Logger

	// Owned by Run's goroutine.
	w        *fsnotify.Watcher
	watched  map[string]bool
	cache    hashCache
	verified map[string]bool
	listings map[string]tree
	reported map[string]string // app -> findings already reported (quarantine failing)

	recheck chan struct{}
	inject  chan error // tests: simulate watcher errors (overflow)

	mu          sync.Mutex
	sideloaded  map[string]time.Time
	quarantined []Quarantine
	lastScan    time.Time
	scans       uint64
}

// maxQuarantineLog bounds the quarantines remembered for status.
const maxQuarantineLog = 32

// New checks opts and creates the directories.
func New(opts Options) (*Guard, error) {
	if opts.AppsDir == "" || opts.QuarantineDir == "" || opts.Policy == nil {
		return nil, errors.New("sideload guard: AppsDir, QuarantineDir and Policy are required")
	}
	apps, err := filepath.Abs(opts.AppsDir)
	if err != nil {
		return nil, fmt.Errorf("sideload guard: apps directory: %w", err)
	}
	q, err := filepath.Abs(opts.QuarantineDir)
	if err != nil {
		return nil, fmt.Errorf("sideload guard: quarantine directory: %w", err)
	}
	if rel, err := filepath.Rel(apps, q); err == nil && (rel == "." || !strings.HasPrefix(rel, "..")) {
		return nil, fmt.Errorf("sideload guard: quarantine directory %s is inside the apps directory %s; put it next to it", q, apps)
	}
	opts.AppsDir, opts.QuarantineDir = apps, q
	if opts.ScanInterval <= 0 {
		opts.ScanInterval = 5 * time.Minute
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 50 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.NewEventID == nil {
		opts.NewEventID = randomID
	}
	if err := os.MkdirAll(apps, 0o755); err != nil {
		return nil, fmt.Errorf("sideload guard: %w", err)
	}
	if err := os.MkdirAll(q, 0o700); err != nil {
		return nil, fmt.Errorf("sideload guard: %w", err)
	}
	return &Guard{
		opts:       opts,
		log:        opts.Logger.With("component", "sideload"),
		watched:    map[string]bool{},
		cache:      hashCache{entries: map[string]cached{}},
		verified:   map[string]bool{},
		listings:   map[string]tree{},
		reported:   map[string]string{},
		recheck:    make(chan struct{}, 1),
		inject:     make(chan error, 1),
		sideloaded: map[string]time.Time{},
	}, nil
}

func randomID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Recheck asks for a full scan soon (e.g. after a new policy was applied:
// the ban may be back). It does not block.
func (g *Guard) Recheck() {
	select {
	case g.recheck <- struct{}{}:
	default:
	}
}

// Sideloaded returns the names of the sideloaded apps tracked (with
// sideloading allowed), sorted.
func (g *Guard) Sideloaded() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, 0, len(g.sideloaded))
	for n := range g.sideloaded {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Quarantined returns the most recent quarantines, oldest first.
func (g *Guard) Quarantined() []Quarantine {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Quarantine(nil), g.quarantined...)
}

// Apps returns status entries for sideloaded apps (State installed,
// Sideloaded true) and quarantined ones, for status reports; the caller
// may replace State with what the runtime knows.
func (g *Guard) Apps() []protocol.AppStatus {
	var out []protocol.AppStatus
	for _, n := range g.Sideloaded() {
		out = append(out, protocol.AppStatus{Name: n, State: protocol.AppInstalled, Sideloaded: true})
	}
	for _, q := range g.Quarantined() {
		out = append(out, protocol.AppStatus{Name: q.App, State: protocol.AppQuarantined, Reason: q.Kind + ": moved to " + q.Path})
	}
	return out
}

// Scans returns how many full scans completed and when the last one did.
func (g *Guard) Scans() (uint64, time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.scans, g.lastScan
}

// Run watches and scans until ctx is done; it returns nil then. Errors on
// the way (a watcher that cannot be created, a directory that cannot be
// read, a failed quarantine) are logged and reported, never fatal: without
// a watcher the periodic scan still runs.
func (g *Guard) Run(ctx context.Context) error {
	var events <-chan fsnotify.Event
	var errs <-chan error
	w, err := fsnotify.NewWatcher()
	if err != nil {
		g.log.Error("sideload guard: file watching unavailable; relying on the periodic scan", "interval", g.opts.ScanInterval, "err", err)
	} else {
		g.w = w
		defer w.Close()
		events, errs = w.Events, w.Errors
	}
	g.recoverPlans(ctx) // before the scan: a half-done quarantine is finished, not found again
	g.watch(g.opts.AppsDir)
	g.fullScan(ctx, "start-up")

	ticker := time.NewTicker(g.opts.ScanInterval)
	defer ticker.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	pending := map[string]bool{}
	full, armed := false, false
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				g.log.Error("sideload guard: file watcher stopped; relying on the periodic scan")
				events, errs = nil, nil
				continue
			}
			name, whole := g.route(ev)
			if whole {
				full = true
			} else if name != "" {
				pending[name] = true
			} else {
				continue
			}
			if !armed { // from the first event of a burst: a steady stream cannot postpone the check
				armed = true
				debounce.Reset(g.opts.Debounce)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			g.watchError(ctx, err)
		case err := <-g.inject:
			g.watchError(ctx, err)
		case <-debounce.C:
			armed = false
			if full {
				full = false
				clear(pending)
				g.fullScan(ctx, "event on the apps directory")
				continue
			}
			pol := g.opts.Policy()
			for name := range pending {
				g.handle(ctx, g.checkEntry(name, &pol))
			}
			clear(pending)
		case <-ticker.C:
			g.fullScan(ctx, "periodic")
		case <-g.recheck:
			g.fullScan(ctx, "recheck")
		}
	}
}

func (g *Guard) watchError(ctx context.Context, err error) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		g.log.Warn("sideload guard: file events were dropped (overflow); running a full scan")
	} else {
		g.log.Warn("sideload guard: file watcher error; running a full scan", "err", err)
	}
	g.fullScan(ctx, "watcher error")
}

// route maps an fsnotify event to the top-level entry it concerns. whole
// is true for an event on the apps directory itself.
func (g *Guard) route(ev fsnotify.Event) (name string, whole bool) {
	rel, err := filepath.Rel(g.opts.AppsDir, ev.Name)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	if rel == "." {
		return "", true
	}
	if ev.Has(fsnotify.Write) || ev.Has(fsnotify.Create) || ev.Has(fsnotify.Chmod) {
		g.cache.forget(ev.Name) // re-hash it
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		g.unwatch(ev.Name)
	}
	name, _, _ = strings.Cut(rel, string(filepath.Separator))
	return name, false
}

// watch adds an fsnotify watch on dir (before the caller reads it).
func (g *Guard) watch(dir string) {
	if g.w == nil {
		return
	}
	if err := g.w.Add(dir); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			g.log.Warn("sideload guard: cannot watch directory; the periodic scan still covers it", "dir", dir, "err", err)
		}
		return
	}
	g.watched[dir] = true
}

func (g *Guard) watchTree(dir string) { g.watch(dir) }

// unwatch drops the watches on p and below (it was removed, renamed or
// quarantined; inotify would keep reporting a moved directory under its
// old name).
func (g *Guard) unwatch(p string) {
	prefix := p + string(filepath.Separator)
	for d := range g.watched {
		if d == p || strings.HasPrefix(d, prefix) {
			delete(g.watched, d)
			if g.w != nil {
				g.w.Remove(d)
			}
		}
	}
}

func (g *Guard) changed() {
	if g.opts.OnChange != nil {
		g.opts.OnChange()
	}
}

// fullScan checks every entry of the apps directory.
func (g *Guard) fullScan(ctx context.Context, why string) {
	start := g.opts.Now()
	g.cache.gen++
	gen := g.cache.gen
	pol := g.opts.Policy()
	g.watch(g.opts.AppsDir)
	entries, err := readDir(g.opts.AppsDir)
	if err != nil {
		g.report(ctx, protocol.Event{Kind: protocol.EventIntegrity, Message: fmt.Sprintf("the apps directory cannot be read: %v", err),
			Details: map[string]string{"path": g.opts.AppsDir, "action": "none; will retry at the next scan"}})
		return
	}
	g.mu.Lock()
	before := len(g.sideloaded)
	g.mu.Unlock()
	present := map[string]bool{}
	for _, e := range entries {
		if ctx.Err() != nil {
			return
		}
		present[e.Name()] = true
		g.handle(ctx, g.checkEntry(e.Name(), &pol))
	}
	g.cache.sweep(gen)
	g.mu.Lock()
	for n := range g.sideloaded {
		if !present[n] {
			delete(g.sideloaded, n)
		}
	}
	g.scans++
	g.lastScan = g.opts.Now()
	gone := len(g.sideloaded)
	g.mu.Unlock()
	if gone != before {
		g.changed()
	}
	for n := range g.reported {
		if !present[n] {
			delete(g.reported, n)
		}
	}
	g.log.Debug("sideload guard: full scan", "why", why, "entries", len(entries), "took", g.opts.Now().Sub(start))
}

// handle acts on the result of a check: tracks sideloaded apps, and for
// findings stops the app, quarantines it and reports.
func (g *Guard) handle(ctx context.Context, r result) {
	g.mu.Lock()
	if r.sideloaded {
		if _, ok := g.sideloaded[r.name]; !ok {
			g.sideloaded[r.name] = g.opts.Now().UTC()
			g.mu.Unlock()
			g.log.Info("sideload guard: sideloaded app tracked (sideloading is allowed on this device)", "app", r.name)
			g.changed()
			return
		}
	}
	wasSideloaded := false
	if !r.sideloaded {
		_, wasSideloaded = g.sideloaded[r.name]
		delete(g.sideloaded, r.name)
	}
	g.mu.Unlock()
	if len(r.findings) == 0 {
		delete(g.reported, r.name)
		if wasSideloaded {
			g.changed() // removed
		}
		return
	}
	g.respond(ctx, r, wasSideloaded)
}
