package store

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Bounds of an audit entry's text fields. Names that arrive from the
// network (a user name at login, a device id, a path in a device event)
// reach the audit log, which is read in terminals, consoles and SIEMs:
// they are bounded and their control characters escaped here, once, for
// every entry.
const (
	maxAuditName   = 256      // actor, target, source
	maxAuditDetail = 8 << 10  // detail
	maxAuditState  = 64 << 10 // state before / after (JSON)
)

// cleanAudit bounds e's text fields and escapes control characters in
// them (JSON state keeps its own escaping and is only bounded).
func cleanAudit(e *AuditEntry) {
	e.Actor = auditText(e.Actor, maxAuditName)
	e.Target = auditText(e.Target, maxAuditName)
	e.Source = auditText(e.Source, maxAuditName)
	e.Detail = auditText(e.Detail, maxAuditDetail)
	e.Before = clipText(e.Before, maxAuditState)
	e.After = clipText(e.After, maxAuditState)
}

// auditText escapes C0 and C1 control characters, DEL, bidi controls and
// invalid UTF-8 in s as \xNN or \uNNNN, then clips it to max bytes.
func auditText(s string, max int) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || isControl(r) {
			clean = false
			break
		}
	}
	if !clean {
		var b strings.Builder
		for i := 0; i < len(s); {
			r, size := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				fmt.Fprintf(&b, `\x%02x`, s[i])
			case isControl(r):
				fmt.Fprintf(&b, `\u%04x`, r)
			default:
				b.WriteString(s[i : i+size])
			}
			i += size
		}
		s = b.String()
	}
	return clipText(s, max)
}

func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f ||
		r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x200e || r == 0x200f || r == 0x061c
}

// clipText cuts s to at most max bytes at a rune boundary, marking the cut.
func clipText(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const mark = "…(clipped)"
	cut := max - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
