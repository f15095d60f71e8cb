package agent_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/edgewarden/edgewarden/agent"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The metrics endpoint counts what the agent did, and /healthz tells a
// device that enforces no policy (503) from one that does (200).
func TestMetricsAndHealthz(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	a := e.startWith(func(o *agent.Options) { o.MetricsAddr = addr })
	base := "http://" + addr
	waitFor(t, "metrics listening", func() bool { code, _ := get(t, base+"/healthz"); return code != 0 })
	if code, body := get(t, base+"/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "local access is denied") {
		t.Fatalf("healthz before any document: %d %s", code, body)
	}

	e.publishDesired(e.sign(e.doc(1, "line-1")))
	waitFor(t, "revision 1 in force", func() bool { return revision(a.Agent) == 1 })
	forged := e.doc(2)
	forged.DeviceID = "someone-else"
	e.publishDesired(e.sign(forged))
	waitFor(t, "rejection counted", func() bool {
		_, body := get(t, base+"/metrics")
		return strings.Contains(body, `edgewarden_agent_documents_rejected_total{reason="wrong_device"} 1`)
	})
	_, body := get(t, base+"/metrics")
	// The agent writes the text format itself: Prometheus' own parser
	// must read all of it, with the types declared.
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("metrics are not valid Prometheus text: %v\n%s", err, body)
	}
	for name, typ := range map[string]string{
		"edgewarden_agent_documents_total": "COUNTER",
		"edgewarden_agent_apply_seconds":   "HISTOGRAM",
		"edgewarden_agent_outbox_events":   "GAUGE",
		"process_resident_memory_bytes":    "GAUGE",
	} {
		if f := fams[name]; f == nil || f.GetType().String() != typ {
			t.Errorf("metric %s: %v, want a %s", name, f, typ)
		}
	}
	for _, want := range []string{
		`edgewarden_agent_documents_total{outcome="applied"} 1`,
		`edgewarden_agent_applied_revision 1`,
		`edgewarden_agent_connected 1`,
		`edgewarden_agent_apply_seconds_count 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if code, body := get(t, base+"/healthz"); code != http.StatusOK || !strings.Contains(body, `"applied_revision":1`) {
		t.Fatalf("healthz with a document in force: %d %s", code, body)
	}
}
