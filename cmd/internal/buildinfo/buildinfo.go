// Package buildinfo says which build of Edgewarden a binary is, for
// `--version` on all three binaries and the controller's version endpoint.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/edgewarden/edgewarden/protocol"
)

// Version returns stamped (set at link time with -X, e.g. by make and the
// packages) or, when it is empty or "dev", what the Go toolchain recorded:
// the module version, or the VCS revision with "-dirty" for a modified
// tree, or "dev".
func Version(stamped string) string {
	if stamped != "" && stamped != "dev" {
		return stamped
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "dev-" + rev
}

// Line is the one line `--version` prints: the binary, its version, the
// wire schema it speaks and the Go version it was built with.
func Line(binary, version string) string {
	return fmt.Sprintf("%s %s (document schema %d, %s)", binary, version, protocol.Schema, runtime.Version())
}
