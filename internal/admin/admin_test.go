package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"

	"github.com/svidgate/svidgate/internal/identity"
	"github.com/svidgate/svidgate/internal/ratelimit"
	"github.com/svidgate/svidgate/internal/telemetry"
	"github.com/svidgate/svidgate/internal/testpki"
)

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	return w
}

func TestEndpoints(t *testing.T) {
	src := &identity.Source{}
	s := &Server{Identity: src, RefreshMargin: time.Minute, Metrics: telemetry.NewMetrics("test", nil),
		Version: "test", Started: time.Now(), RateLimitBackend: "local",
		Blocked: func(now time.Time) []ratelimit.Block {
			return []ratelimit.Block{{Key: "spiffe://example.org/noisy", Until: now.Add(time.Minute), Failures: 7}}
		}}
	h := s.Handler()
	if w := get(t, h, "/healthz"); w.Code != 200 {
		t.Errorf("/healthz %d", w.Code)
	}
	if w := get(t, h, "/readyz"); w.Code != http.StatusServiceUnavailable {
		t.Errorf("/readyz without an SVID: %d, want 503", w.Code)
	}
	ca := testpki.NewCA(t, "example.org")
	src.Set(ca.Issue(t, "spiffe://example.org/gw", time.Hour), x509bundle.NewSet(ca.Bundle()))
	if w := get(t, h, "/readyz"); w.Code != 200 {
		t.Errorf("/readyz with an SVID: %d %s", w.Code, w.Body)
	}
	healthy := false
	s.AuditHealthy = func() bool { return healthy }
	if w := get(t, h, "/readyz"); w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "audit") {
		t.Errorf("/readyz with a failing audit trail: %d %s", w.Code, w.Body)
	}
	healthy = true
	if w := get(t, h, "/metrics"); w.Code != 200 || !strings.Contains(w.Body.String(), "svidgate_build_info") {
		t.Errorf("/metrics %d", w.Code)
	}
	w := get(t, h, "/v1/status")
	var st Status
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.SPIFFEID != "spiffe://example.org/gw" || !st.Ready || len(st.TrustDomains) != 1 ||
		len(st.BlockedCallers) != 1 || st.BlockedCallers[0].SPIFFEID != "spiffe://example.org/noisy" || st.RateLimitBackend != "local" {
		t.Errorf("status %+v", st)
	}
}
