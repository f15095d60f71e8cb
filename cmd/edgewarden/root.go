package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/edgewarden/edgewarden/cmd/internal/buildinfo"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// env is the process environment a command runs in; tests replace it.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// app holds what every command shares.
type app struct {
	env
	output string // "table" or "json"
}

// usageError marks an error in how the command was called (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// run executes the CLI with args and returns the exit status.
func run(ctx context.Context, args []string, e env) int {
	a := &app{env: e}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := exitFailure
	var xe interface{ ExitCode() int } // e.g. 3 for "denied"
	if errors.As(err, &xe) {
		code = xe.ExitCode()
	}
	var ue usageError
	if errors.As(err, &ue) || isCobraUsageError(err) {
		code = exitUsage
	}
	msg := strings.Join(strings.Fields(err.Error()), " ") // one line
	if code == exitUsage && cmd != nil {
		msg += fmt.Sprintf(" (see '%s --help')", cmd.CommandPath())
	}
	fmt.Fprintln(e.stderr, "edgewarden: "+termSafe(msg))
	return code
}

// isCobraUsageError recognizes the errors cobra itself returns for unknown
// commands (the rest are wrapped where they arise).
func isCobraUsageError(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "unknown command") || strings.HasPrefix(s, "unknown flag") ||
		strings.HasPrefix(s, "unknown shorthand flag")
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "edgewarden",
		Short: "Manage an Edgewarden fleet through its controller",
		Long: `edgewarden talks to an Edgewarden controller's REST API.

Log in once with 'edgewarden login'; the session is kept in $EDGEWARDEN_CONFIG
(default ~/.config/edgewarden/config.json). Every command that prints data
takes -o json (stable snake_case fields) and otherwise prints a table.`,
		Example: `  edgewarden login --controller https://127.0.0.1:8443 --ca ca.pem --user admin --password-stdin < pw.txt
  edgewarden enroll-tokens create --groups line-1 --uses 10 --ttl 2h
  edgewarden devices ls -o json`,
		Version:       buildinfo.Version(version),
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if a.output != "table" && a.output != "json" {
				return usagef("-o %q: use -o json or -o table", a.output)
			}
			return nil
		},
	}
	root.SetVersionTemplate(buildinfo.Line("edgewarden", root.Version) + "\n")
	root.PersistentFlags().StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError{err} })
	// `edgewarden completion bash|zsh|fish|powershell` prints a completion script.
	root.CompletionOptions.DisableDefaultCmd = false
	root.AddCommand(a.loginCmd(), a.logoutCmd(), a.passwdCmd(), a.whoamiCmd(), a.enrollTokensCmd(), a.devicesCmd(), a.groupsCmd(), a.statusCmd(), a.versionCmd())
	root.AddCommand(a.localCmd())
	root.AddCommand(a.accessCmds()...) // access.go
	root.AddCommand(a.publishersCmd(), a.appsCmd())
	return root
}

// args wraps a cobra argument validator so its errors are usage errors.
func args(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := v(cmd, a); err != nil {
			return usagef("%v; usage: %s", err, cmd.UseLine())
		}
		return nil
	}
}

// group returns a command that only holds subcommands; called with an
// unknown subcommand it is a usage error.
func group(use, short, example string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args: func(cmd *cobra.Command, a []string) error {
			if len(a) > 0 {
				return usagef("unknown command %q for %q", a[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, a []string) error {
			return usagef("%s needs a subcommand", cmd.CommandPath())
		},
	}
	c.AddCommand(subs...)
	return c
}
