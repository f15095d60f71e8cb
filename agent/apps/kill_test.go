package apps

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/agent/apply"
	"github.com/edgewarden/edgewarden/agent/runtime"
	"github.com/edgewarden/edgewarden/agent/state"
	"github.com/edgewarden/edgewarden/protocol"
	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// The kill -9 tests run the reconciler in a child process (this test
// binary, re-executed) with the same directories, stop it at a stage,
// SIGKILL it, then start a new reconciler like a restarted agent and check
// that exactly one version of the app runs.

const childEnv = "EDGEWARDEN_APPS_CHILD"

type childSpec struct {
	Root   string
	Policy protocol.DesiredState
	Blobs  map[string][]byte
	Hang   string // digest whose download hangs halfway ("downloading")
	Stage  string // "downloading", "switching" (new version installed, not started) or a hook stage
	Marker string
	DB     string // the agent database the child journals in ("" none)
}

func TestMain(m *testing.M) {
	if p := os.Getenv(childEnv); p != "" {
		runChild(p)
		return
	}
	os.Exit(m.Run())
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// blockingDriver stops the child when the new version is about to start.
type blockingDriver struct {
	runtime.Driver
	spec childSpec
}

func (d blockingDriver) Start(ctx context.Context, app runtime.App) error {
	if d.spec.Stage == "switching" && app.Version == "2.0.0" {
		reached(d.spec)
	}
	return d.Driver.Start(ctx, app)
}

func reached(s childSpec) {
	os.WriteFile(s.Marker, []byte("reached"), 0o644)
	select {} // wait for SIGKILL
}

func runChild(specPath string) {
	var s childSpec
	b, err := os.ReadFile(specPath)
	if err != nil || json.Unmarshal(b, &s) != nil {
		os.Exit(3)
	}
	fetch := func(_ context.Context, digest string, off int64) (io.ReadCloser, error) {
		blob := s.Blobs[digest]
		if digest != s.Hang {
			return io.NopCloser(bytes.NewReader(blob[off:])), nil
		}
		half := int64(len(blob) / 2)
		return io.NopCloser(io.MultiReader(bytes.NewReader(blob[off:half]), readerFunc(func([]byte) (int, error) { reached(s); return 0, nil }))), nil
	}
	log := slog.New(slog.DiscardHandler)
	hook = func(stage string) {
		if stage == s.Stage {
			reached(s)
		}
	}
	var journal Journal
	if s.DB != "" {
		st, err := state.Open(context.Background(), s.DB)
		if err != nil {
			os.Exit(7)
		}
		journal = st
	}
	proc, err := runtime.NewProcess(runtime.ProcessOptions{LogDir: filepath.Join(s.Root, "logs"), AppsRoot: filepath.Join(s.Root, "apps"), Logger: log})
	if err != nil {
		os.Exit(4)
	}
	rec, err := New(Options{AppsDir: filepath.Join(s.Root, "apps"), StagingDir: filepath.Join(s.Root, "staging"), DataDir: filepath.Join(s.Root, "data"),
		Fetch: fetch, Drivers: map[string]runtime.Driver{manifest.RuntimeProcess: blockingDriver{proc, s}}, Journal: journal, Logger: log})
	if err != nil {
		os.Exit(5)
	}
	rec.Reconcile(context.Background(), &apply.Policy{Revision: s.Policy.Revision, Doc: &s.Policy})
	os.Exit(6) // should have been killed
}

// runningVersions lists the versions of app name whose processes run from
// the apps directory under root.
func runningVersions(t *testing.T, root, name string) []string {
	appsDir, err := filepath.EvalSymlinks(filepath.Join(root, "apps"))
	if err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(appsDir, name, "versions") + "/"
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err == nil && strings.HasPrefix(cwd, prefix) {
			out = append(out, strings.TrimPrefix(cwd, prefix))
		}
	}
	return out
}

// Record, then act, for each install step: the agent is killed with -9
// right after recording a step and before acting on it, and right after
// starting the new version but before the install is marked complete (the
// moment an event would be lost or sent twice). The restarted agent leaves
// exactly one version running, the one assigned, finishes or rolls back
// the open record, and the install is reported exactly once.
func TestKill9DuringUpgrade(t *testing.T) {
	for _, stage := range []string{"downloading", "switching", "download-recorded", "unpack-recorded", "activate-recorded", "start-recorded", "started"} {
		t.Run(stage, func(t *testing.T) {
			f := newFixtureWith(t, func(f *fixture) { f.dbPath = filepath.Join(t.TempDir(), "agent.db") })
			v1 := f.acme.assignment(t, f.srv, "hello", "1.0.0")
			// A large artifact so the download can stop halfway.
			v2 := f.acme.assignment(t, f.srv, "hello", "2.0.0")
			f.reconcile(f.policy([]protocol.AppAssignment{v1}))
			f.running("hello", "1.0.0")
			f.stop() // the agent goes down; the child is the next agent

			var m manifest.Manifest
			json.Unmarshal(v2.Manifest, &m)
			d2 := m.Artifacts[0].SHA256
			f.srv.mu.Lock()
			blobs := map[string][]byte{d2: f.srv.blobs[d2]}
			f.srv.mu.Unlock()
			doc := f.policy([]protocol.AppAssignment{v2}).Doc
			dir := t.TempDir()
			spec := childSpec{Root: f.root, Policy: *doc, Blobs: blobs, Stage: stage, Marker: filepath.Join(dir, "reached"), DB: f.dbPath}
			if stage == "downloading" {
				spec.Hang = d2
			}
			sb, _ := json.Marshal(spec)
			specPath := filepath.Join(dir, "spec.json")
			os.WriteFile(specPath, sb, 0o644)
			os.Remove(filepath.Join(f.root, "data", "hello", "pid-1.0.0"))

			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), childEnv+"="+specPath)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			eventually(t, "child at stage "+stage, func() bool {
				select {
				case err := <-exited:
					t.Fatalf("child exited before stage %s: %v\n%s", stage, err, stderr.String())
				default:
				}
				_, err := os.Stat(spec.Marker)
				return err == nil
			})
			if stage == "downloading" {
				// The child hangs in the download from here on, so polling
				// cannot race it forward: 1.0.0 (whose script writes its pid
				// file once it runs) must be up while 2.0.0 downloads.
				eventually(t, "the child agent keeps 1.0.0 running while downloading 2.0.0", func() bool {
					return alive(f.pid("hello", "1.0.0"))
				})
			}
			cmd.Process.Kill() // SIGKILL
			select {
			case <-exited:
			case <-time.After(20 * time.Second):
				t.Fatal("child did not die")
			}

			// Restart: a new reconciler on the same directories.
			f.start()
			f.reconcile(f.policy([]protocol.AppAssignment{v2}))
			f.running("hello", "2.0.0")
			eventually(t, "exactly one version running", func() bool {
				v := runningVersions(t, f.root, "hello")
				return len(v) == 1 && v[0] == "2.0.0"
			})

			// Reported exactly once: each version's app_installed event is
			// in the outbox once, and no install record is left open.
			evs, err := f.store.PendingEvents(context.Background(), 1000)
			if err != nil {
				t.Fatal(err)
			}
			installed := map[string]int{}
			interrupted := 0
			for _, ev := range evs {
				switch ev.Kind {
				case protocol.EventAppInstalled:
					installed[ev.Details["version"]]++
				case protocol.EventAppInstallInterrupted:
					interrupted++
				}
			}
			if installed["1.0.0"] != 1 || installed["2.0.0"] != 1 || interrupted > 1 {
				t.Fatalf("events: app_installed by version %v, app_install_interrupted %d; want each version once, at most one interruption\n%v", installed, interrupted, evs)
			}
			if open, err := f.store.OpenIntents(context.Background(), IntentInstall); err != nil || len(open) != 0 {
				t.Fatalf("install records left open: %v %v", open, err)
			}
		})
	}
}
