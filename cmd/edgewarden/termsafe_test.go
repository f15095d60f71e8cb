package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"text/tabwriter"
)

// A stored value with terminal escapes reaches a table neither through row
// nor through a direct Fprintf in a table function; the table keeps its
// own tabs and newlines.
func TestTablesEscapeStoredValues(t *testing.T) {
	var out bytes.Buffer
	a := &app{env: env{stdout: &out}}
	evil := "line-1\x1b[2J\x1b]0;pwned\x07"
	err := a.emit(nil, func(w *tabwriter.Writer) {
		row(w, "NAME", "LABELS")
		row(w, evil, "a=b\nFAKE ROW")
		fmt.Fprintf(w, "Deleted group %s.\n", evil)
	})
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if strings.ContainsAny(s, "\x1b\x07") {
		t.Fatalf("control characters reached the terminal: %q", s)
	}
	if lines := strings.Count(s, "\n"); lines != 3 {
		t.Errorf("table has %d lines, want 3 (a newline in a value must not add a row): %q", lines, s)
	}
	if !strings.Contains(s, `line-1\u001b[2J`) || !strings.Contains(s, `a=b\nFAKE ROW`) {
		t.Errorf("escaped values not shown: %q", s)
	}
}
