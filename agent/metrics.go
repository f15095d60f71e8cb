package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edgewarden/edgewarden/agent/apply"
	"github.com/edgewarden/edgewarden/protocol"
)

// metrics are the agent's Prometheus metrics, served with /healthz on the
// opt-in Options.MetricsAddr (a local address: never the public network).
type metrics struct {
	reg            *prometheus.Registry
	documents      *prometheus.CounterVec // by outcome
	rejected       *prometheus.CounterVec // by reason (protocol.Reason)
	applySeconds   prometheus.Histogram
	securityEvents *prometheus.CounterVec // by kind
}

func newMetrics(a *Agent) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.documents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edgewarden_agent_documents_total",
		Help: "Desired-state documents handled, by outcome (applied, refreshed, unchanged, rejected).",
	}, []string{"outcome"})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edgewarden_agent_documents_rejected_total",
		Help: "Documents refused, by reason (too_large, malformed, bad_signature, wrong_device, replay, expired).",
	}, []string{"reason"})
	m.applySeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "edgewarden_agent_apply_seconds",
		Help:    "Time to verify and apply (or refuse) one document, including the local commit.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 8),
	})
	m.securityEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edgewarden_agent_security_events_total",
		Help: "Security events raised by the sideload guard, by kind.",
	}, []string{"kind"})
	connected := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "edgewarden_agent_connected",
		Help: "1 while the MQTT link to the broker is up.",
	}, func() float64 {
		if a.link.Connected() {
			return 1
		}
		return 0
	})
	applied := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "edgewarden_agent_applied_revision",
		Help: "Revision of the document in force (0: none; local access is denied).",
	}, func() float64 { return float64(revisionOf(a.applier.Current())) })
	outbox := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "edgewarden_agent_outbox_events",
		Help: "Events waiting in the durable outbox for the controller's acknowledgement.",
	}, func() float64 {
		n, _ := a.store.CountEvents(context.Background())
		return float64(n)
	})
	m.reg.MustRegister(m.documents, m.rejected, m.applySeconds, m.securityEvents, connected, applied, outbox,
		appStates{a}, outboxStats{a}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observe records one handled document.
func (m *metrics) observe(res apply.Result, took time.Duration) {
	m.applySeconds.Observe(took.Seconds())
	switch res.Outcome {
	case apply.Applied:
		m.documents.WithLabelValues("applied").Inc()
	case apply.Refreshed:
		m.documents.WithLabelValues("refreshed").Inc()
	case apply.Unchanged:
		m.documents.WithLabelValues("unchanged").Inc()
	case apply.Rejected:
		m.documents.WithLabelValues("rejected").Inc()
		m.rejected.WithLabelValues(protocol.Reason(res.Err)).Inc()
	}
}

// outboxStats reports the outbox's size, what was dropped to keep it under
// its limit, and the end-to-end acknowledgements, read at scrape time.
type outboxStats struct{ a *Agent }

var (
	outboxBytesDesc   = prometheus.NewDesc("edgewarden_agent_outbox_bytes", "Bytes of encoded events in the outbox.", nil, nil)
	outboxLimitDesc   = prometheus.NewDesc("edgewarden_agent_outbox_limit_bytes", "The outbox bound (outbox_limit).", nil, nil)
	outboxDroppedDesc = prometheus.NewDesc("edgewarden_agent_outbox_dropped_total", "Events dropped because the outbox was full, by severity (info first, security last).", []string{"severity"}, nil)
	outboxAckedDesc   = prometheus.NewDesc("edgewarden_agent_outbox_acked_batches_total", "Event batches the controller acknowledged storing.", nil, nil)
	outboxResentDesc  = prometheus.NewDesc("edgewarden_agent_outbox_resends_total", "Times unacknowledged events were sent again after the acknowledgement timeout.", nil, nil)
	outboxRefusedDesc = prometheus.NewDesc("edgewarden_agent_acks_refused_total", "Acknowledgements ignored because they named nothing this agent sent.", nil, nil)
)

func (c outboxStats) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{outboxBytesDesc, outboxLimitDesc, outboxDroppedDesc, outboxAckedDesc, outboxResentDesc, outboxRefusedDesc} {
		ch <- d
	}
}

func (c outboxStats) Collect(ch chan<- prometheus.Metric) {
	if st, err := c.a.store.Outbox(context.Background()); err == nil {
		ch <- prometheus.MustNewConstMetric(outboxBytesDesc, prometheus.GaugeValue, float64(st.Bytes))
		ch <- prometheus.MustNewConstMetric(outboxLimitDesc, prometheus.GaugeValue, float64(st.Limit))
		for sev, n := range st.Dropped {
			ch <- prometheus.MustNewConstMetric(outboxDroppedDesc, prometheus.CounterValue, float64(n), sev)
		}
	}
	s := c.a.outbox.Stats()
	ch <- prometheus.MustNewConstMetric(outboxAckedDesc, prometheus.CounterValue, float64(s.Acked))
	ch <- prometheus.MustNewConstMetric(outboxResentDesc, prometheus.CounterValue, float64(s.Resends))
	ch <- prometheus.MustNewConstMetric(outboxRefusedDesc, prometheus.CounterValue, float64(s.Refused))
}

// appStates reports how many apps are in each state (the install outcomes:
// running, failed, quarantined, ...), read at scrape time.
type appStates struct{ a *Agent }

var appStateDesc = prometheus.NewDesc("edgewarden_agent_apps", "Apps on this device by state.", []string{"state"}, nil)

func (c appStates) Describe(ch chan<- *prometheus.Desc) { ch <- appStateDesc }

func (c appStates) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{}
	for _, s := range c.a.apps() {
		counts[s.State]++
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(appStateDesc, prometheus.GaugeValue, float64(n), state)
	}
}

// handler serves /metrics and /healthz. /healthz answers 200 with the
// agent's view while a document is in force and unexpired, and 503 when the
// device enforces no policy (none received yet, or it expired: local access
// is denied), so a supervisor can tell a device that fails closed.
func (m *metrics) handler(a *Agent) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
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
