// Package fleet is the pure model of device-group membership: group names and
// labels, label selectors, include cycles, and the resolution of every group's
// full member set and every device's full group list. It has no database and
// no I/O; the store uses it to validate input and the desired-state compiler
// uses it to resolve membership.
//
// A group holds devices directly, by label selector, and through the groups it
// includes. Membership flows upward: when parent includes child, every member
// of child is a member of parent. Include cycles are refused.
package fleet

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// ErrInvalid is wrapped by every validation and parse error of this package.
var ErrInvalid = errors.New("invalid")

var (
	groupNamePattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	labelKeyPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)
	labelValuePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,126}$`)
)

// ValidateGroupName reports whether name can name a device group: 1-63
// characters a-z, 0-9, '.', '_' or '-', starting with a letter or digit.
func ValidateGroupName(name string) error {
	if !groupNamePattern.MatchString(name) {
		return fmt.Errorf("%w: group name %q: use 1-63 characters a-z, 0-9, '.', '_' or '-', starting with a letter or digit", ErrInvalid, name)
	}
	return nil
}

// ValidateLabelKey reports whether key can be a label key: 1-63 characters
// A-Z, a-z, 0-9, '.', '_', '/' or '-', starting with a letter or digit.
func ValidateLabelKey(key string) error {
	if !labelKeyPattern.MatchString(key) {
		return fmt.Errorf("%w: label key %q: use 1-63 characters A-Z, a-z, 0-9, '.', '_', '/' or '-', starting with a letter or digit", ErrInvalid, key)
	}
	return nil
}

// ValidateLabelValue reports whether value can be a label value: 1-127
// characters A-Z, a-z, 0-9, '.', '_', ':', '/', '@', '+' or '-', starting with
// a letter or digit. Empty values are not stored (setting a label to the empty
// value removes it), and ',', '=', '!' and spaces are kept out so that every
// label can be written in a selector.
func ValidateLabelValue(key, value string) error {
	if !labelValuePattern.MatchString(value) {
		return fmt.Errorf("%w: label %s value %q: use 1-127 characters A-Z, a-z, 0-9, '.', '_', ':', '/', '@', '+' or '-', starting with a letter or digit", ErrInvalid, key, value)
	}
	return nil
}

// ValidateLabels checks every key and value of labels, reporting the first
// bad one in key order.
func ValidateLabels(labels map[string]string) error {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := ValidateLabelKey(k); err != nil {
			return err
		}
		if err := ValidateLabelValue(k, labels[k]); err != nil {
			return err
		}
	}
	return nil
}

// op is the operator of one selector requirement.
type op int

const (
	opEqual     op = iota // k=v
	opNotEqual            // k!=v (also true when k is absent)
	opExists              // k
	opNotExists           // !k
)

// requirement is one comma-separated term of a selector.
type requirement struct {
	op    op
	key   string
	value string
}

func (r requirement) matches(labels map[string]string) bool {
	v, ok := labels[r.key]
	switch r.op {
	case opEqual:
		return ok && v == r.value
	case opNotEqual:
		return !ok || v != r.value
	case opExists:
		return ok
	case opNotExists:
		return !ok
	}
	return false
}

func (r requirement) String() string {
	switch r.op {
	case opEqual:
		return r.key + "=" + r.value
	case opNotEqual:
		return r.key + "!=" + r.value
	case opExists:
		return r.key
	case opNotExists:
		return "!" + r.key
	}
	return ""
}

// Selector is a parsed label selector. The zero value is the empty selector,
// which selects nothing (a group without a selector holds only its direct and
// included members).
type Selector struct {
	reqs []requirement
}

// ParseSelector parses a label selector: comma-separated terms, every one of
// which must hold for a device to match.
//
//	k=v    label k is v
//	k!=v   label k is absent or not v
//	k      label k is present
//	!k     label k is absent
//
// Spaces around terms are ignored. The empty string is the empty selector.
// A selector made only of negative terms (k!=v, !k) is refused: it would pull
// almost every device of the fleet into the group by accident.
func ParseSelector(s string) (Selector, error) {
	if strings.TrimSpace(s) == "" {
		return Selector{}, nil
	}
	var sel Selector
	positive := false
	for i, term := range strings.Split(s, ",") {
		term = strings.TrimSpace(term)
		if term == "" {
			return Selector{}, fmt.Errorf("%w: selector %q: term %d is empty; write terms like k=v,k2=v2", ErrInvalid, s, i+1)
		}
		var r requirement
		switch {
		case strings.Contains(term, "!="):
			k, v, _ := strings.Cut(term, "!=")
			r = requirement{op: opNotEqual, key: strings.TrimSpace(k), value: strings.TrimSpace(v)}
		case strings.Contains(term, "="):
			k, v, _ := strings.Cut(term, "=")
			r = requirement{op: opEqual, key: strings.TrimSpace(k), value: strings.TrimSpace(v)}
			if strings.HasPrefix(r.value, "=") {
				return Selector{}, fmt.Errorf("%w: selector %q: term %q: use a single '=' (k=v)", ErrInvalid, s, term)
			}
		case strings.HasPrefix(term, "!"):
			r = requirement{op: opNotExists, key: strings.TrimSpace(term[1:])}
		default:
			r = requirement{op: opExists, key: term}
		}
		if err := ValidateLabelKey(r.key); err != nil {
			return Selector{}, fmt.Errorf("selector %q: term %q: %w", s, term, err)
		}
		if r.op == opEqual || r.op == opNotEqual {
			if r.value == "" {
				return Selector{}, fmt.Errorf("%w: selector %q: term %q has no value; use %q to select devices without the label", ErrInvalid, s, term, "!"+r.key)
			}
			if err := ValidateLabelValue(r.key, r.value); err != nil {
				return Selector{}, fmt.Errorf("selector %q: term %q: %w", s, term, err)
			}
		}
		if r.op == opEqual || r.op == opExists {
			positive = true
		}
		sel.reqs = append(sel.reqs, r)
	}
	if !positive {
		return Selector{}, fmt.Errorf("%w: selector %q has only negative terms and would select most of the fleet; add at least one k=v or k term", ErrInvalid, s)
	}
	return sel, nil
}

// MustParseSelector is ParseSelector for constants in tests and examples; it
// panics on error.
func MustParseSelector(s string) Selector {
	sel, err := ParseSelector(s)
	if err != nil {
		panic(err)
	}
	return sel
}

// Empty reports whether the selector has no terms (and so selects nothing).
func (s Selector) Empty() bool { return len(s.reqs) == 0 }

// Matches reports whether a device with these labels is selected. The empty
// selector matches nothing.
func (s Selector) Matches(labels map[string]string) bool {
	if len(s.reqs) == 0 {
		return false
	}
	for _, r := range s.reqs {
		if !r.matches(labels) {
			return false
		}
	}
	return true
}

// String returns the selector in canonical form: terms in the order given,
// separated by "," without spaces. It parses back to an equal selector.
func (s Selector) String() string {
	parts := make([]string, len(s.reqs))
	for i, r := range s.reqs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}
