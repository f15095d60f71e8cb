// Command edgewarden-agent is the Edgewarden service on an edge device:
// `enroll` registers the device with its controller, `run` is the service,
// `status` prints the local view. See shared/CLI.md for the contract.
//
// Exit status: 0 success, 1 failure (one line on stderr), 2 bad usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/edgewarden/edgewarden/agent"
	"github.com/edgewarden/edgewarden/cmd/internal/buildinfo"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// failure marks an error that happened while doing the work (exit 1), as
// opposed to a usage error found by cobra or by flag checks (exit 2).
type failure struct{ err error }

func (f failure) Error() string { return f.err.Error() }
func (f failure) Unwrap() error { return f.err }

// usage marks a bad-usage error found by our own checks.
type usage struct{ msg string }

func (u usage) Error() string { return u.msg }

// work wraps a command body so its errors count as failures.
func work(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := fn(cmd, args); err != nil {
			var u usage
			if errors.As(err, &u) {
				return err
			}
			return failure{err}
		}
		return nil
	}
}

func newRoot() *cobra.Command {
	// --version is our own flag, not cobra's: cobra prints its version
	// through text/template, whose reflection keeps every exported method
	// in the binary (2.8 MB more on amd64; docs/BENCHMARKS.md).
	var version bool
	root := &cobra.Command{
		Use:           "edgewarden-agent",
		Short:         "Edgewarden agent: enforces the controller's signed desired state on this device",
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if version {
				fmt.Fprintln(cmd.OutOrStdout(), buildinfo.Line("edgewarden-agent", buildinfo.Version(agent.Version)))
				return nil
			}
			return cmd.Help()
		},
	}
	root.Flags().BoolVarP(&version, "version", "v", false, "print the version and exit")
	root.AddCommand(newEnrollCmd(), newRunCmd(), newStatusCmd())
	return root
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	os.Exit(exitCode(err))
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var f failure
	if errors.As(err, &f) {
		fmt.Fprintln(os.Stderr, "edgewarden-agent: "+err.Error())
		return 1
	}
	fmt.Fprintln(os.Stderr, "edgewarden-agent: "+err.Error()+" (see edgewarden-agent --help)")
	return 2
}
