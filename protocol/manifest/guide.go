package manifest

import (
	"fmt"
	"sort"
)

// Verdict is installation guidance for one device.
type Verdict int

// Verdicts, from best to worst.
const (
	Allow Verdict = iota // install
	Warn                 // install only when forced (audited)
	Block                // never install
)

func (v Verdict) String() string {
	switch v {
	case Allow:
		return "Allow"
	case Warn:
		return "Warn"
	}
	return "Block"
}

// Advice is a verdict with the reasons for it, one line each.
type Advice struct {
	Verdict Verdict
	Reasons []string
}

func (a *Advice) add(v Verdict, format string, args ...any) {
	a.Reasons = append(a.Reasons, fmt.Sprintf(format, args...))
	if v > a.Verdict {
		a.Verdict = v
	}
}

// GuideOptions are the admin's choices for a check.
type GuideOptions struct {
	// AllowDowngrade is `--allow-downgrade`: a downgrade the manifest does
	// not permit becomes Warn instead of Block.
	AllowDowngrade bool
}

// Guide says whether m may be installed on a device whose installed apps
// are installed (name → version). The same function runs on the
// controller (`apps check`, `apps assign`) and on the device before install.
//
//   - Each dependency must be installed in its range (Block otherwise; an
//     installed version that is not semver is Warn).
//   - Over an installed version below upgrade.min_from: Block.
//   - A downgrade: Warn if the manifest allows downgrades or opts does,
//     Block otherwise.
func Guide(m *Manifest, installed map[string]string, opts GuideOptions) Advice {
	var a Advice
	deps := append([]Dependency(nil), m.Dependencies...)
	sort.Slice(deps, func(i, j int) bool { return deps[i].Name < deps[j].Name })
	for _, d := range deps {
		r, err := ParseRange(d.Version)
		if err != nil {
			a.add(Block, "dependency %s: %v", d.Name, err)
			continue
		}
		have, ok := installed[d.Name]
		if !ok {
			a.add(Block, "needs %s %s, which is not installed", d.Name, r)
			continue
		}
		v, err := ParseVersion(have)
		if err != nil {
			a.add(Warn, "needs %s %s; installed version %q is not semver", d.Name, r, have)
			continue
		}
		if !r.Contains(v) {
			a.add(Block, "needs %s %s, installed is %s", d.Name, r, v)
		}
	}
	cur, ok := installed[m.Name]
	if !ok {
		return a
	}
	cv, err := ParseVersion(cur)
	if err != nil {
		a.add(Warn, "installed %s version %q is not semver; cannot check upgrade rules", m.Name, cur)
		return a
	}
	switch c := m.SemVer().Compare(cv); {
	case c == 0:
		a.Reasons = append(a.Reasons, fmt.Sprintf("%s %s is already installed", m.Name, cv))
	case c < 0:
		if m.Upgrade.AllowDowngrade || opts.AllowDowngrade {
			a.add(Warn, "downgrade of %s from %s to %s", m.Name, cv, m.Version)
		} else {
			a.add(Block, "downgrade of %s from %s to %s; the manifest does not allow it (use --allow-downgrade)", m.Name, cv, m.Version)
		}
	default:
		if m.Upgrade.MinFrom != "" {
			if min, err := ParseVersion(m.Upgrade.MinFrom); err == nil && cv.Compare(min) < 0 {
				a.add(Block, "%s %s upgrades only from %s or later; installed is %s (install an intermediate version first)", m.Name, m.Version, min, cv)
			}
		}
	}
	return a
}
