package sideload

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/edgewarden/edgewarden/protocol"
)

func TestManagedAppsAreLeftAlone(t *testing.T) {
	f := newFixture(t)
	f.installDemo("alpha")
	g := f.start()
	// Installing and upgrading while the guard runs is not tampering:
	// the installer builds in staging and renames complete trees in.
	f.installDemo("beta")
	f.install("alpha", "1.1.0", file{path: "bin/alpha", content: []byte("v1.1"), mode: 0o755})
	f.install("alpha", "1.2.0", file{path: "bin/alpha", content: []byte("v1.2"), mode: 0o755}) // prunes 1.0.0
	g.Recheck()
	eventually(t, "a scan after the installs", func() bool { n, _ := g.Scans(); return n >= 2 })
	f.alive() // and a quiet period has passed for the installs' events
	for _, e := range f.allEvents() {
		if !strings.HasPrefix(e.Details["app"], "probe-") {
			t.Errorf("unexpected event for a managed app: %s %s %v", e.Kind, e.Message, e.Details)
		}
	}
	for _, app := range []string{"alpha", "beta"} {
		if f.quarantined(app) != "" {
			t.Errorf("%s was quarantined", app)
		}
	}
}

// Attack: a sideloaded app dropped while the agent (and guard) was down.
func TestSideloadDroppedWhileStopped(t *testing.T) {
	f := newFixture(t)
	f.installDemo("alpha")
	dir := filepath.Join(f.apps, "miner")
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "bin", "miner"), []byte("evil"), 0o755)
	f.start()
	ev := f.caught("miner", protocol.EventSideloadBlocked)
	if !strings.Contains(ev.Message, "sideloading is banned") {
		t.Errorf("message %q", ev.Message)
	}
	if b, err := os.ReadFile(filepath.Join(f.quarantined("miner"), "bin", "miner")); err != nil || string(b) != "evil" {
		t.Errorf("quarantined file: %q, %v", b, err)
	}
	if f.quarantined("alpha") != "" {
		t.Error("the managed app was quarantined too")
	}
	f.alive()
}

// Attack: a symlink pointing out of the apps directory, at the top and
// inside a managed app.
func TestSymlinkOutOfAppsDir(t *testing.T) {
	f := newFixture(t)
	f.installDemo("alpha")
	f.start()
	if err := os.Symlink("/usr/bin", filepath.Join(f.apps, "escape")); err != nil {
		t.Fatal(err)
	}
	ev := f.caught("escape", protocol.EventSideloadBlocked)
	if !strings.Contains(ev.Details["found"], "outside the apps directory") {
		t.Errorf("found = %q", ev.Details["found"])
	}
	if fi, err := os.Lstat(f.quarantined("escape")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the symlink itself should be in quarantine: %v %v", fi, err)
	}
	// current repointed outside the app.
	cur := filepath.Join(f.apps, "alpha", "current")
	os.Remove(cur)
	os.Symlink("/usr", cur)
	ev = f.caught("alpha", protocol.EventTamper)
	if ev.Details["found"] != "/usr" {
		t.Errorf("found = %q", ev.Details["found"])
	}
	f.alive()
}

// Attack: a file renamed into the apps directory (no Create+Write, just a
// rename), and into a managed app.
func TestFileRenamedIn(t *testing.T) {
	f := newFixture(t)
	f.installDemo("alpha")
	f.start()
	src := filepath.Join(f.root, "payload")
	os.WriteFile(src, []byte("payload"), 0o755)
	if err := os.Rename(src, filepath.Join(f.apps, "payload")); err != nil {
		t.Fatal(err)
	}
	f.caught("payload", protocol.EventSideloadBlocked)

	os.WriteFile(src, []byte("implant"), 0o755)
	if err := os.Rename(src, filepath.Join(f.apps, "alpha", "versions", "1.0.0", "www", "implant")); err != nil {
		t.Fatal(err)
	}
	ev := f.caught("alpha", protocol.EventTamper)
	if ev.Details["expected"] != "nothing" || ev.Details["found"] != fmt.Sprintf("%x", sha256Sum("implant")) {
		t.Errorf("details %v", ev.Details)
	}
	f.alive()
}

// Attack: thousands of files at once. A dropped-event overflow (injected:
// the kernel queue is a machine-wide setting) triggers a full scan, and
// every file is caught whether events arrived or not.
func TestThousandsOfFiles(t *testing.T) {
	f := newFixture(t)
	f.installDemo("alpha")
	g := f.start()
	const n = 2000
	start := time.Now()
	for i := range n {
		os.WriteFile(filepath.Join(f.apps, fmt.Sprintf("drop-%04d", i)), []byte("x"), 0o644)
	}
	// Into a managed app: the guard quarantines the app at the first
	// files, so later writes fail; every file written must end up in
	// quarantine, none left in the apps directory.
	www := filepath.Join(f.apps, "alpha", "versions", "1.0.0", "www")
	written := 0
	for i := range n {
		if os.WriteFile(filepath.Join(www, fmt.Sprintf("extra-%04d", i)), []byte("y"), 0o644) == nil {
			written++
		}
	}
	g.inject <- fmt.Errorf("inotify: %w", fsnotify.ErrEventOverflow)
	eventually(t, "every dropped file quarantined", func() bool {
		es, _ := os.ReadDir(f.quarantine)
		return len(es) == n+1
	})
	t.Logf("%d top-level files and %d files in a managed app quarantined in %v", n, written, time.Since(start))
	q := map[string]bool{}
	es, _ := os.ReadDir(f.quarantine)
	for _, e := range es {
		_, name, _ := strings.Cut(e.Name(), "Z-")
		q[name] = true
	}
	for i := range n {
		if !q[fmt.Sprintf("drop-%04d", i)] {
			t.Fatalf("drop-%04d not quarantined", i)
		}
	}
	f.caught("alpha", protocol.EventTamper)
	extra, _ := filepath.Glob(filepath.Join(f.quarantined("alpha"), "versions", "1.0.0", "www", "extra-*"))
	if len(extra) != written {
		t.Errorf("quarantine holds %d added files, %d were written", len(extra), written)
	}
	if left, _ := os.ReadDir(f.apps); len(left) != 0 {
		t.Errorf("left in the apps directory: %d entries", len(left))
	}
	f.alive()
}

// Attack: a managed app's binary replaced with the same size and mtime.
func TestSameSizeSameMtimeReplacement(t *testing.T) {
	f := newFixture(t)
	f.installDemo("alpha")
	f.start()
	bin := filepath.Join(f.apps, "alpha", "versions", "1.0.0", "bin", "alpha")
	replaceKeepingTimes(t, bin)
	ev := f.caught("alpha", protocol.EventTamper)
	if ev.Details["expected"] == ev.Details["found"] || !strings.Contains(ev.Message, "same size") {
		t.Errorf("event %s %v", ev.Message, ev.Details)
	}
	f.alive()
}

// The periodic scan catches the same replacement with a warm hash cache
// (no fsnotify involved): ctime, not mtime, invalidates the cache.
func TestScanCatchesSameSizeSameMtimeWithWarmCache(t *testing.T) {
	f := newFixture(t)
	f.installDemo("alpha")
	g := f.newGuard()
	pol := f.policy.Load()
	if r := g.checkEntry("alpha", pol); len(r.findings) != 0 {
		t.Fatalf("intact app: %v", r.findings)
	}
	bin := filepath.Join(f.apps, "alpha", "versions", "1.0.0", "bin", "alpha")
	replaceKeepingTimes(t, bin)
	r := g.checkEntry("alpha", pol)
	if len(r.findings) != 1 || r.findings[0].Kind != protocol.EventTamper || r.findings[0].Path != bin {
		t.Fatalf("findings %v", r.findings)
	}
}

func replaceKeepingTimes(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(p)
	evil := []byte(strings.Repeat("E", len(old)))
	if err := os.WriteFile(p, evil, fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if fi2, _ := os.Stat(p); fi2.Size() != fi.Size() || !fi2.ModTime().Equal(fi.ModTime()) {
		t.Fatal("replacement did not keep size and mtime")
	}
}

// Changes to a managed app's files: removed, added, permissions, content.
func TestManagedAppChanges(t *testing.T) {
	for name, change := range map[string]func(v string) error{
		"removed file":     func(v string) error { return os.Remove(filepath.Join(v, "conf", "app.conf")) },
		"added file":       func(v string) error { return os.WriteFile(filepath.Join(v, "bin", "backdoor"), []byte("x"), 0o755) },
		"chmod file":       func(v string) error { return os.Chmod(filepath.Join(v, "www", "index.html"), 0o777) },
		"setuid binary":    func(v string) error { return os.Chmod(filepath.Join(v, "bin", "alpha"), 0o755|fs.ModeSetuid) },
		"appended content": func(v string) error { return appendTo(filepath.Join(v, "bin", "alpha"), "rm -rf /\n") },
		"symlink retargeted": func(v string) error {
			os.Remove(filepath.Join(v, "www", "latest"))
			return os.Symlink("/etc/shadow", filepath.Join(v, "www", "latest"))
		},
		"kept archive changed": func(v string) error {
			es, _ := os.ReadDir(filepath.Join(v, ".edgewarden", "archives"))
			p := filepath.Join(v, ".edgewarden", "archives", es[0].Name())
			os.Chmod(p, 0o644)
			return appendTo(p, "x")
		},
		"manifest swapped": func(v string) error {
			p := filepath.Join(v, ".edgewarden", "manifest.json")
			os.Chmod(p, 0o644)
			return appendTo(p, " ")
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.installDemo("alpha")
			f.start()
			if err := change(filepath.Join(f.apps, "alpha", "versions", "1.0.0")); err != nil {
				t.Fatal(err)
			}
			kind := protocol.EventTamper
			if name == "manifest swapped" {
				kind = protocol.EventIntegrity
			}
			f.caught("alpha", kind)
			f.alive()
		})
	}
}

func appendTo(p, s string) error {
	fl, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer fl.Close()
	_, err = fl.WriteString(s)
	return err
}

// A version signed by a publisher the document no longer trusts fails
// integrity at the next scan.
func TestPublisherNoLongerTrusted(t *testing.T) {
	f := newFixture(t)
	f.installDemo("alpha")
	g := f.start()
	p := *f.policy.Load()
	p.Publishers = map[string][]string{"acme": {newPublisher(t, "acme").pem}}
	f.policy.Store(&p)
	g.Recheck()
	ev := f.caught("alpha", protocol.EventIntegrity)
	if !strings.Contains(ev.Message, "cannot be verified") {
		t.Errorf("message %q", ev.Message)
	}
}

// Attack: an app directory made unreadable. Root ignores permission bits,
// so as root chmod 000 is still caught, by the mode check (tampering), and
// the unreadable case is simulated with a failing read hook
// (TestUnreadableDirectoryReadFails). As another user the read itself fails.
func TestAppDirMadeUnreadable(t *testing.T) {
	f := newFixture(t)
	f.installDemo("alpha")
	f.start()
	if err := os.Chmod(filepath.Join(f.apps, "alpha", "versions", "1.0.0", "www"), 0); err != nil {
		t.Fatal(err)
	}
	kind := protocol.EventIntegrity
	if os.Geteuid() == 0 {
		t.Log("running as root: chmod 000 does not stop root from reading; expecting the mode check to catch it")
		kind = protocol.EventTamper
	}
	ev := f.caught("alpha", kind)
	t.Logf("caught: %s: %s", ev.Kind, ev.Message)
	f.alive()
}

func TestUnreadableDirectoryReadFails(t *testing.T) {
	f := newFixture(t)
	f.installDemo("alpha")
	www := filepath.Join(f.apps, "alpha", "versions", "1.0.0", "www")
	readDir = func(p string) ([]os.DirEntry, error) {
		if p == www {
			return nil, &fs.PathError{Op: "open", Path: p, Err: syscall.EACCES}
		}
		return os.ReadDir(p)
	}
	t.Cleanup(func() { readDir = os.ReadDir })
	f.start()
	ev := f.caught("alpha", protocol.EventIntegrity)
	if ev.Details["found"] != "unreadable" || ev.Details["path"] != www {
		t.Errorf("details %v", ev.Details)
	}
	f.alive()
}

// With the ban lifted, local apps are tracked as sideloaded; when it comes
// back they are stopped, quarantined and reported. Managed apps are still
// checked meanwhile.
func TestBanLiftedThenBack(t *testing.T) {
	f := newFixture(t)
	f.installDemo("alpha")
	f.setPolicy(true)
	g := f.start()
	local := filepath.Join(f.apps, "local-tool")
	os.MkdirAll(local, 0o755)
	os.WriteFile(filepath.Join(local, "run"), []byte("ok"), 0o755)
	eventually(t, "local-tool tracked as sideloaded", func() bool {
		s := g.Sideloaded()
		return len(s) == 1 && s[0] == "local-tool"
	})
	if apps := g.Apps(); len(apps) != 1 || !apps[0].Sideloaded {
		t.Errorf("Apps() = %+v", apps)
	}
	// Integrity of managed apps is still enforced.
	replaceKeepingTimes(t, filepath.Join(f.apps, "alpha", "versions", "1.0.0", "bin", "alpha"))
	f.caught("alpha", protocol.EventTamper)
	if len(f.eventsFor("local-tool")) != 0 || f.wasStopped("local-tool") {
		t.Fatal("a sideloaded app was acted on while sideloading is allowed")
	}

	f.setPolicy(false)
	g.Recheck()
	ev := f.caught("local-tool", protocol.EventSideloadBlocked)
	if !strings.Contains(ev.Message, "ban is back on") {
		t.Errorf("message %q", ev.Message)
	}
	if len(g.Sideloaded()) != 0 {
		t.Errorf("still tracked: %v", g.Sideloaded())
	}
	var q bool
	for _, a := range g.Apps() {
		q = q || a.Name == "local-tool" && a.State == protocol.AppQuarantined
	}
	if !q {
		t.Errorf("Apps() = %+v, want local-tool quarantined", g.Apps())
	}
}

// Before any document: nothing is managed and sideloading is banned.
func TestNoDocumentFailsClosed(t *testing.T) {
	p := PolicyFrom(nil, nil)
	if p.SideloadAllowed || len(p.Managed) != 0 {
		t.Fatalf("%+v", p)
	}
	d := &protocol.DesiredState{Sideload: protocol.SideloadPolicy{Allowed: true},
		Apps:       []protocol.AppAssignment{{Name: "a"}},
		Publishers: []protocol.Publisher{{Name: "acme", Keys: []string{"K"}}}}
	p = PolicyFrom(d, []string{"a", "b"})
	if !p.SideloadAllowed || !p.Managed["a"] || !p.Managed["b"] || p.Publishers["acme"][0] != "K" {
		t.Fatalf("%+v", p)
	}
	if p.Leaving["a"] || !p.Leaving["b"] {
		t.Fatalf("leaving %v: want b only (installed, no longer assigned)", p.Leaving)
	}
}

// Bad options are refused and create nothing.
func TestNewRefusesBadOptions(t *testing.T) {
	root := t.TempDir()
	pol := func() Policy { return Policy{} }
	for name, o := range map[string]Options{
		"no apps dir":           {QuarantineDir: filepath.Join(root, "q"), Policy: pol},
		"no quarantine":         {AppsDir: filepath.Join(root, "a"), Policy: pol},
		"no policy":             {AppsDir: filepath.Join(root, "a"), QuarantineDir: filepath.Join(root, "q")},
		"quarantine inside":     {AppsDir: filepath.Join(root, "a"), QuarantineDir: filepath.Join(root, "a", "q"), Policy: pol},
		"quarantine = apps dir": {AppsDir: filepath.Join(root, "a"), QuarantineDir: filepath.Join(root, "a"), Policy: pol},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if es, _ := os.ReadDir(root); len(es) != 0 {
		t.Errorf("refused options created %v", es)
	}
}

// A quarantine that fails (here: the quarantine directory vanished and was
// replaced by a file) is reported once, the guard keeps running, and the
// next scan retries.
func TestQuarantineFailureKeepsRunning(t *testing.T) {
	f := newFixture(t)
	g := f.start()
	os.RemoveAll(f.quarantine)
	os.WriteFile(f.quarantine, []byte("not a dir"), 0o600)
	os.WriteFile(filepath.Join(f.apps, "stray"), []byte("x"), 0o644)
	eventually(t, "failed quarantine reported", func() bool {
		for _, e := range f.eventsFor("stray") {
			if strings.Contains(e.Details["action"], "quarantine failed") {
				return true
			}
		}
		return false
	})
	os.Remove(f.quarantine)
	os.MkdirAll(f.quarantine, 0o700)
	g.Recheck()
	f.caught("stray", protocol.EventSideloadBlocked)
	if !errors.Is(nil, nil) {
		t.Fatal()
	}
	_ = time.Now
}

// An app the document no longer assigns, while the reconciler removes it,
// is left alone even though its publisher's keys left the document.
func TestLeavingAppLeftAlone(t *testing.T) {
	f := newFixture(t)
	f.installDemo("alpha")
	g := f.start()
	f.policy.Store(&Policy{Managed: map[string]bool{"alpha": true}, Leaving: map[string]bool{"alpha": true}})
	g.Recheck()
	eventually(t, "a scan with the new policy", func() bool { n, _ := g.Scans(); return n >= 2 })
	f.alive()
	if f.quarantined("alpha") != "" || len(f.eventsFor("alpha")) != 0 {
		t.Fatalf("leaving app acted on: %v", f.eventsFor("alpha"))
	}
}

// A removed publisher key: the running app keeps running (issue 4) as long
// as the signed document still carries its exact manifest; a manifest the
// document does not carry is still an integrity failure.
func TestRemovedKeyVouchedByDocument(t *testing.T) {
	f := newFixture(t)
	f.installDemo("alpha")
	raw, err := os.ReadFile(filepath.Join(f.apps, "alpha", "versions", "1.0.0", metaDirName, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	g := f.start()
	p := *f.policy.Load()
	p.Publishers = map[string][]string{} // the key is gone from the document
	p.Vouched = map[string]bool{fmt.Sprintf("%x", sha256Sum(string(raw))): true}
	f.policy.Store(&p)
	g.Recheck()
	eventually(t, "a scan after the key removal", func() bool { n, _ := g.Scans(); return n >= 2 })
	f.alive()
	if f.quarantined("alpha") != "" || len(f.eventsFor("alpha")) != 0 {
		t.Fatalf("an app the document vouches for was quarantined: %v", f.eventsFor("alpha"))
	}
	// The document no longer carries it: now it is an integrity failure.
	p2 := p
	p2.Vouched = map[string]bool{}
	f.policy.Store(&p2)
	g.Recheck()
	f.caught("alpha", protocol.EventIntegrity)
}
