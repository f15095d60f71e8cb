package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgewarden/edgewarden/agent/apply"
	"github.com/edgewarden/edgewarden/protocol"
)

// metrics are the agent's Prometheus metrics, served with /healthz on the
// opt-in Options.MetricsAddr (a local address: never the public network).
//
// The agent writes the Prometheus text format itself instead of linking
// client_golang: the client and the protobuf runtime it brings cost about a
// megabyte of binary and of resident memory on every device (issue 11,
// docs/BENCHMARKS.md), for a dozen series.
type metrics struct {
	mu             sync.Mutex
	documents      map[string]uint64 // by outcome
	rejected       map[string]uint64 // by reason (protocol.Reason)
	securityEvents map[string]uint64 // by kind
	apply          histogram
}

// applyBuckets are the upper bounds of edgewarden_agent_apply_seconds:
// 0.1 ms ×4 each, eight buckets (as before the change of client).
var applyBuckets = func() []float64 {
	b := make([]float64, 8)
	v := 0.0001
	for i := range b {
		b[i] = v
		v *= 4
	}
	return b
}()

type histogram struct {
	counts []uint64 // per bucket of applyBuckets, not cumulative
	count  uint64
	sum    float64
}

func newMetrics(*Agent) *metrics {
	return &metrics{
		documents:      map[string]uint64{},
		rejected:       map[string]uint64{},
		securityEvents: map[string]uint64{},
		apply:          histogram{counts: make([]uint64, len(applyBuckets))},
	}
}

// observe records one handled document.
func (m *metrics) observe(res apply.Result, took time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := took.Seconds()
	m.apply.count++
	m.apply.sum += s
	for i, le := range applyBuckets {
		if s <= le {
			m.apply.counts[i]++
			break
		}
	}
	switch res.Outcome {
	case apply.Applied:
		m.documents["applied"]++
	case apply.Refreshed:
		m.documents["refreshed"]++
	case apply.Unchanged:
		m.documents["unchanged"]++
	case apply.Rejected:
		m.documents["rejected"]++
		m.rejected[protocol.Reason(res.Err)]++
	}
}

// securityEvent counts one security event of the sideload guard.
func (m *metrics) securityEvent(kind string) {
	m.mu.Lock()
	m.securityEvents[kind]++
	m.mu.Unlock()
}

// expo writes the Prometheus text exposition format (version 0.0.4).
type expo struct{ w *bufio.Writer }

func (e expo) head(name, typ, help string) {
	fmt.Fprintf(e.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (e expo) sample(name string, v float64) {
	fmt.Fprintf(e.w, "%s %s\n", name, strconv.FormatFloat(v, 'g', -1, 64))
}

func (e expo) one(name, typ, help string, v float64) {
	e.head(name, typ, help)
	e.sample(name, v)
}

// labelled writes one series per label value, sorted.
func labelled[N uint64 | int64](e expo, name, typ, help, label string, values map[string]N) {
	e.head(name, typ, help)
	for _, k := range slices.Sorted(maps.Keys(values)) {
		e.sample(name+"{"+label+"="+strconv.Quote(k)+"}", float64(values[k]))
	}
}

// write writes every metric of the agent.
func (m *metrics) write(w io.Writer, a *Agent) error {
	e := expo{bufio.NewWriter(w)}
	m.mu.Lock()
	docs, rej, sec := maps.Clone(m.documents), maps.Clone(m.rejected), maps.Clone(m.securityEvents)
	h := histogram{counts: slices.Clone(m.apply.counts), count: m.apply.count, sum: m.apply.sum}
	m.mu.Unlock()

	labelled(e, "edgewarden_agent_documents_total", "counter", "Desired-state documents handled, by outcome (applied, refreshed, unchanged, rejected).", "outcome", docs)
	labelled(e, "edgewarden_agent_documents_rejected_total", "counter", "Documents refused, by reason (too_large, malformed, bad_signature, wrong_device, replay, expired).", "reason", rej)
	e.head("edgewarden_agent_apply_seconds", "histogram", "Time to verify and apply (or refuse) one document, including the local commit.")
	var cum uint64
	for i, le := range applyBuckets {
		cum += h.counts[i]
		e.sample(`edgewarden_agent_apply_seconds_bucket{le="`+strconv.FormatFloat(le, 'g', -1, 64)+`"}`, float64(cum))
	}
	e.sample(`edgewarden_agent_apply_seconds_bucket{le="+Inf"}`, float64(h.count))
	e.sample("edgewarden_agent_apply_seconds_sum", h.sum)
	e.sample("edgewarden_agent_apply_seconds_count", float64(h.count))
	labelled(e, "edgewarden_agent_security_events_total", "counter", "Security events raised by the sideload guard, by kind.", "kind", sec)

	connected := 0.0
	if a.link.Connected() {
		connected = 1
	}
	e.one("edgewarden_agent_connected", "gauge", "1 while the MQTT link to the broker is up.", connected)
	e.one("edgewarden_agent_applied_revision", "gauge", "Revision of the document in force (0: none; local access is denied).", float64(revisionOf(a.applier.Current())))
	ctx := context.Background()
	n, _ := a.store.CountEvents(ctx)
	e.one("edgewarden_agent_outbox_events", "gauge", "Events waiting in the durable outbox for the controller's acknowledgement.", float64(n))
	if st, err := a.store.Outbox(ctx); err == nil {
		e.one("edgewarden_agent_outbox_bytes", "gauge", "Bytes of encoded events in the outbox.", float64(st.Bytes))
		e.one("edgewarden_agent_outbox_limit_bytes", "gauge", "The outbox bound (outbox_limit).", float64(st.Limit))
		labelled(e, "edgewarden_agent_outbox_dropped_total", "counter", "Events dropped because the outbox was full, by severity (info first, security last).", "severity", st.Dropped)
	}
	s := a.outbox.Stats()
	e.one("edgewarden_agent_outbox_acked_batches_total", "counter", "Event batches the controller acknowledged storing.", float64(s.Acked))
	e.one("edgewarden_agent_outbox_resends_total", "counter", "Times unacknowledged events were sent again after the acknowledgement timeout.", float64(s.Resends))
	e.one("edgewarden_agent_acks_refused_total", "counter", "Acknowledgements ignored because they named nothing this agent sent.", float64(s.Refused))
	states := map[string]uint64{}
	for _, s := range a.apps() {
		states[s.State]++
	}
	labelled(e, "edgewarden_agent_apps", "gauge", "Apps on this device by state.", "state", states)

	writeRuntime(e, a.startedAt)
	return e.w.Flush()
}

// writeRuntime writes the usual go_* and process_* series a dashboard for
// a Go service expects (a subset of client_golang's collectors).
func writeRuntime(e expo, started time.Time) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	e.one("go_goroutines", "gauge", "Number of goroutines that currently exist.", float64(runtime.NumGoroutine()))
	e.one("go_memstats_heap_alloc_bytes", "gauge", "Number of heap bytes allocated and still in use.", float64(ms.HeapAlloc))
	e.one("go_memstats_heap_inuse_bytes", "gauge", "Number of heap bytes that are in use.", float64(ms.HeapInuse))
	e.one("go_memstats_sys_bytes", "gauge", "Number of bytes obtained from the system.", float64(ms.Sys))
	e.one("go_gc_cycles_total", "counter", "Number of completed GC cycles.", float64(ms.NumGC))
	e.one("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", float64(started.Unix()))
	// /proc/self/statm: size resident shared ... in pages.
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			if pages, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				e.one("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", float64(pages*uint64(os.Getpagesize())))
			}
		}
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		e.one("process_open_fds", "gauge", "Number of open file descriptors.", float64(len(ents)))
	}
}

// handler serves /metrics and /healthz. /healthz answers 200 with the
// agent's view while a document is in force and unexpired, and 503 when the
// device enforces no policy (none received yet, or it expired: local access
// is denied), so a supervisor can tell a device that fails closed.
func (m *metrics) handler(a *Agent) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if err := m.write(w, a); err != nil {
			a.log.Debug("write metrics", "err", err)
		}
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		p := a.applier.Current()
		body := map[string]any{"device_id": a.id.DeviceID, "connected": a.link.Connected(), "applied_revision": revisionOf(p)}
		if d := a.disk.current(); d != nil {
			body["disk_full"] = d // apps keep running: reported, not a 503
		}
		code := http.StatusOK
		if p == nil || p.Expired(a.opts.Now()) {
			code, body["error"] = http.StatusServiceUnavailable, "no unexpired desired state in force: local access is denied"
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(body)
	})
	return mux
}
