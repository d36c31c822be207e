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
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "requests_total",
			Help: "Requests handled, by listener and HTTP status class (2xx, 4xx, ...).",
		}, []string{"listener", "code"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "request_duration_seconds",
			Help:    "Time from request headers received to response completed.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"listener"}),
		AuthzDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "authz_decisions_total",
			Help: "Authorization decisions, by listener, deciding rule (\"\" for the default deny) and result.",
		}, []string{"listener", "rule", "decision"}),
		TLSHandshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tls_handshakes_total",
			Help: "Inbound TLS handshakes, by listener and result (ok, error).",
		}, []string{"listener", "result"}),
		UpstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "upstream_errors_total",
			Help: "Requests that failed on the way to the upstream, by listener and reason (timeout, unavailable).",
		}, []string{"listener", "reason"}),
		SVIDExpiration: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "svid_expiration_timestamp_seconds",
			Help: "Unix time at which the current X509-SVID expires.",
		}),
		WorkloadUpdates: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "workload_api_updates_total",
			Help: "X509 context updates received from the SPIFFE Workload API.",
		}),
		PolicyReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "policy_reloads_total",
			Help: "Policy loads, by listener and result (ok, error). An error keeps the last good policy.",
		}, []string{"listener", "result"}),
		PolicyRules: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "policy_rules",
			Help: "Rules in the policy enforcing on each listener.",
		}, []string{"listener"}),
		AuditRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "audit_records_total",
			Help: "Audit records written to the sink.",
		}),
		AuditDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "audit_dropped_total",
			Help: "Audit records that could not be queued or written and were dropped.",
		}),
		AuditWriteErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "audit_write_errors_total",
			Help: "Failed writes or syncs of the audit sink.",
		}),
		AuditQueueDepth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "audit_queue_depth",
			Help: "Audit records waiting to be written.",
		}, queueDepth),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "build_info",
			Help: "Always 1; labels carry the svidgate and Go versions.",
		}, []string{"version", "goversion"}),
	}
	m.RateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "ratelimit_decisions_total",
		Help: "Rate-limit decisions, by listener, rule and result (allowed, limited, would_limit for dry-run limits).",
	}, []string{"listener", "rule", "result"})
	m.RateLimitErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "ratelimit_backend_errors_total",
		Help: "Rate-limit backend (Redis) errors; each applied the configured failure mode.",
	})
	m.CallersTracked = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "ratelimit_tracked_keys",
		Help: "Keys held in the local rate-limit tables, by table (buckets, in_flight, abuse).",
	}, []string{"table"})
	m.CallersBlocked = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "abuse_blocked_callers",
		Help: "Callers blocked now after repeated denials.",
	})
	m.JWTValidations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "jwt_validations_total",
		Help: "JWT-SVID validations, by result (ok, or the reason for rejection).",
	}, []string{"result"})
	m.JWTCache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "jwt_cache_lookups_total",
		Help: "Validated-token cache lookups, by result (hit, miss).",
	}, []string{"result"})
	m.JWTBundleUpdates = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "jwt_bundle_updates_total",
		Help: "JWT bundle updates from the Workload API; each flushes the token cache.",
	})
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
