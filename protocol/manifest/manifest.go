// Package manifest is the app manifest shared by the controller and the
// agent: its type, a strict parser (Parse), semantic versions and version
// ranges (ParseVersion, ParseRange), installation guidance from dependencies
// and upgrade rules (Guide), and a verifier for the publisher's cosign
// signature over the exact manifest bytes (VerifySignature).
//
// The verifier does not use cosign itself: the agent binary must stay small
// (see DESIGN.md, "Apps and integrity"), so it checks cosign-format
// signatures with the standard library's crypto, doing what the
// sigstore/sigstore verifiers under cosign do. The controller verifies the same
// inputs with cosign (controller/catalog), and a parity test holds both to
// the same verdicts.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Limits on a manifest. A manifest over MaxBytes is refused before parsing.
const (
	MaxBytes        = 64 << 10 // encoded manifest
	MaxArtifacts    = 256
	MaxArtifactSize = 4 << 30 // one artifact, bytes
	MaxDependencies = 64
	MaxArgs         = 64
	MaxPathLen      = 255
	MaxDescription  = 4 << 10
)

// Runtimes a manifest may name.
const (
	RuntimeProcess = "process" // the agent starts and supervises Exec
	RuntimeSystemd = "systemd" // the agent generates a unit that runs Exec
)

// Unpack formats an artifact may ask for.
const (
	UnpackTar   = "tar"    // a POSIX tar archive, unpacked into the app directory
	UnpackTarGz = "tar.gz" // the same, gzip-compressed
)

// ErrInvalid is wrapped by every error Parse returns for a manifest that is
// malformed or breaks a rule.
var ErrInvalid = errors.New("invalid manifest")

// Manifest describes one app version. Publishers sign its exact bytes; the
// controller and the agent verify those bytes, never a re-encoding.
type Manifest struct {
	Name      string `json:"name"`      // app name, see NamePattern
	Version   string `json:"version"`   // semantic version, e.g. "1.4.2"
	Publisher string `json:"publisher"` // publisher name, see NamePattern
	Runtime   string `json:"runtime"`   // RuntimeProcess or RuntimeSystemd
	// Exec is what to run, relative to the app's directory.
	Exec Exec `json:"exec"`
	// Artifacts are the files of the app; at least one.
	Artifacts []Artifact `json:"artifacts"`
	// Dependencies are other apps that must be installed, with a version
	// range each. Empty: none.
	Dependencies []Dependency `json:"dependencies,omitempty"`
	// Upgrade holds the upgrade rules. The zero value: upgrade from any
	// version, no downgrade.
	Upgrade     UpgradeRules `json:"upgrade,omitempty"`
	Description string       `json:"description,omitempty"`

	version Version // parsed Version, set by Parse
}

// Exec is the command an app runs. Command is a path relative to the app
// directory (e.g. "bin/server"); Args are passed as they are.
type Exec struct {
	Command string   `json:"command"`
	Args    []string `json:"args,omitempty"`
}

// Artifact is one file of an app, placed at Path relative to the app
// directory. Mode is the file mode in octal (e.g. 0o755 is written 493 in
// JSON); zero means 0644. Unpack, when set, means the file is an archive
// whose entries are unpacked into the app directory after it is verified.
type Artifact struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"` // 64 lowercase hex digits
	Size   int64  `json:"size"`   // bytes, 1..MaxArtifactSize
	Mode   uint32 `json:"mode,omitempty"`
	Unpack string `json:"unpack,omitempty"` // "", UnpackTar or UnpackTarGz
}

// Dependency requires another app in a version range (see Range).
type Dependency struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// UpgradeRules say from which installed versions this one may be installed.
type UpgradeRules struct {
	// MinFrom is the lowest installed version this version may upgrade
	// from; empty means any. Installing over an older version is Block.
	MinFrom string `json:"min_from,omitempty"`
	// AllowDowngrade permits installing this version over a newer one
	// without forcing it.
	AllowDowngrade bool `json:"allow_downgrade,omitempty"`
}

// NamePattern is what app and publisher names must match: lowercase letters,
// digits, '.', '_' and '-', starting with a letter or digit, at most 63.
var NamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

var hexPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// SemVer returns the parsed version of a manifest returned by Parse.
func (m *Manifest) SemVer() Version { return m.version }

// Parse decodes and validates a manifest. Unknown fields are an error: a
// signed manifest means exactly what it says, and a field this version does
// not understand might change that.
func Parse(raw []byte) (*Manifest, error) {
	if len(raw) > MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalid, len(raw), MaxBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: not a manifest JSON object: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalid)
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return &m, nil
}

func (m *Manifest) validate() error {
	if !NamePattern.MatchString(m.Name) {
		return fmt.Errorf("name %q must match %s", clip(m.Name), NamePattern)
	}
	if !NamePattern.MatchString(m.Publisher) {
		return fmt.Errorf("publisher %q must match %s", clip(m.Publisher), NamePattern)
	}
	v, err := ParseVersion(m.Version)
	if err != nil {
		return err
	}
	m.version = v
	switch m.Runtime {
	case RuntimeProcess, RuntimeSystemd:
	default:
		return fmt.Errorf("runtime %q: want %q or %q", clip(m.Runtime), RuntimeProcess, RuntimeSystemd)
	}
	if err := CheckPath(m.Exec.Command); err != nil {
		return fmt.Errorf("exec command: %w", err)
	}
	if len(m.Exec.Args) > MaxArgs {
		return fmt.Errorf("exec has %d args, limit %d", len(m.Exec.Args), MaxArgs)
	}
	for i, a := range m.Exec.Args {
		if len(a) > 4096 || strings.ContainsRune(a, 0) {
			return fmt.Errorf("exec arg %d: at most 4096 bytes and no NUL", i)
		}
	}
	if len(m.Artifacts) == 0 {
		return fmt.Errorf("no artifacts: an app needs at least one file")
	}
	if len(m.Artifacts) > MaxArtifacts {
		return fmt.Errorf("%d artifacts, limit %d", len(m.Artifacts), MaxArtifacts)
	}
	seen := make(map[string]bool, len(m.Artifacts))
	for i, a := range m.Artifacts {
		if err := CheckPath(a.Path); err != nil {
			return fmt.Errorf("artifact %d: %w", i, err)
		}
		key := strings.ToLower(a.Path) // refuse paths that collide on case-insensitive disks too
		if seen[key] {
			return fmt.Errorf("artifact %d: path %q appears twice", i, a.Path)
		}
		seen[key] = true
		if !hexPattern.MatchString(a.SHA256) {
			return fmt.Errorf("artifact %q: sha256 must be 64 lowercase hex digits", a.Path)
		}
		if a.Size <= 0 || a.Size > MaxArtifactSize {
			return fmt.Errorf("artifact %q: size %d out of range 1..%d", a.Path, a.Size, int64(MaxArtifactSize))
		}
		if a.Mode&^0o777 != 0 {
			return fmt.Errorf("artifact %q: mode %o: only permission bits (0..0777) are allowed", a.Path, a.Mode)
		}
		switch a.Unpack {
		case "", UnpackTar, UnpackTarGz:
		default:
			return fmt.Errorf("artifact %q: unpack %q: want %q or %q", a.Path, clip(a.Unpack), UnpackTar, UnpackTarGz)
		}
	}
	if len(m.Dependencies) > MaxDependencies {
		return fmt.Errorf("%d dependencies, limit %d", len(m.Dependencies), MaxDependencies)
	}
	for _, d := range m.Dependencies {
		if !NamePattern.MatchString(d.Name) {
			return fmt.Errorf("dependency name %q must match %s", clip(d.Name), NamePattern)
		}
		if d.Name == m.Name {
			return fmt.Errorf("dependency on itself (%s)", d.Name)
		}
		if _, err := ParseRange(d.Version); err != nil {
			return fmt.Errorf("dependency %s: %w", d.Name, err)
		}
	}
	if m.Upgrade.MinFrom != "" {
		if _, err := ParseVersion(m.Upgrade.MinFrom); err != nil {
			return fmt.Errorf("upgrade min_from: %w", err)
		}
	}
	if len(m.Description) > MaxDescription {
		return fmt.Errorf("description is %d bytes, limit %d", len(m.Description), MaxDescription)
	}
	return nil
}

// CheckPath checks a path inside an app directory: relative, clean (no "."
// or ".." elements, no empty elements, no trailing slash), at most
// MaxPathLen bytes, no NUL or backslash, and not a dotfile at the top that
// the installer uses itself.
func CheckPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("path is empty")
	case len(p) > MaxPathLen:
		return fmt.Errorf("path %q is longer than %d bytes", clip(p), MaxPathLen)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is absolute; paths are relative to the app directory", clip(p))
	case strings.ContainsAny(p, "\x00\\"):
		return fmt.Errorf("path %q contains NUL or a backslash", clip(p))
	}
	for _, e := range strings.Split(p, "/") {
		if e == ".." {
			return fmt.Errorf("path %q contains \"..\"; paths must stay inside the app directory", clip(p))
		}
	}
	if path.Clean(p) != p || p == "." {
		return fmt.Errorf("path %q is not clean (use %q)", clip(p), path.Clean(p))
	}
	if strings.HasPrefix(p, ".edgewarden") {
		return fmt.Errorf("path %q: names starting with .edgewarden are reserved", clip(p))
	}
	return nil
}
