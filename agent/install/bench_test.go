package install

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/edgewarden/edgewarden/protocol/manifest"
)

// The 200 MB benchmarks compare verify+install with a plain copy and with
// sha256sum of the same file on the same disk:
//
//	go test -run '^$' -bench 200MB -benchtime 5x ./agent/install/
//
// The artifact lives in a temp dir (TMPDIR, default /tmp). Install reads it
// through Fetch, hashes while writing into staging, fsyncs, renames.
const benchSize = 200 << 20

func benchArtifact(b *testing.B) (dir, path, digest string) {
	b.Helper()
	dir = b.TempDir()
	path = filepath.Join(dir, "artifact.bin")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, 1<<20)
	for i := 0; i < benchSize/len(buf); i++ {
		rng.Read(buf)
		f.Write(buf)
		h.Write(buf)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return dir, path, fmt.Sprintf("%x", h.Sum(nil))
}

func BenchmarkInstall200MB(b *testing.B) {
	dir, src, digest := benchArtifact(b)
	acme := newPublisher(b, "acme")
	m := manifest.Manifest{Name: "big", Version: "1.0.0", Publisher: "acme", Runtime: manifest.RuntimeProcess,
		Exec: manifest.Exec{Command: "big.bin"}, Artifacts: []manifest.Artifact{{Path: "big.bin", SHA256: digest, Size: benchSize}}}
	raw, _ := json.Marshal(&m)
	a := acme.sign("big", "1.0.0", raw)
	fetch := func(_ context.Context, _ string, off int64) (io.ReadCloser, error) {
		f, err := os.Open(src)
		if err != nil {
			return nil, err
		}
		_, err = f.Seek(off, io.SeekStart)
		return f, err
	}
	b.SetBytes(benchSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		root := filepath.Join(dir, fmt.Sprint("run", i))
		in, err := New(Options{AppsDir: filepath.Join(root, "apps"), StagingDir: filepath.Join(root, "staging"), Fetch: fetch, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := in.Install(context.Background(), a, []string{acme.pem}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(root)
		b.StartTimer()
	}
}

// BenchmarkCp200MB runs `cp SRC DST` (no fsync) on the same file.
func BenchmarkCp200MB(b *testing.B) {
	dir, src, _ := benchArtifact(b)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst := filepath.Join(dir, "copy.bin")
		if out, err := exec.Command("cp", src, dst).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v %s", err, out)
		}
		b.StopTimer()
		os.Remove(dst)
		b.StartTimer()
	}
}

// BenchmarkCpSync200MB runs `cp SRC DST && sync DST`: a copy that is on disk
// when it returns, as an install must be.
func BenchmarkCpSync200MB(b *testing.B) {
	dir, src, _ := benchArtifact(b)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst := filepath.Join(dir, "copy.bin")
		if out, err := exec.Command("sh", "-c", `cp "$1" "$2" && sync "$2"`, "sh", src, dst).CombinedOutput(); err != nil {
			b.Fatalf("cp+sync: %v %s", err, out)
		}
		b.StopTimer()
		os.Remove(dst)
		b.StartTimer()
	}
}

// BenchmarkSha256sum200MB runs coreutils `sha256sum SRC`.
func BenchmarkSha256sum200MB(b *testing.B) {
	_, src, _ := benchArtifact(b)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if out, err := exec.Command("sha256sum", src).CombinedOutput(); err != nil {
			b.Fatalf("sha256sum: %v %s", err, out)
		}
	}
}
