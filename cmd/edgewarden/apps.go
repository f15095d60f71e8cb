package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/edgewarden/edgewarden/controller/apiv1"
	"github.com/edgewarden/edgewarden/controller/catalog"
	"github.com/edgewarden/edgewarden/controller/client"
	"github.com/edgewarden/edgewarden/protocol/manifest"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func (a *app) appsCmd() *cobra.Command {
	return group("apps", "Build, sign, push and deploy signed apps",
		`  edgewarden apps manifest --name web --version 1.0.0 --publisher acme --exec run.sh run.sh > manifest.json
  edgewarden apps sign --key cosign.key manifest.json
  edgewarden apps push --manifest manifest.json --signature manifest.json.sig run.sh
  edgewarden apps check web 1.0.0 --group line-1
  edgewarden apps assign web 1.0.0 --group line-1`,
		a.appsManifestCmd(), a.appsSignCmd(), a.appsPushCmd(), a.appsListCmd(), a.appsShowCmd(),
		a.appsCheckCmd(), a.appsAssignCmd(), a.appsUnassignCmd(), a.appsDeleteVersionCmd())
}

// artifactArg is an ARTIFACT argument: a local file, and the path it has
// in the app directory (FILE=PATH; the file's base name by default).
type artifactArg struct {
	file, path string
}

func parseArtifactArgs(argv []string) []artifactArg {
	out := make([]artifactArg, 0, len(argv))
	for _, s := range argv {
		file, path, ok := strings.Cut(s, "=")
		if !ok {
			path = filepath.Base(file)
		}
		out = append(out, artifactArg{file: file, path: path})
	}
	return out
}

func hashFile(path string) (string, int64, os.FileMode, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", 0, 0, err
	}
	if !st.Mode().IsRegular() {
		return "", 0, 0, fmt.Errorf("%s is not a regular file", path)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, st.Mode(), nil
}

func (a *app) appsManifestCmd() *cobra.Command {
	var (
		m          manifest.Manifest
		deps       []string
		unpack     []string
		execArgs   []string
		allowDown  bool
		minFrom    string
		execScript string
	)
	c := &cobra.Command{
		Use:   "manifest --name N --version V --publisher P [--runtime process] --exec CMD ARTIFACT[=PATH]..",
		Short: "Write an app manifest with the artifacts' digests and sizes to stdout",
		Long: `manifest hashes each ARTIFACT file and writes the manifest to stdout, to be
signed ('apps sign' or 'cosign sign-blob') and pushed exactly as written.
An artifact is placed in the app directory at its base name, or at PATH with
FILE=PATH. Executable files get mode 0755. --exec names the command to run,
relative to the app directory.`,
		Example: `  edgewarden apps manifest --name web --version 1.0.0 --publisher acme --exec run.sh run.sh > manifest.json
  edgewarden apps manifest --name web --version 1.1.0 --publisher acme --runtime systemd \
      --exec bin/server --arg --port=8080 --depends db='>=2.0.0 <3.0.0' build/server=bin/server > manifest.json`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			m.Exec = manifest.Exec{Command: execScript, Args: execArgs}
			m.Upgrade = manifest.UpgradeRules{MinFrom: minFrom, AllowDowngrade: allowDown}
			for _, d := range deps {
				name, rng, ok := strings.Cut(d, "=")
				if !ok {
					return usagef("--depends %q: write NAME=RANGE, e.g. db='>=2.0.0 <3.0.0'", d)
				}
				m.Dependencies = append(m.Dependencies, manifest.Dependency{Name: name, Version: rng})
			}
			unpacks := map[string]string{}
			for _, u := range unpack {
				p, format, ok := strings.Cut(u, "=")
				if !ok {
					return usagef("--unpack %q: write PATH=tar or PATH=tar.gz", u)
				}
				unpacks[p] = format
			}
			for _, art := range parseArtifactArgs(argv) {
				sum, size, mode, err := hashFile(art.file)
				if err != nil {
					return fmt.Errorf("artifact %s: %w", art.file, err)
				}
				ma := manifest.Artifact{Path: art.path, SHA256: sum, Size: size, Unpack: unpacks[art.path]}
				if mode&0o111 != 0 {
					ma.Mode = 0o755
				}
				m.Artifacts = append(m.Artifacts, ma)
			}
			raw, err := json.MarshalIndent(&m, "", "  ")
			if err != nil {
				return err
			}
			raw = append(raw, '\n')
			if _, err := manifest.Parse(raw); err != nil {
				return usagef("%v", err)
			}
			_, err = a.stdout.Write(raw)
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&m.Name, "name", "", "app name")
	f.StringVar(&m.Version, "version", "", "semantic version, e.g. 1.0.0")
	f.StringVar(&m.Publisher, "publisher", "", "publisher name (as in 'publishers ls')")
	f.StringVar(&m.Runtime, "runtime", manifest.RuntimeProcess, "process or systemd")
	f.StringVar(&execScript, "exec", "", "command to run, relative to the app directory")
	f.StringArrayVar(&execArgs, "arg", nil, "argument of the command (repeat)")
	f.StringArrayVar(&deps, "depends", nil, "dependency NAME=RANGE (repeat)")
	f.StringArrayVar(&unpack, "unpack", nil, "unpack archive PATH=tar|tar.gz into the app directory (repeat)")
	f.StringVar(&minFrom, "min-from", "", "lowest installed version this one may upgrade from")
	f.BoolVar(&allowDown, "allow-downgrade", false, "permit installing over a newer version")
	f.StringVar(&m.Description, "description", "", "description")
	return c
}

// keyPassword returns how to get the cosign key password: COSIGN_PASSWORD
// when set, else a prompt when stdin is a terminal, else the empty
// password (cosign's default for keys generated without one).
func (a *app) keyPassword() catalog.PasswordFunc {
	return func() ([]byte, error) {
		if p := a.getenv("COSIGN_PASSWORD"); p != "" {
			return []byte(p), nil
		}
		f, ok := a.terminal()
		if !ok {
			return nil, nil
		}
		fmt.Fprint(a.stderr, "Enter password for private key: ")
		p, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		if err != nil {
			return nil, fmt.Errorf("read the key password: %w", err)
		}
		return p, nil
	}
}

func (a *app) appsSignCmd() *cobra.Command {
	var key, output string
	c := &cobra.Command{
		Use:   "sign --key cosign.key MANIFEST [--output FILE]",
		Short: "Sign a manifest with a cosign private key",
		Long: `sign signs the exact bytes of MANIFEST with a cosign private key file (as
'cosign generate-key-pair' writes it; the password comes from
COSIGN_PASSWORD or a prompt) and writes the base64 signature to
MANIFEST.sig, or to --output ('-' for stdout). 'cosign verify-blob --key
cosign.pub --signature MANIFEST.sig --insecure-ignore-tlog=true MANIFEST'
accepts it.`,
		Example: "  COSIGN_PASSWORD=... edgewarden apps sign --key cosign.key manifest.json",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if key == "" {
				return usagef("--key FILE is required: the cosign private key")
			}
			raw, err := os.ReadFile(argv[0])
			if err != nil {
				return fmt.Errorf("read manifest: %w", err)
			}
			if _, err := manifest.Parse(raw); err != nil {
				return fmt.Errorf("sign %s: %w; fix it (or write it with 'edgewarden apps manifest') before signing", argv[0], err)
			}
			sig, err := catalog.Sign(cmd.Context(), key, a.keyPassword(), raw)
			if err != nil {
				return err
			}
			if output == "-" {
				_, err := fmt.Fprintln(a.stdout, sig)
				return err
			}
			if output == "" {
				output = argv[0] + ".sig"
			}
			if err := os.WriteFile(output, []byte(sig+"\n"), 0o644); err != nil {
				return fmt.Errorf("write signature: %w", err)
			}
			return a.emit(map[string]string{"manifest": argv[0], "signature_file": output}, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "Signed %s; signature in %s.\n", argv[0], output)
			})
		},
	}
	c.Flags().StringVar(&key, "key", "", "cosign private key file")
	c.Flags().StringVar(&output, "output", "", "signature file (default MANIFEST.sig; - for stdout)")
	return c
}

// matchArtifacts pairs each artifact the manifest lists with one of the
// given files: FILE=PATH names it explicitly, otherwise a file matches by
// its path as given or its base name.
func matchArtifacts(m *manifest.Manifest, given []artifactArg) ([]client.PushArtifact, int64, error) {
	used := make([]bool, len(given))
	var out []client.PushArtifact
	var total int64
	for _, ma := range m.Artifacts {
		found := -1
		for i, g := range given {
			if used[i] {
				continue
			}
			if g.path == ma.Path || filepath.ToSlash(filepath.Clean(g.file)) == ma.Path || filepath.Base(g.file) == filepath.Base(ma.Path) {
				found = i
				break
			}
		}
		if found < 0 {
			return nil, 0, usagef("the manifest lists artifact %s but no ARTIFACT argument matches it; pass FILE=%s", ma.Path, ma.Path)
		}
		used[found] = true
		file := given[found].file
		st, err := os.Stat(file)
		if err != nil {
			return nil, 0, fmt.Errorf("artifact %s: %w", ma.Path, err)
		}
		total += st.Size()
		out = append(out, client.PushArtifact{Path: ma.Path, Open: func() (io.ReadCloser, error) { return os.Open(file) }})
	}
	for i, u := range used {
		if !u {
			return nil, 0, usagef("artifact %s is not in the manifest; rebuild the manifest with 'edgewarden apps manifest'", given[i].file)
		}
	}
	return out, total, nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// progressBar draws an upload's progress on a terminal, at most once per
// percent.
func progressBar(w io.Writer, label string, total int64) func(int64) {
	last := -1
	return func(sent int64) {
		pct := 100
		if total > 0 {
			pct = int(min(sent*100/total, 100))
		}
		if pct == last {
			return
		}
		last = pct
		const width = 30
		fill := pct * width / 100
		fmt.Fprintf(w, "\r%s [%s%s] %3d%% %s", label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), pct, humanBytes(min(sent, total)))
	}
}

func (a *app) appsPushCmd() *cobra.Command {
	var manifestFile, sigFile string
	c := &cobra.Command{
		Use:   "push --manifest F --signature F ARTIFACT[=PATH]..",
		Short: "Upload a signed app version (checkpoint 1 runs on the controller)",
		Long: `push uploads the manifest, its signature (base64 or a cosign bundle) and the
artifact files. The controller stores the version only if the signature
verifies against a trusted key of the manifest's publisher and every
artifact has the declared size and SHA-256; otherwise nothing is stored.
Each manifest artifact is matched to the ARTIFACT whose base name (or
FILE=PATH) equals its path. A progress bar shows on a terminal.`,
		Example: "  edgewarden apps push --manifest manifest.json --signature manifest.json.sig run.sh",
		Args:    args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if manifestFile == "" || sigFile == "" {
				return usagef("--manifest FILE and --signature FILE are required")
			}
			raw, err := os.ReadFile(manifestFile)
			if err != nil {
				return fmt.Errorf("read manifest: %w", err)
			}
			sig, err := os.ReadFile(sigFile)
			if err != nil {
				return fmt.Errorf("read signature: %w", err)
			}
			m, err := manifest.Parse(raw)
			if err != nil {
				return fmt.Errorf("push %s: %w", manifestFile, err)
			}
			arts, total, err := matchArtifacts(m, parseArtifactArgs(argv))
			if err != nil {
				return err
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			req := client.PushRequest{Manifest: raw, Signature: sig, Artifacts: arts}
			tty := isTerminal(a.stderr)
			if tty {
				req.Progress = progressBar(a.stderr, fmt.Sprintf("push %s %s", m.Name, m.Version), total)
			}
			v, err := cl.PushApp(cmd.Context(), req)
			if tty {
				fmt.Fprintln(a.stderr)
			}
			if err != nil {
				return fmt.Errorf("push %s %s: %w", m.Name, m.Version, err)
			}
			return a.emit(v, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "Pushed %s %s (publisher %s, %d artifacts, %s), verified with key %s.\n",
					v.Name, v.Version, v.Publisher, len(v.Artifacts), humanBytes(total), shortKeyID(v.KeyID))
			})
		},
	}
	c.Flags().StringVar(&manifestFile, "manifest", "", "manifest file, exactly as signed")
	c.Flags().StringVar(&sigFile, "signature", "", "signature file (base64 or cosign bundle)")
	return c
}

func (a *app) appsListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List apps, their versions and where they are assigned",
		Example: "  edgewarden apps ls\n  edgewarden apps ls -o json",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			apps, err := cl.ListApps(cmd.Context())
			if err != nil {
				return fmt.Errorf("list apps: %w", err)
			}
			return a.emit(apps, func(w *tabwriter.Writer) {
				row(w, "NAME", "PUBLISHER", "VERSIONS", "ASSIGNED", "DEVICES", "RUNNING", "FAILED")
				for _, s := range apps {
					var as []string
					for _, x := range s.Assignments {
						as = append(as, x.Group+"="+x.Version)
					}
					row(w, s.Name, s.Publisher, listString(s.Versions), listString(as), s.Devices, s.Running, s.Failed)
				}
			})
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *app) appsShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show NAME",
		Short:   "Show an app's versions, assignments and state on each device",
		Example: "  edgewarden apps show web\n  edgewarden apps show web -o json",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			app, err := cl.GetApp(cmd.Context(), argv[0])
			if err != nil {
				return fmt.Errorf("show app %s: %w", argv[0], err)
			}
			return a.emit(app, func(w *tabwriter.Writer) {
				row(w, "Name:", app.Name)
				row(w, "Publisher:", app.Publisher)
				fmt.Fprintln(w)
				row(w, "VERSION", "RUNTIME", "ARTIFACTS", "PUSHED", "BY", "INSTALLABLE", "ASSIGNED TO")
				for _, v := range app.Versions {
					row(w, v.Version, v.Runtime, len(v.Artifacts), timeString(v.PushedAt), v.PushedBy, yesNo(v.Installable), listString(v.AssignedTo))
				}
				fmt.Fprintln(w)
				row(w, "DEVICE", "ONLINE", "DESIRED", "REPORTED", "STATE", "REASON")
				for _, d := range app.Devices {
					row(w, d.Device, yesNo(d.Online), dash(d.DesiredVersion), dash(d.Version), dash(d.State), dash(d.Reason))
				}
			})
		},
	}
}

func (a *app) printCheck(res *apiv1.CheckResult) func(w *tabwriter.Writer) {
	return func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "%s %s on group %s: %s\n", res.App, res.Version, res.Group, res.Verdict)
		for _, r := range res.Reasons {
			fmt.Fprintf(w, "  %s\n", r)
		}
		if len(res.Devices) == 0 {
			fmt.Fprintln(w, "The group has no active devices.")
			return
		}
		row(w, "DEVICE", "VERDICT", "REASONS")
		for _, d := range res.Devices {
			row(w, d.Device, d.Verdict, dash(strings.Join(d.Reasons, "; ")))
		}
	}
}

func (a *app) appsCheckCmd() *cobra.Command {
	var grp string
	var allowDown bool
	c := &cobra.Command{
		Use:   "check NAME VERSION --group G [--allow-downgrade]",
		Short: "Installation guidance (Allow / Warn / Block) for each device of a group",
		Long: `check evaluates the version's dependencies and upgrade rules against the
apps each device of the group reports, and whether its signature still
verifies against a trusted key. 'apps assign' refuses Block and needs
--force for Warn.`,
		Example: "  edgewarden apps check web 1.1.0 --group line-1",
		Args:    args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if grp == "" {
				return usagef("--group is required")
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			res, err := cl.CheckApp(cmd.Context(), argv[0], argv[1], grp, allowDown)
			if err != nil {
				return fmt.Errorf("check %s %s: %w", argv[0], argv[1], err)
			}
			return a.emit(res, a.printCheck(res))
		},
	}
	c.Flags().StringVar(&grp, "group", "", "device group")
	c.Flags().BoolVar(&allowDown, "allow-downgrade", false, "treat a downgrade the manifest does not allow as Warn, not Block")
	return c
}

func (a *app) appsAssignCmd() *cobra.Command {
	var req apiv1.AssignRequest
	c := &cobra.Command{
		Use:   "assign NAME VERSION --group G [--force] [--allow-downgrade]",
		Short: "Assign an app version to a device group",
		Long: `assign makes every device of the group install VERSION (replacing the
version assigned to the group before). It is refused when any device's
guidance is Block; Warn needs --force, and the forced assignment is
audited.`,
		Example: "  edgewarden apps assign web 1.1.0 --group line-1",
		Args:    args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if req.Group == "" {
				return usagef("--group is required")
			}
			req.Version = argv[1]
			cl, err := a.client()
			if err != nil {
				return err
			}
			res, err := cl.AssignApp(cmd.Context(), argv[0], req)
			if err != nil {
				return fmt.Errorf("assign %s %s: %w", argv[0], argv[1], err)
			}
			return a.emit(res, func(w *tabwriter.Writer) {
				forced := ""
				if res.Assignment.Forced {
					forced = " (forced over Warn)"
				}
				fmt.Fprintf(w, "Assigned %s %s to group %s%s; %d device(s).\n", res.Assignment.App, res.Assignment.Version, res.Assignment.Group, forced, len(res.Check.Devices))
			})
		},
	}
	c.Flags().StringVar(&req.Group, "group", "", "device group")
	c.Flags().BoolVar(&req.Force, "force", false, "assign even where the guidance is Warn (audited)")
	c.Flags().BoolVar(&req.AllowDowngrade, "allow-downgrade", false, "permit a downgrade the manifest does not allow (becomes Warn)")
	return c
}

func (a *app) appsUnassignCmd() *cobra.Command {
	var grp string
	c := &cobra.Command{
		Use:     "unassign NAME --group G",
		Short:   "Remove an app from a device group (devices stop and remove it)",
		Example: "  edgewarden apps unassign web --group line-1",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if grp == "" {
				return usagef("--group is required")
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			if err := cl.UnassignApp(cmd.Context(), argv[0], grp); err != nil {
				return fmt.Errorf("unassign %s: %w", argv[0], err)
			}
			return a.emit(map[string]any{"app": argv[0], "group": grp, "unassigned": true}, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "Unassigned %s from group %s.\n", argv[0], grp)
			})
		},
	}
	c.Flags().StringVar(&grp, "group", "", "device group")
	return c
}

func (a *app) appsDeleteVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "delete-version NAME VERSION",
		Short:   "Delete a version that is assigned nowhere, and artifacts nothing uses",
		Example: "  edgewarden apps delete-version web 1.0.0",
		Args:    args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			if err := cl.DeleteAppVersion(cmd.Context(), argv[0], argv[1]); err != nil {
				return fmt.Errorf("delete %s %s: %w", argv[0], argv[1], err)
			}
			return a.emit(map[string]any{"app": argv[0], "version": argv[1], "deleted": true}, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "Deleted %s %s.\n", argv[0], argv[1])
			})
		},
	}
}
