package admin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/svidgate/svidgate/internal/audit"
	"github.com/svidgate/svidgate/internal/telemetry"
)

func TestGraphServesSVGNamingTheWorkloads(t *testing.T) {
	g := audit.NewGraph(0)
	// Fed the way the gateway feeds it: through the writer.
	w := audit.NewWriter(audit.Stdout{Writer: &strings.Builder{}}, audit.Options{Graph: g})
	for i, from := range []string{"spiffe://example.org/ns/web/sa/frontend", "spiffe://example.org/ns/web/sa/frontend", "spiffe://example.org/ns/ops/sa/batch"} {
		r := audit.Record{Listener: "orders-in", Mode: "inbound", Source: audit.Source{SPIFFEID: from},
			Destination: audit.Destination{SPIFFEID: "spiffe://example.org/ns/shop/sa/orders"},
			Decision:    audit.Decision{Result: []string{"allow", "deny", "allow"}[i]}}
		if err := w.Enqueue(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	srv := &Server{Graph: g, Metrics: telemetry.NewMetrics("test", func() float64 { return 0 })}
	h := srv.Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/graph", nil))
	body := rec.Body.String()
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "image/svg+xml") || !strings.HasPrefix(body, "<svg ") {
		t.Fatalf("%d %s\n%s", rec.Code, rec.Header().Get("Content-Type"), body)
	}
	for _, want := range []string{"spiffe://example.org/ns/web/sa/frontend", "spiffe://example.org/ns/ops/sa/batch", "spiffe://example.org/ns/shop/sa/orders", "2 req, 1 denied"} {
		if !strings.Contains(body, want) {
			t.Errorf("the SVG does not show %q", want)
		}
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/graph?format=json", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"requests": 2`) {
		t.Errorf("json: %d %s", rec.Code, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	(&Server{Metrics: srv.Metrics}).Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/graph", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("without a graph: %d", rec.Code)
	}
}
