package auth

import (
	_ "embed"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MinPasswordChars is the shortest password the policy accepts, counted in
// characters (not bytes): length is what slows guessing most, and a phrase
// of a few words is easier to remember than a short string of symbols.
const MinPasswordChars = 12

//go:embed common-passwords.txt
var commonPasswordsText string

// commonPasswords holds the shipped list, lower case.
var commonPasswords = func() map[string]bool {
	m := make(map[string]bool)
	for _, line := range strings.Split(commonPasswordsText, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			m[line] = true
		}
	}
	return m
}()

// CheckPolicy reports whether password may be set as a user's password:
// MinPasswordChars to MaxPasswordBytes long, not one character repeated, and
// not on the shipped list of common passwords, also when digits and symbols
// are added at its end (password2024!). The error names the rule that failed.
// Stored hashes are not re-checked: the policy applies when a password is
// chosen (init, activation, reset, passwd).
func CheckPolicy(password string) error {
	n := utf8.RuneCountInString(password)
	if n < MinPasswordChars {
		return fmt.Errorf("password is too short: it has %d characters, the minimum is %d (a phrase of a few words is easy to remember and hard to guess)", n, MinPasswordChars)
	}
	if len(password) > MaxPasswordBytes {
		return fmt.Errorf("password is too long: it has %d bytes, the maximum is %d", len(password), MaxPasswordBytes)
	}
	if strings.Count(password, password[:1]) == len(password) {
		return fmt.Errorf("password is one character repeated; choose a phrase of a few words")
	}
	lower := strings.ToLower(password)
	stem := strings.TrimRightFunc(lower, func(r rune) bool {
		return unicode.IsDigit(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsSpace(r)
	})
	if commonPasswords[lower] || commonPasswords[stem] {
		return fmt.Errorf("password is on the list of common passwords that attackers try first; choose another (a phrase of a few unrelated words works well)")
	}
	return nil
}
