package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// terminal returns standard input when it is a terminal.
func (a *app) terminal() (*os.File, bool) {
	f, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, false
	}
	return f, true
}

// askSecret prints prompt on standard error and reads one line from the
// terminal f without echoing it.
func (a *app) askSecret(f *os.File, prompt string) (string, error) {
	fmt.Fprint(a.stderr, prompt)
	p, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(a.stderr)
	if err != nil {
		return "", fmt.Errorf("read the password from the terminal: %w", err)
	}
	if len(p) == 0 {
		return "", usagef("no password given")
	}
	return string(p), nil
}

// readPassword reads the first line of r.
func readPassword(r io.Reader) (string, error) {
	lines, err := readLines(r, 1, "the password")
	if err != nil {
		return "", err
	}
	return lines[0], nil
}

// readLines reads n non-empty lines from r (a script's standard input),
// e.g. the old and the new password; what names them in errors.
func readLines(r io.Reader, n int, what string) ([]string, error) {
	br := bufio.NewReader(io.LimitReader(r, int64(n)*4096))
	out := make([]string, 0, n)
	for len(out) < n {
		line, err := br.ReadString('\n')
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("read %s from standard input: %w", what, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if n == 1 {
				return nil, usagef("no password on standard input (--password-stdin)")
			}
			return nil, usagef("standard input must hold %s, one per line: line %d is empty or missing", what, len(out)+1)
		}
		out = append(out, line)
	}
	return out, nil
}
