package auth

import (
	"strings"
	"testing"
)

func TestCheckPolicy(t *testing.T) {
	for _, tc := range []struct {
		pw   string
		want string // substring of the error; "" means accepted
	}{
		{"short", "too short: it has 5 characters, the minimum is 12"},
		{"elevenchars", "too short: it has 11 characters"},
		{"ääääääääääb", "too short: it has 11 characters"}, // 22 bytes, 11 characters
		{strings.Repeat("x", 30), "one character repeated"},
		{"password1234", "common passwords"},
		{"Password2024!", "common passwords"},
		{"QWERTYUIOPASDF", "common passwords"},
		{"qwerty123456789", "common passwords"},
		{"123456789012", "common passwords"},
		{"correcthorsebatterystaple", "common passwords"},
		{"edgewarden2026!!", "common passwords"},
		{strings.Repeat("ab", MaxPasswordBytes), "too long"},
		{"tractor lamp violet harbour", ""},
		{"admin-password-1", ""},
		{"1password-is-not-a-stem", ""},
	} {
		err := CheckPolicy(tc.pw)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckPolicy(%q) = %v; want accepted", tc.pw, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckPolicy(%q) = %v; want an error containing %q", tc.pw, err, tc.want)
		}
	}
	// HashPassword enforces the same policy: no path stores a weak password.
	if _, err := HashPassword("password1234"); err == nil {
		t.Error("HashPassword accepted a common password")
	}
}
