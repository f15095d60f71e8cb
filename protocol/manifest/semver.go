package manifest

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a semantic version (https://semver.org, 2.0.0):
// MAJOR.MINOR.PATCH with an optional -PRERELEASE and +BUILD. Build metadata
// is kept but ignored when comparing, as semver requires.
type Version struct {
	Major, Minor, Patch uint64
	Pre                 []string // dot-separated pre-release identifiers; nil for a release
	Build               string
}

// maxVersionLen bounds a version string; longer ones are refused.
const maxVersionLen = 128

// ParseVersion parses a full semantic version such as "1.4.2",
// "2.0.0-rc.1" or "1.0.0+build.7". A leading "v" is not accepted: the
// manifest says exactly what the publisher released.
func ParseVersion(s string) (Version, error) {
	if len(s) == 0 || len(s) > maxVersionLen {
		return Version{}, fmt.Errorf("version %q: must be 1 to %d characters of the form MAJOR.MINOR.PATCH", clip(s), maxVersionLen)
	}
	var v Version
	rest := s
	if i := strings.IndexByte(rest, '+'); i >= 0 {
		v.Build = rest[i+1:]
		rest = rest[:i]
		if err := checkIdents(v.Build, false); err != nil {
			return Version{}, fmt.Errorf("version %q: build metadata: %w", s, err)
		}
	}
	if i := strings.IndexByte(rest, '-'); i >= 0 {
		pre := rest[i+1:]
		rest = rest[:i]
		if err := checkIdents(pre, true); err != nil {
			return Version{}, fmt.Errorf("version %q: pre-release: %w", s, err)
		}
		v.Pre = strings.Split(pre, ".")
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("version %q: want MAJOR.MINOR.PATCH, e.g. 1.4.2", s)
	}
	nums := [3]*uint64{&v.Major, &v.Minor, &v.Patch}
	for i, p := range parts {
		n, err := parseNum(p)
		if err != nil {
			return Version{}, fmt.Errorf("version %q: %w", s, err)
		}
		*nums[i] = n
	}
	return v, nil
}

// parseNum parses a numeric version part: digits, no leading zero.
func parseNum(p string) (uint64, error) {
	if p == "" || len(p) > 1 && p[0] == '0' {
		return 0, fmt.Errorf("%q is not a version number (digits, no leading zero)", p)
	}
	for _, c := range p {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a version number (digits, no leading zero)", p)
		}
	}
	n, err := strconv.ParseUint(p, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is too large", p)
	}
	return n, nil
}

// checkIdents checks dot-separated identifiers: [0-9A-Za-z-]+, and for
// pre-release identifiers, numeric ones without leading zeros.
func checkIdents(s string, pre bool) error {
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return fmt.Errorf("empty identifier")
		}
		numeric := true
		for _, c := range id {
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
				numeric = false
			default:
				return fmt.Errorf("identifier %q: only [0-9A-Za-z-] allowed", id)
			}
		}
		if pre && numeric && len(id) > 1 && id[0] == '0' {
			return fmt.Errorf("identifier %q: numeric identifiers have no leading zero", id)
		}
	}
	return nil
}

// String formats v as semver.
func (v Version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if len(v.Pre) > 0 {
		s += "-" + strings.Join(v.Pre, ".")
	}
	if v.Build != "" {
		s += "+" + v.Build
	}
	return s
}

// Compare returns -1, 0 or +1 as v is lower than, equal to or higher than w,
// by semver precedence (build metadata ignored; a pre-release is lower than
// its release).
func (v Version) Compare(w Version) int {
	if c := cmpNum(v.Major, w.Major); c != 0 {
		return c
	}
	if c := cmpNum(v.Minor, w.Minor); c != 0 {
		return c
	}
	if c := cmpNum(v.Patch, w.Patch); c != 0 {
		return c
	}
	switch {
	case len(v.Pre) == 0 && len(w.Pre) == 0:
		return 0
	case len(v.Pre) == 0:
		return 1
	case len(w.Pre) == 0:
		return -1
	}
	for i := 0; i < len(v.Pre) && i < len(w.Pre); i++ {
		if c := cmpIdent(v.Pre[i], w.Pre[i]); c != 0 {
			return c
		}
	}
	return cmpNum(uint64(len(v.Pre)), uint64(len(w.Pre)))
}

func cmpNum(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// cmpIdent compares pre-release identifiers: numeric ones numerically and
// below alphanumeric ones, which compare in ASCII order.
func cmpIdent(a, b string) int {
	an, aerr := strconv.ParseUint(a, 10, 64)
	bn, berr := strconv.ParseUint(b, 10, 64)
	switch {
	case aerr == nil && berr == nil:
		return cmpNum(an, bn)
	case aerr == nil:
		return -1
	case berr == nil:
		return 1
	}
	return strings.Compare(a, b)
}

// Range is a set of versions, written as space-separated comparators that
// must all hold, e.g. ">=1.2.0 <2.0.0". Comparators:
//
//	=V  V       exactly V
//	>V  >=V     above V / at least V
//	<V  <=V     below V / at most V
//	^V          compatible with V: same major (for 0.x, same minor; for
//	            0.0.x, same patch), at least V
//	~V          same major.minor, at least V
//	*           any version
//
// V may leave out trailing parts ("1.2" means 1.2.0 as a lower bound; "^1"
// is >=1.0.0 <2.0.0; "=1.2" or "1.2" is >=1.2.0 <1.3.0). There is no "||":
// a dependency names one range. Pre-release versions compare by plain semver
// precedence (no npm-style exclusion).
type Range struct {
	src   string
	comps []comparator
}

type comparator struct {
	op string // one of = > >= < <=
	v  Version
}

// maxRangeComparators bounds the comparators in one range.
const maxRangeComparators = 8

// ParseRange parses a version range (see Range).
func ParseRange(s string) (Range, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return Range{}, fmt.Errorf("version range is empty; use \"*\" for any version")
	}
	if len(fields) > maxRangeComparators || len(s) > 4*maxVersionLen {
		return Range{}, fmt.Errorf("version range %q: at most %d comparators", clip(s), maxRangeComparators)
	}
	r := Range{src: strings.Join(fields, " ")}
	for _, f := range fields {
		cs, err := parseComparator(f)
		if err != nil {
			return Range{}, fmt.Errorf("version range %q: %w", s, err)
		}
		r.comps = append(r.comps, cs...)
	}
	return r, nil
}

func parseComparator(f string) ([]comparator, error) {
	if f == "*" {
		return nil, nil
	}
	var op string
	for _, p := range []string{">=", "<=", ">", "<", "=", "^", "~"} {
		if strings.HasPrefix(f, p) {
			op = p
			break
		}
	}
	v, parts, err := parsePartial(f[len(op):])
	if err != nil {
		return nil, err
	}
	next := func(level int) Version { // the first version above the given part
		switch level {
		case 0:
			return Version{Major: v.Major + 1, Pre: []string{"0"}}
		case 1:
			return Version{Major: v.Major, Minor: v.Minor + 1, Pre: []string{"0"}}
		}
		return Version{Major: v.Major, Minor: v.Minor, Patch: v.Patch + 1, Pre: []string{"0"}}
	}
	switch op {
	case "", "=":
		if parts == 3 {
			return []comparator{{"=", v}}, nil
		}
		return []comparator{{">=", v}, {"<", next(parts - 1)}}, nil
	case ">=", "<", ">", "<=":
		if parts < 3 && (op == ">" || op == "<=") {
			// ">1.2" means above every 1.2.x; "<=1.2" means up to every 1.2.x.
			if op == ">" {
				return []comparator{{">=", next(parts - 1)}}, nil
			}
			return []comparator{{"<", next(parts - 1)}}, nil
		}
		return []comparator{{op, v}}, nil
	case "^":
		level := 0
		switch {
		case v.Major == 0 && parts >= 2 && (v.Minor != 0 || parts == 2):
			level = 1
		case v.Major == 0 && parts == 3:
			level = 2
		}
		return []comparator{{">=", v}, {"<", next(level)}}, nil
	case "~":
		level := 1
		if parts == 1 {
			level = 0
		}
		return []comparator{{">=", v}, {"<", next(level)}}, nil
	}
	return nil, fmt.Errorf("comparator %q not understood", f)
}

// parsePartial parses "1", "1.2" or a full version, returning how many
// numeric parts were given.
func parsePartial(s string) (Version, int, error) {
	if s == "" {
		return Version{}, 0, fmt.Errorf("comparator has no version")
	}
	if strings.Count(s, ".") >= 2 || strings.ContainsAny(s, "-+") {
		v, err := ParseVersion(s)
		return v, 3, err
	}
	parts := strings.Split(s, ".")
	var v Version
	nums := [2]*uint64{&v.Major, &v.Minor}
	for i, p := range parts {
		n, err := parseNum(p)
		if err != nil {
			return Version{}, 0, err
		}
		*nums[i] = n
	}
	return v, len(parts), nil
}

// Contains reports whether v is in the range.
func (r Range) Contains(v Version) bool {
	for _, c := range r.comps {
		d := v.Compare(c.v)
		ok := false
		switch c.op {
		case "=":
			ok = d == 0
		case ">":
			ok = d > 0
		case ">=":
			ok = d >= 0
		case "<":
			ok = d < 0
		case "<=":
			ok = d <= 0
		}
		if !ok {
			return false
		}
	}
	return true
}

// String returns the range as written (whitespace normalised).
func (r Range) String() string { return r.src }

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
