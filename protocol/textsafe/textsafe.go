// Package textsafe shows strings that came from a peer (a device, a user, an
// app's log) without letting them act on whoever reads them: control
// characters that could move a terminal's cursor, forge a log line or make
// one name read as another are shown as visible escapes. The CLI uses it
// for everything it prints, the controller for every audit entry.
package textsafe

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Escape returns s with C0 and C1 control characters, DEL and the Unicode
// bidi controls shown as \uNNNN (tab, newline and carriage return as \t,
// \n, \r) and invalid UTF-8 bytes as \xNN. With keepLayout, tab and
// newline are kept as they are (for whole tables, whose layout they are).
func Escape(s string, keepLayout bool) string {
	if !needsEscape(s, keepLayout) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case keepLayout && (r == '\t' || r == '\n'):
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(s string, keepLayout bool) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || unsafeRune(r) || !keepLayout && (r == '\t' || r == '\n') {
			return true
		}
		i += size
	}
	return false
}

// unsafeRune reports the characters Escape replaces, other than tab and
// newline (decided by keepLayout).
func unsafeRune(r rune) bool {
	switch {
	case r == '\t' || r == '\n':
		return false
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	}
	return false
}

// Clip cuts s to at most max bytes at a rune boundary, marking the cut.
func Clip(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	const mark = "…(clipped)"
	cut := max(limit-len(mark), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
