package sideload

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// The guard reports events of kind protocol.EventSideloadBlocked, EventTamper,
// EventQuarantined and EventIntegrity, all of severity protocol.SeveritySecurity.

// Finding is one thing wrong with an entry of the apps directory.
type Finding struct {
	Kind     string // protocol.EventSideloadBlocked, protocol.EventTamper or protocol.EventIntegrity
	Path     string // absolute path of what was found wrong
	Expected string // expected digest or state ("" if nothing was expected)
	Found    string // found digest or state
	Message  string
}

// maxFindings bounds the findings kept per app per check (the count of all
// is kept).
const maxFindings = 20

// removingGrace is how long an installer trash directory
// (versions/.removing-V, being deleted) is tolerated, judged by its ctime
// (set by the kernel on the rename, not forgeable).
const removingGrace = 2 * time.Minute

// result is the outcome of checking one top-level entry of the apps dir.
type result struct {
	name       string
	findings   []Finding
	total      int  // findings, including those not kept
	sideloaded bool // not managed, allowed because sideloading is
	managed    bool
}

func (r *result) add(f Finding) {
	r.total++
	if len(r.findings) < maxFindings {
		r.findings = append(r.findings, f)
	}
}

// checkEntry checks AppsDir/name against the policy.
func (g *Guard) checkEntry(name string, pol *Policy) result {
	r := g.checkEntryOnce(name, pol)
	if r.managed && r.total > 0 {
		// Confirm with fresh reads before acting: the installer may have
		// renamed a new version in and switched `current` between our read
		// of versions/ and of the link. Each of its steps is atomic, so a
		// second pass sees a consistent app; real tampering persists.
		r = g.checkEntryOnce(name, pol)
	}
	return r
}

func (g *Guard) checkEntryOnce(name string, pol *Policy) result {
	r := result{name: name}
	p := filepath.Join(g.opts.AppsDir, name)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return r
	}
	if err != nil {
		r.add(Finding{Kind: protocol.EventIntegrity, Path: p, Expected: "readable", Found: "unreadable", Message: fmt.Sprintf("cannot inspect %s: %v", p, err)})
		return r
	}
	if fi.IsDir() && pol.Leaving[name] {
		r.managed = true
		return r // being removed by the reconciler
	}
	if fi.IsDir() && manifest.NamePattern.MatchString(name) && pol.Managed[name] {
		r.managed = true
		g.checkApp(&r, p, fi, pol)
		return r
	}
	if pol.SideloadAllowed {
		r.sideloaded = true
		return r
	}
	r.add(Finding{Kind: protocol.EventSideloadBlocked, Path: p, Expected: "nothing (sideloading is banned)", Found: describe(p, fi, g.opts.AppsDir),
		Message: fmt.Sprintf("%s appeared in the apps directory but is not an app assigned to this device, and sideloading is banned", describe(p, fi, g.opts.AppsDir))})
	return r
}

// describe says what an unexpected entry is, naming a symlink's target and
// whether it leaves the apps directory.
func describe(p string, fi fs.FileInfo, appsDir string) string {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		t, _ := os.Readlink(p)
		abs := t
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(filepath.Dir(p), t)
		}
		if rel, err := filepath.Rel(appsDir, abs); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return fmt.Sprintf("a symlink to %s (outside the apps directory)", t)
		}
		return fmt.Sprintf("a symlink to %s", t)
	case fi.IsDir():
		return "a directory without a verified manifest"
	case fi.Mode().IsRegular():
		return fmt.Sprintf("a file of %d bytes", fi.Size())
	}
	return "a special file (" + fi.Mode().Type().String() + ")"
}

// checkApp checks a managed app directory: NAME/{versions/V..., current,
// current.tmp}. Every version present must verify and match.
func (g *Guard) checkApp(r *result, appDir string, fi fs.FileInfo, pol *Policy) {
	g.checkDirPerm(r, appDir, fi, dirPerm)
	g.watch(appDir)
	entries, err := readDir(appDir)
	if err != nil {
		r.add(Finding{Kind: protocol.EventIntegrity, Path: appDir, Expected: "readable directory", Found: "unreadable", Message: fmt.Sprintf("app directory cannot be read: %v", err)})
		return
	}
	versions := map[string]bool{}
	var links []fs.DirEntry
	for _, e := range entries {
		p := filepath.Join(appDir, e.Name())
		switch {
		case e.Name() == "versions" && e.IsDir():
			g.checkVersions(r, p, filepath.Base(appDir), pol, versions)
		case (e.Name() == "current" || e.Name() == "current.tmp") && e.Type()&fs.ModeSymlink != 0:
			links = append(links, e)
		default:
			g.unexpected(r, p, e)
		}
	}
	for _, e := range links {
		p := filepath.Join(appDir, e.Name())
		t, err := os.Readlink(p)
		if err != nil {
			r.add(Finding{Kind: protocol.EventIntegrity, Path: p, Expected: "readable symlink", Found: "unreadable", Message: fmt.Sprintf("cannot read symlink: %v", err)})
			continue
		}
		dir, v := path.Split(filepath.ToSlash(t))
		if dir != "versions/" || !versions[v] {
			r.add(Finding{Kind: protocol.EventTamper, Path: p, Expected: "versions/<a version present>", Found: t,
				Message: fmt.Sprintf("%s points to %s, not to a version of the app", e.Name(), t)})
		}
	}
}

// checkVersions checks every version directory and adds each one present
// to ok (the targets current may point to).
func (g *Guard) checkVersions(r *result, dir, app string, pol *Policy, ok map[string]bool) {
	fi, err := os.Lstat(dir)
	if err == nil {
		g.checkDirPerm(r, dir, fi, dirPerm)
	}
	g.watch(dir)
	entries, err := readDir(dir)
	if err != nil {
		r.add(Finding{Kind: protocol.EventIntegrity, Path: dir, Expected: "readable directory", Found: "unreadable", Message: fmt.Sprintf("versions directory cannot be read: %v", err)})
		return
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if strings.HasPrefix(e.Name(), ".removing-") && e.IsDir() && g.recent(p) {
			continue // the installer is deleting it
		}
		v, err := manifest.ParseVersion(e.Name())
		if !e.IsDir() || err != nil || v.String() != e.Name() {
			g.unexpected(r, p, e)
			continue
		}
		g.checkVersion(r, p, app, pol) // a failed version is reported there
		ok[e.Name()] = true
	}
}

func (g *Guard) recent(p string) bool {
	fi, err := os.Lstat(p)
	if err != nil {
		return false
	}
	ct, ok := ctimeOf(fi)
	if !ok {
		return false
	}
	return g.opts.Now().Sub(time.Unix(0, ct)) < removingGrace
}

// checkVersion verifies one version directory and compares its files with
// what the signed manifest says; it reports whether the version is intact.
func (g *Guard) checkVersion(r *result, dir, app string, pol *Policy) bool {
	before := r.total
	m, raw, sig, err := g.verifiedManifest(dir, app, pol)
	if err != nil {
		r.add(Finding{Kind: protocol.EventIntegrity, Path: filepath.Join(dir, metaDirName, "manifest.json"), Expected: "a manifest signed by a trusted publisher", Found: "refused",
			Message: fmt.Sprintf("%s@%s cannot be verified: %v", app, filepath.Base(dir), err)})
		g.watchTree(dir)
		return false
	}
	want, f := g.expectVersion(dir, m, raw, sig)
	if f != nil {
		r.add(*f)
		g.watchTree(dir)
		return false
	}
	seen := make(map[string]bool, len(want))
	g.compare(r, dir, "", want, seen)
	var missing []string
	for p := range want {
		if !seen[p] {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	for _, p := range missing {
		w := want[p]
		exp := w.sum
		if exp == "" {
			exp = w.kind.String()
		}
		r.add(Finding{Kind: protocol.EventTamper, Path: filepath.Join(dir, filepath.FromSlash(p)), Expected: exp, Found: "missing",
			Message: fmt.Sprintf("%s %s of %s@%s was removed", w.kind, p, app, m.Version)})
	}
	return r.total == before
}

// compare walks dir/rel and checks every entry against want, marking what
// it saw. Watches are added before each directory is read, so nothing
// created after the read goes unnoticed.
func (g *Guard) compare(r *result, root, rel string, want tree, seen map[string]bool) {
	p := filepath.Join(root, filepath.FromSlash(rel))
	fi, err := os.Lstat(p)
	if err != nil {
		return // reported as missing
	}
	seen[rel] = true
	w, ok := want[rel]
	if !ok {
		g.unexpectedInfo(r, p, fi)
		if fi.IsDir() {
			g.watchTree(p)
		}
		return
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(p)
		if w.kind != kindSymlink || err != nil || t != w.target {
			r.add(Finding{Kind: protocol.EventTamper, Path: p, Expected: w.describe(), Found: "symlink to " + t,
				Message: fmt.Sprintf("%s was replaced by a symlink to %s", rel, t)})
		}
	case fi.IsDir():
		if w.kind != kindDir {
			r.add(Finding{Kind: protocol.EventTamper, Path: p, Expected: w.describe(), Found: "directory", Message: fmt.Sprintf("%s was replaced by a directory", rel)})
			g.watchTree(p)
			return
		}
		g.checkDirPerm(r, p, fi, w.perm)
		g.watch(p)
		entries, err := readDir(p)
		if err != nil {
			r.add(Finding{Kind: protocol.EventIntegrity, Path: p, Expected: "readable directory", Found: "unreadable", Message: fmt.Sprintf("directory %s cannot be read: %v", rel, err)})
			return
		}
		for _, e := range entries {
			g.compare(r, root, path.Join(rel, e.Name()), want, seen)
		}
	case fi.Mode().IsRegular():
		if w.kind != kindFile {
			r.add(Finding{Kind: protocol.EventTamper, Path: p, Expected: w.describe(), Found: "file", Message: fmt.Sprintf("%s was replaced by a file", rel)})
			return
		}
		if perm := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky); perm != w.perm && !(w.upTo && perm&^w.perm == 0) {
			r.add(Finding{Kind: protocol.EventTamper, Path: p, Expected: "mode " + w.perm.String(), Found: "mode " + perm.String(),
				Message: fmt.Sprintf("permissions of %s changed from %s to %s", rel, w.perm, perm)})
		}
		if fi.Size() != w.size {
			found := fmt.Sprintf("size %d", fi.Size())
			if s, err := g.cache.sum(p, fi); err == nil {
				found = s
			}
			r.add(Finding{Kind: protocol.EventTamper, Path: p, Expected: w.sum, Found: found,
				Message: fmt.Sprintf("content of %s changed (size %d, expected %d)", rel, fi.Size(), w.size)})
			return
		}
		s, err := g.cache.sum(p, fi)
		if err != nil {
			r.add(Finding{Kind: protocol.EventIntegrity, Path: p, Expected: w.sum, Found: "unreadable", Message: fmt.Sprintf("cannot read %s: %v", rel, err)})
			return
		}
		if s != w.sum {
			r.add(Finding{Kind: protocol.EventTamper, Path: p, Expected: w.sum, Found: s,
				Message: fmt.Sprintf("content of %s changed (same size, different sha256)", rel)})
		}
	default:
		r.add(Finding{Kind: protocol.EventTamper, Path: p, Expected: w.describe(), Found: fi.Mode().Type().String(), Message: fmt.Sprintf("%s was replaced by a special file", rel)})
	}
}

func (w want) describe() string {
	switch w.kind {
	case kindFile:
		return w.sum
	case kindSymlink:
		return "symlink to " + w.target
	}
	return w.kind.String()
}

// checkDirPerm: a directory must give its owner rwx (the agent reads it;
// a directory made unreadable is tampering) and allow no more than max,
// with no setuid, setgid or sticky bit.
func (g *Guard) checkDirPerm(r *result, p string, fi fs.FileInfo, max fs.FileMode) {
	perm := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if perm&0o700 != 0o700 || perm&^max != 0 {
		r.add(Finding{Kind: protocol.EventTamper, Path: p, Expected: "mode at most " + max.String() + " with owner rwx", Found: "mode " + perm.String(),
			Message: fmt.Sprintf("permissions of directory %s changed to %s", p, perm)})
	}
}

func (g *Guard) unexpected(r *result, p string, e fs.DirEntry) {
	fi, err := e.Info()
	if err != nil {
		return // gone meanwhile
	}
	g.unexpectedInfo(r, p, fi)
	if fi.IsDir() {
		g.watchTree(p)
	}
}

func (g *Guard) unexpectedInfo(r *result, p string, fi fs.FileInfo) {
	found := describe(p, fi, g.opts.AppsDir)
	if fi.Mode().IsRegular() {
		if s, err := g.cache.sum(p, fi); err == nil {
			found = s
		}
	}
	r.add(Finding{Kind: protocol.EventTamper, Path: p, Expected: "nothing", Found: found,
		Message: fmt.Sprintf("%s was added to a managed app: %s", p, describe(p, fi, g.opts.AppsDir))})
}

// readDir is os.ReadDir; tests replace it to simulate an unreadable
// directory when running as root (root ignores permission bits).
var readDir = os.ReadDir
