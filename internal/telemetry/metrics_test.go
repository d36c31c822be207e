package telemetry

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// TestMetricsLint runs promlint over every metric svidgate exports, with
// each vector populated so that it appears in the exposition.
func TestMetricsLint(t *testing.T) {
	m := NewMetrics("test", nil)
	m.Requests.WithLabelValues("in", "2xx").Inc()
	m.RequestDuration.WithLabelValues("in").Observe(0.01)
	m.AuthzDecisions.WithLabelValues("in", "r1", "allow").Inc()
	m.TLSHandshakes.WithLabelValues("in", "ok").Inc()
	m.UpstreamErrors.WithLabelValues("in", "timeout").Inc()
	m.PolicyReloads.WithLabelValues("in", "ok").Inc()
	m.PolicyRules.WithLabelValues("in").Set(3)
	m.RateLimited.WithLabelValues("in", "r1", "limited").Inc()
	m.CallersTracked.WithLabelValues("buckets").Set(1)
	m.JWTValidations.WithLabelValues("ok").Inc()
	m.JWTCache.WithLabelValues("hit").Inc()

	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), namespace+"_") {
			seen++
		}
	}
	if seen < 21 {
		t.Errorf("gathered %d svidgate_ metrics, want at least 21", seen)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func TestCodeClass(t *testing.T) {
	for code, want := range map[int]string{101: "1xx", 200: "2xx", 302: "3xx", 403: "4xx", 429: "4xx", 502: "5xx"} {
		if got := CodeClass(code); got != want {
			t.Errorf("CodeClass(%d) = %s, want %s", code, got, want)
		}
	}
}
