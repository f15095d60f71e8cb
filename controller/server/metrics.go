package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the controller's Prometheus metrics, served on the opt-in
// --metrics address (never on the public API port).
type metrics struct {
	reg              *prometheus.Registry
	documentsPublish prometheus.Counter
	reconcileSeconds prometheus.Histogram
	deviceMessages   *prometheus.CounterVec // by kind and result
	acks             *prometheus.CounterVec // end-to-end acknowledgements, by result
	apiRequests      *prometheus.HistogramVec
	devicesConnected prometheus.GaugeFunc
}

func newMetrics(online func() float64) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.documentsPublish = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "edgewarden_controller_documents_published_total",
		Help: "Signed desired-state documents published (new revisions and refreshes).",
	})
	m.reconcileSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "edgewarden_controller_reconcile_seconds",
		Help:    "Time to snapshot, compile, sign, store and publish the fleet's documents.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
	})
	m.deviceMessages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edgewarden_controller_device_messages_total",
		Help: "Messages devices published, by kind (status, events, presence) and result (stored, refused, error).",
	}, []string{"kind", "result"})
	m.acks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edgewarden_controller_device_acks_total",
		Help: "End-to-end acknowledgements of stored device reports, by result (sent; dropped: queue full; failed: not published). A device re-sends what was not acknowledged.",
	}, []string{"result"})
	m.apiRequests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "edgewarden_controller_api_request_seconds",
		Help:    "REST API latency by method and status code.",
		Buckets: prometheus.DefBuckets,
	}, []string{"method", "code"})
	m.devicesConnected = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "edgewarden_controller_devices_online",
		Help: "Devices whose last presence was online.",
	}, online)
	m.reg.MustRegister(m.documentsPublish, m.reconcileSeconds, m.deviceMessages, m.acks, m.apiRequests, m.devicesConnected,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", healthz)
	return mux
}

// instrument records the latency of every API request.
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		m.apiRequests.WithLabelValues(r.Method, strconv.Itoa(rec.code)).Observe(time.Since(start).Seconds())
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the real writer (flushing
// progress of long downloads).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// healthz answers 200 while the process serves requests. The reconcile loop
// and the broker run in the same process, so a live API means a live
// controller.
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}
