package test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSideloadBurstsSurviveKill9: bursts of sideloaded directories, the
// agent killed with -9 at a random moment after each burst (before, while
// or after the guard records, moves and reports), over many rounds. Record,
// then act: at the end every directory is in quarantine once and the
// controller stored exactly one sideload_blocked and one quarantined event
// for it (produced = stored, no duplicates).
func TestSideloadBurstsSurviveKill9(t *testing.T) {
	p := newPlant(t)
	p.mustCLI("groups", "create", "line-1")
	p.mustEnroll("press-01", p.enrollToken("--groups", "line-1"))
	agent := p.startAgent("press-01")
	p.converged(map[string][]string{"press-01": {"line-1"}})
	appsDir := p.agentStatus("press-01").AppsDir

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 11))
	const rounds, burst = 12, 8
	var produced []string
	for round := range rounds {
		for i := range burst {
			name := fmt.Sprintf("drop-%02d-%d", round, i)
			if err := os.MkdirAll(filepath.Join(appsDir, name, "bin"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(appsDir, name, "bin", "miner"), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			produced = append(produced, name)
		}
		// The fault: kill -9 at a random moment of the guard's work (a
		// fault injected at a random time, not a wait for a result).
		time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
		agent.kill()
		agent = p.startAgent("press-01")
	}

	eventually(t, 60*time.Second, func() (bool, string) {
		var left []string
		for _, n := range produced {
			if _, err := os.Lstat(filepath.Join(appsDir, n)); err == nil {
				left = append(left, n)
			}
		}
		return len(left) == 0, fmt.Sprintf("still in the apps directory: %v", left)
	})
	inQuarantine := map[string]int{}
	for _, q := range quarantined(t, appsDir) {
		if i := strings.Index(q, "-drop-"); i >= 0 {
			inQuarantine[q[i+1:]]++
		}
	}
	for _, n := range produced {
		if inQuarantine[n] != 1 {
			t.Errorf("%s is in quarantine %d times, want once", n, inQuarantine[n])
		}
	}

	want := map[string]bool{}
	for _, n := range produced {
		want[n] = true
	}
	eventually(t, 90*time.Second, func() (bool, string) {
		stored := map[string]int{} // kind/app -> events stored at the controller
		for _, r := range p.securityAudit() {
			if r.Origin == "device" && want[r.Target] {
				stored[r.Action+"/"+r.Target]++
			}
		}
		var missing []string
		for _, n := range produced {
			for _, kind := range []string{"sideload_blocked", "quarantined"} {
				switch c := stored[kind+"/"+n]; {
				case c > 1:
					t.Fatalf("%s %s stored %d times at the controller, want once", kind, n, c)
				case c == 0:
					missing = append(missing, kind+"/"+n)
				}
			}
		}
		return len(missing) == 0, fmt.Sprintf("not stored at the controller: %v", missing)
	})
	// Nothing more arrives later: the stored counts stay at one each.
	agent.stop(t)
	for _, r := range p.securityAudit() {
		if r.Origin == "device" && want[r.Target] && r.Action != "sideload_blocked" && r.Action != "quarantined" {
			t.Errorf("unexpected event %s for %s: %s", r.Action, r.Target, r.Detail)
		}
	}
}
