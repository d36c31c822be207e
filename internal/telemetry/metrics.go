package telemetry

import (
	"net/http"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "svidgate"

// Metrics holds every metric svidgate exports. The zero value is not usable;
// call NewMetrics.
type Metrics struct {
	Registry *prometheus.Registry

	Requests         *prometheus.CounterVec   // listener, code
	RequestDuration  *prometheus.HistogramVec // listener
	AuthzDecisions   *prometheus.CounterVec   // listener, rule, decision
	TLSHandshakes    *prometheus.CounterVec   // listener, result
	UpstreamErrors   *prometheus.CounterVec   // listener, reason
	SVIDExpiration   prometheus.Gauge
	WorkloadUpdates  prometheus.Counter
	PolicyReloads    *prometheus.CounterVec // listener, result
	PolicyRules      *prometheus.GaugeVec   // listener
	AuditRecords     prometheus.Counter
	AuditDropped     prometheus.Counter
	AuditWriteErrors prometheus.Counter
	AuditQueueDepth  prometheus.GaugeFunc
	BuildInfo        *prometheus.GaugeVec

	RateLimited      *prometheus.CounterVec // listener, rule, result
	RateLimitErrors  prometheus.Counter
	CallersTracked   *prometheus.GaugeVec // table
	CallersBlocked   prometheus.Gauge
	JWTValidations   *prometheus.CounterVec // result
	JWTCache         *prometheus.CounterVec // result: hit, miss
	JWTBundleUpdates prometheus.Counter
}

// NewMetrics registers every metric on a fresh registry. queueDepth reports
// the audit queue's current length when scraped.
func NewMetrics(version string, queueDepth func() float64) *Metrics {
	if queueDepth == nil {
		queueDepth = func() float64 { return 0 }
	}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Requests: counterVec("requests_total",
			"Requests handled, by listener and HTTP status class (2xx, 4xx, ...).", "listener", "code"),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "request_duration_seconds",
			Help:    "Time from request headers received to response completed.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"listener"}),
		AuthzDecisions: counterVec("authz_decisions_total",
			"Authorization decisions, by listener, deciding rule (\"\" for the default deny) and result.", "listener", "rule", "decision"),
		TLSHandshakes: counterVec("tls_handshakes_total",
			"Inbound TLS handshakes, by listener and result (ok, error).", "listener", "result"),
		UpstreamErrors: counterVec("upstream_errors_total",
			"Requests that failed on the way to the upstream, by listener and reason (timeout, unavailable).", "listener", "reason"),
		SVIDExpiration: gauge("svid_expiration_timestamp_seconds",
			"Unix time at which the current X509-SVID expires."),
		WorkloadUpdates: counter("workload_api_updates_total",
			"X509 context updates received from the SPIFFE Workload API."),
		PolicyReloads: counterVec("policy_reloads_total",
			"Policy loads, by listener and result (ok, error). An error keeps the last good policy.", "listener", "result"),
		PolicyRules: gaugeVec("policy_rules",
			"Rules in the policy enforcing on each listener.", "listener"),
		AuditRecords: counter("audit_records_total",
			"Audit records written to the sink."),
		AuditDropped: counter("audit_dropped_total",
			"Audit records that could not be queued or written and were dropped."),
		AuditWriteErrors: counter("audit_write_errors_total",
			"Failed writes or syncs of the audit sink."),
		AuditQueueDepth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "audit_queue_depth",
			Help: "Audit records waiting to be written.",
		}, queueDepth),
		BuildInfo: gaugeVec("build_info",
			"Always 1; labels carry the svidgate and Go versions.", "version", "goversion"),

		RateLimited: counterVec("ratelimit_decisions_total",
			"Rate-limit decisions, by listener, rule and result (allowed, limited, would_limit for dry-run limits).", "listener", "rule", "result"),
		RateLimitErrors: counter("ratelimit_backend_errors_total",
			"Rate-limit backend (Redis) errors; each applied the configured failure mode."),
		CallersTracked: gaugeVec("ratelimit_tracked_keys",
			"Keys held in the local rate-limit tables, by table (buckets, in_flight, abuse).", "table"),
		CallersBlocked: gauge("abuse_blocked_callers",
			"Callers blocked now after repeated denials."),
		JWTValidations: counterVec("jwt_validations_total",
			"JWT-SVID validations, by result (ok, or the reason for rejection).", "result"),
		JWTCache: counterVec("jwt_cache_lookups_total",
			"Validated-token cache lookups, by result (hit, miss).", "result"),
		JWTBundleUpdates: counter("jwt_bundle_updates_total",
			"JWT bundle updates from the Workload API; each flushes the token cache."),
	}
	m.Registry.MustRegister(
		m.RateLimited, m.RateLimitErrors, m.CallersTracked, m.CallersBlocked,
		m.JWTValidations, m.JWTCache, m.JWTBundleUpdates,
		m.Requests, m.RequestDuration, m.AuthzDecisions, m.TLSHandshakes, m.UpstreamErrors,
		m.SVIDExpiration, m.WorkloadUpdates, m.PolicyReloads, m.PolicyRules,
		m.AuditRecords, m.AuditDropped, m.AuditWriteErrors, m.AuditQueueDepth, m.BuildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
	}
	m.BuildInfo.WithLabelValues(version, goVersion).Set(1)
	return m
}

// counter, counterVec, gauge and gaugeVec make a metric named
// svidgate_<name>.

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
}

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
}

func gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
}

func gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// CodeClass maps an HTTP status to its class label ("2xx" ...), so that the
// label has five values at most.
func CodeClass(code int) string {
	switch {
	case code >= 500:
		return "5xx"
	case code >= 400:
		return "4xx"
	case code >= 300:
		return "3xx"
	case code >= 200:
		return "2xx"
	default:
		return "1xx"
	}
}
