package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// printJSON writes v as indented JSON.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// emit prints v as JSON with -o json, else calls table.
func (a *app) emit(v any, table func(w *tabwriter.Writer)) error {
	if a.output == "json" {
		return a.printJSON(v)
	}
	// Every table goes through safeWriter: stored values cannot reach the
	// terminal as control sequences, whichever way a table prints them.
	w := tabwriter.NewWriter(safeWriter{a.stdout}, 0, 4, 2, ' ', 0)
	table(w)
	return w.Flush()
}

func row(w *tabwriter.Writer, cols ...any) {
	s := make([]string, len(cols))
	for i, c := range cols {
		s[i] = termSafe(fmt.Sprint(c)) // a tab or newline in a value would break the table
	}
	fmt.Fprintln(w, strings.Join(s, "\t"))
}

func labelsString(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

func listString(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func timePtrString(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return timeString(*t)
}

// silentString says how long a device has been silent: "4s", "12m",
// "3h5m", "2d4h"; "never seen" for nil.
func silentString(sec *int64) string {
	if sec == nil {
		return "never seen"
	}
	d := time.Duration(*sec) * time.Second
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", *sec)
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd%dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// parseLabels parses k=v pairs; with allowRemove, "k-" or "k=" means
// remove k (an empty value).
func parseLabels(pairs []string, allowRemove bool) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range pairs {
		if allowRemove && strings.HasSuffix(p, "-") && !strings.Contains(p, "=") {
			out[strings.TrimSuffix(p, "-")] = ""
			continue
		}
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" || (v == "" && !allowRemove) {
			return nil, usagef("label %q: write key=value", p)
		}
		out[k] = v
	}
	return out, nil
}
