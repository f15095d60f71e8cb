package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
)

// profiler drives test/loadgen/profserve (the controller with pprof) for
// -profile. A nil *profiler does nothing.
type profiler struct {
	dir  string   // where profiles go
	bin  string   // profserve binary
	args []string // its leading arguments
	base string   // http://pprof-addr
}

func newProfiler(ctx context.Context, repo, work, dir string) (*profiler, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	bin := filepath.Join(work, "profserve")
	progress("building test/loadgen/profserve (the controller with pprof)")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./test/loadgen/profserve")
	cmd.Dir = repo
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("build profserve: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	return &profiler{dir: dir, bin: bin, args: []string{"-pprof", addr}, base: "http://" + addr}, nil
}

func (p *profiler) post(ctx context.Context, path string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.base+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		progress("profiler: %v", err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		progress("profiler: %s: %s", path, bytes.TrimSpace(b))
	}
}

// start begins a CPU profile of one phase.
func (p *profiler) start(ctx context.Context, phase string) {
	if p == nil {
		return
	}
	p.post(ctx, "/loadgen/cpu/start?file="+url.QueryEscape(filepath.Join(p.dir, "cpu-"+phase+".pprof")))
}

func (p *profiler) stop(ctx context.Context) {
	if p == nil {
		return
	}
	p.post(ctx, "/loadgen/cpu/stop")
}

// heap saves a heap profile (after a GC) as heap-PHASE.pprof.
func (p *profiler) heap(ctx context.Context, phase string) {
	if p == nil {
		return
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/debug/pprof/heap?gc=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		progress("profiler: heap: %v", err)
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		err = os.WriteFile(filepath.Join(p.dir, "heap-"+phase+".pprof"), b, 0o644)
	}
	if err != nil {
		progress("profiler: heap: %v", err)
	}
}

// gcLine matches a GODEBUG=gctrace=1 line's heap figures: before->after->live MB, goal.
var gcLine = regexp.MustCompile(`(?m)^gc \d+ @[\d.]+s \d+%: .* (\d+)->(\d+)->(\d+) MB, (\d+) MB goal`)

// lastGC returns the live heap after the last GC in a gctrace log, and the
// next goal, in bytes.
func lastGC(logPath string) (live, goal int64, ok bool) {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return 0, 0, false
	}
	all := gcLine.FindAllSubmatch(b, -1)
	if len(all) == 0 {
		return 0, 0, false
	}
	m := all[len(all)-1]
	l, _ := strconv.ParseInt(string(m[3]), 10, 64)
	g, _ := strconv.ParseInt(string(m[4]), 10, 64)
	return l << 20, g << 20, true
}
