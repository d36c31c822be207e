package proxy

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/svidgate/svidgate/internal/config"
	"github.com/svidgate/svidgate/internal/fakeworkload"
	"github.com/svidgate/svidgate/internal/identity"
	"github.com/svidgate/svidgate/internal/jwtauth"
	"github.com/svidgate/svidgate/internal/reload"
	"github.com/svidgate/svidgate/internal/telemetry"
	"github.com/svidgate/svidgate/internal/testpki"
)

// Our expired X509-SVID stops an edge listener that presents it, and not
// one with its own certificate and a plain upstream, which uses it nowhere.
func TestEdgeOwnCertificateOutlivesAgentOutage(t *testing.T) {
	ca := testpki.NewCA(t, "example.org")
	td := spiffeid.RequireTrustDomainFromString("example.org")
	auth := fakeworkload.NewAuthority(t, "example.org", "k1", jose.ES256)
	v, err := jwtauth.NewValidator(jwtbundle.NewSet(fakeworkload.Bundle(td, auth)), jwtauth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer backend.Close()
	var up config.Upstream
	if err := up.UnmarshalText([]byte(backend.URL)); err != nil {
		t.Fatal(err)
	}
	pf := filepath.Join(t.TempDir(), "p.toml")
	if err := os.WriteFile(pf, []byte("version = 1\n[[rule]]\nid = \"a\"\neffect = \"allow\"\ncallers = [\"spiffe://example.org/web\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	holder, err := reload.New(pf, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := &identity.Source{}
	src.Set(ca.Issue(t, "spiffe://example.org/gw", -time.Second), x509bundle.NewSet(ca.Bundle())) // the agent is down
	public := ca.Issue(t, "spiffe://example.org/public", time.Hour)
	own := &tls.Certificate{Certificate: [][]byte{public.Certificates[0].Raw}, PrivateKey: public.PrivateKey}
	lc := config.Listener{Name: "edge", Mode: config.Edge, Upstream: up, JWTAudience: "spiffe://example.org/edge",
		UpstreamTimeout: config.Duration{Duration: 5 * time.Second}}
	token := auth.Mint(t, spiffeid.RequireFromString("spiffe://example.org/web"), []string{"spiffe://example.org/edge"}, time.Minute)
	for _, tt := range []struct {
		name string
		cert *tls.Certificate
		want int
	}{
		{"presents our SVID", nil, http.StatusServiceUnavailable},
		{"own certificate, plain upstream", own, http.StatusOK},
	} {
		l := New(lc, Setup{Policy: holder, EdgeCertificate: tt.cert}, Deps{Identity: src, JWT: v,
			Metrics: telemetry.NewMetrics("t", nil), Log: slog.New(slog.DiscardHandler)})
		r := httptest.NewRequest("GET", "/x", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		l.Handler().ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("%s: %d %q, want %d", tt.name, w.Code, w.Body.String(), tt.want)
		}
	}
}
