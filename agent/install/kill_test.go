package install

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgewarden/edgewarden/protocol"
)

// The kill -9 tests run an install in a child process (this test binary,
// re-executed), stop it at a stage, SIGKILL it, then check that Recover
// leaves exactly one consistent version and that the install then succeeds.

const childEnv = "EDGEWARDEN_INSTALL_CHILD"

type childSpec struct {
	Apps, Staging string
	Assignment    json.RawMessage
	Keys          []string
	Blob          []byte // the artifact content
	Stage         string // where to stop: downloading, verifying, before-rename, before-switch
	Marker        string // written when the stage is reached
}

func TestMain(m *testing.M) {
	if p := os.Getenv(childEnv); p != "" {
		runChild(p)
		return
	}
	os.Exit(m.Run())
}

func runChild(specPath string) {
	var s childSpec
	b, err := os.ReadFile(specPath)
	if err != nil || json.Unmarshal(b, &s) != nil {
		os.Exit(3)
	}
	block := func() {
		os.WriteFile(s.Marker, []byte("reached"), 0o644)
		select {} // wait for SIGKILL
	}
	hook = func(stage string) {
		if stage == s.Stage {
			block()
		}
	}
	fetch := func(_ context.Context, _ string, off int64) (io.ReadCloser, error) {
		if s.Stage != "downloading" {
			return io.NopCloser(bytes.NewReader(s.Blob[off:])), nil
		}
		// Half the bytes, then hang mid-stream.
		half := int64(len(s.Blob) / 2)
		return io.NopCloser(io.MultiReader(bytes.NewReader(s.Blob[off:half]), readerFunc(func([]byte) (int, error) { block(); return 0, nil }))), nil
	}
	in, err := New(Options{AppsDir: s.Apps, StagingDir: s.Staging, Fetch: fetch})
	if err != nil {
		os.Exit(4)
	}
	var asg protocol.AppAssignment
	if json.Unmarshal(s.Assignment, &asg) != nil {
		os.Exit(6)
	}
	in.Install(context.Background(), asg, s.Keys)
	os.Exit(5) // should have been killed
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestKill9DuringInstall(t *testing.T) {
	acme := newPublisher(t, "acme")
	big := file{path: "bin/hello", content: bytes.Repeat([]byte("v2 payload "), 200000), mode: 0o755}
	for _, stage := range []string{"downloading", "verifying", "before-rename", "before-switch"} {
		t.Run(stage, func(t *testing.T) {
			f := installed1(t, acme)
			f.blobs.add(big)
			a := acme.app(t, "hello", "2.0.0", big)
			raw, _ := json.Marshal(a)
			dir := t.TempDir()
			spec := childSpec{Apps: f.apps, Staging: f.staging, Assignment: raw, Keys: []string{acme.pem}, Blob: big.content,
				Stage: stage, Marker: filepath.Join(dir, "reached")}
			sb, _ := json.Marshal(spec)
			specPath := filepath.Join(dir, "spec.json")
			os.WriteFile(specPath, sb, 0o644)

			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), childEnv+"="+specPath)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			deadline := time.Now().Add(20 * time.Second)
			for {
				if _, err := os.Stat(spec.Marker); err == nil {
					break
				}
				select {
				case err := <-exited:
					t.Fatalf("child exited before stage %s: %v\n%s", stage, err, stderr.String())
				default:
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					<-exited
					t.Fatalf("child never reached stage %s", stage)
				}
				time.Sleep(5 * time.Millisecond) // polling the marker, not waiting a fixed time
			}
			cmd.Process.Kill() // SIGKILL
			<-exited

			// "Restart": a new installer on the same directories.
			if err := f.in.Recover(); err != nil {
				t.Fatal(err)
			}
			// Even after before-switch (the new tree landed complete), current
			// still names the old version, and Recover keeps a valid current.
			if cur := f.current(t, "hello"); cur != "1.0.0" {
				t.Fatalf("after kill at %s and Recover: current %q, want 1.0.0", stage, cur)
			}
			if got := readApp(t, f, "hello", "bin/hello"); got != string(binV1.content) {
				t.Fatalf("current version's files damaged: %q", got[:min(len(got), 20)])
			}
			if e, _ := os.ReadDir(filepath.Join(f.staging, "build")); len(e) != 0 {
				t.Fatalf("staging build left after Recover: %v", e)
			}
			// The install completes on retry, resuming a partial download.
			n := len(f.blobs.offsets)
			if err := f.in.Install(context.Background(), a, []string{acme.pem}); err != nil {
				t.Fatal(err)
			}
			if f.current(t, "hello") != "2.0.0" || readApp(t, f, "hello", "bin/hello") != string(big.content) {
				t.Fatal("retry did not install 2.0.0")
			}
			if stage == "downloading" && (len(f.blobs.offsets) == n || f.blobs.offsets[n] == 0) {
				t.Errorf("download did not resume: offsets %v", f.blobs.offsets[n:])
			}
			stagingEmpty(t, f)
		})
	}
}
