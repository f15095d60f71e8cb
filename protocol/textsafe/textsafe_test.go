package textsafe

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain name":            "plain name",
		"grüße":                 "grüße",
		"\x1b]0;owned\x07title": `\u001b]0;owned\u0007title`,
		"two\nlines\tand tab":   `two\nlines\tand tab`,
		"cr\rover":              `cr\rover`,
		"bidi\u202eevil":        `bidi\u202eevil`,
		"c1\u009bcsi":           `c1\u009bcsi`,
		"bad\xffbyte":           `bad\xffbyte`,
	} {
		if got := Escape(in, false); got != want {
			t.Errorf("Escape(%q) = %q; want %q", in, got, want)
		}
	}
	if got := Escape("a\tb\nc\x1b", true); got != "a\tb\nc\\u001b" {
		t.Errorf("keepLayout: %q", got)
	}
}

func TestClip(t *testing.T) {
	if Clip("short", 10) != "short" {
		t.Error("short string clipped")
	}
	s := Clip(strings.Repeat("ü", 100), 51)
	if len(s) > 51 || !utf8.ValidString(s) || !strings.HasSuffix(s, "(clipped)") {
		t.Errorf("Clip = %q (%d bytes)", s, len(s))
	}
}

func FuzzEscape(f *testing.F) {
	f.Add("a\x1b[2Jb\n\xff\u202e")
	f.Fuzz(func(t *testing.T, s string) {
		for _, keep := range []bool{false, true} {
			out := Escape(s, keep)
			if !utf8.ValidString(out) {
				t.Fatalf("invalid UTF-8 out of %q", s)
			}
			for _, r := range out {
				if unsafeRune(r) || !keep && (r == '\t' || r == '\n') {
					t.Fatalf("Escape(%q, %v) kept %U", s, keep, r)
				}
			}
		}
	})
}
