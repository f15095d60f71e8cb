package main

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Values printed in tables, errors and logs come from other users, devices
// and apps. A name holding ESC sequences could move the cursor, rewrite what
// an operator reads or set the terminal title; a bidi override could make a
// name read as another. termSafe shows every such character as an escape.

// termSafe returns s with control characters escaped: C0 and C1 controls
// (including tab and newline, which would break a table's layout), DEL and
// the Unicode bidi controls. Invalid UTF-8 bytes are shown as \xNN.
func termSafe(s string) string {
	return escapeControls(s, false)
}

// escapeControls escapes what termSafe does, keeping tab and newline when
// keepLayout is set (for whole table output, whose tabs and newlines are
// the table's own structure).
func escapeControls(s string, keepLayout bool) string {
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

func unsafeRune(r rune) bool {
	switch {
	case r == '\t' || r == '\n':
		return false // decided by the caller
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	}
	return false
}

// safeWriter escapes control characters in everything written through it,
// keeping tabs and newlines (the layout of a table).
type safeWriter struct{ w io.Writer }

func (s safeWriter) Write(p []byte) (int, error) {
	out := escapeControls(string(p), true)
	if _, err := io.WriteString(s.w, out); err != nil {
		return 0, err
	}
	return len(p), nil
}
