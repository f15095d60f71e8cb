package main

import (
	"io"

	"github.com/edgewarden/edgewarden/protocol/textsafe"
)

// Values printed in tables, errors and logs come from other users, devices
// and apps. A name holding ESC sequences could move the cursor, rewrite what
// an operator reads or set the terminal title; a bidi override could make a
// name read as another. termSafe shows every such character as an escape.

// termSafe returns s with control characters escaped, tab and newline too
// (they would break a table's layout).
func termSafe(s string) string { return textsafe.Escape(s, false) }

// safeWriter escapes control characters in everything written through it,
// keeping tabs and newlines (the layout of a table).
type safeWriter struct{ w io.Writer }

func (s safeWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(s.w, textsafe.Escape(string(p), true)); err != nil {
		return 0, err
	}
	return len(p), nil
}
