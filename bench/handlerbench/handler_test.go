// Package handlerbench measures svidgate's whole inbound request pipeline in
// process (normalize, authenticate, decide, forward, audit, metrics), with a
// loopback HTTP/1.1 backend returning 1 KiB, for `make bench-micro` and for
// CPU profiles:
//
//	go test ./bench/handlerbench -run XXX -bench . -cpuprofile cpu.out
//	go tool pprof -top bench/handlerbench.test cpu.out
//
// BenchmarkHandler calls the listener's http.Handler directly with a
// request that carries a verified client certificate; BenchmarkTLS goes
// through a real TLS 1.3 loopback connection (keep-alive) as well.
package handlerbench

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"

	"github.com/svidgate/svidgate/bench/benchcfg"
	"github.com/svidgate/svidgate/internal/audit"
	"github.com/svidgate/svidgate/internal/config"
	"github.com/svidgate/svidgate/internal/identity"
	"github.com/svidgate/svidgate/internal/proxy"
	"github.com/svidgate/svidgate/internal/reload"
	"github.com/svidgate/svidgate/internal/telemetry"
	"github.com/svidgate/svidgate/internal/testpki"
)

const clientID = "spiffe://bench.example/ns/bench/sa/client"

const oneRule = "version = 1\n\n[[rule]]\nid = \"bench-client\"\neffect = \"allow\"\ncallers = [\"" + clientID + "\"]\n"

type discardSink struct{}

func (discardSink) Write(p []byte) (int, error) { return len(p), nil }
func (discardSink) Sync() error                 { return nil }
func (discardSink) Close() error                { return nil }

type fixture struct {
	srv    *proxy.Listener
	client *x509.Certificate
	ca     *testpki.CA
	cli    tls.Certificate
	src    *identity.Source
	close  func()
}

func setup(b *testing.B, policyText string) *fixture {
	b.Helper()
	body := bytes.Repeat([]byte("x"), 1024)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1024")
		_, _ = w.Write(body)
	}))
	dir := b.TempDir()
	pol := filepath.Join(dir, "policy.toml")
	if err := os.WriteFile(pol, []byte(policyText), 0o644); err != nil {
		b.Fatal(err)
	}
	cfgText := fmt.Sprintf(`[identity]
socket = "unix:///nonexistent.sock"
[audit]
path = "-"
[[listener]]
name = "bench"
mode = "inbound"
address = "127.0.0.1:0"
upstream = %q
policy = %q
`, backend.URL, pol)
	cfg, err := config.Parse(filepath.Join(dir, "gateway.toml"), []byte(cfgText))
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	holder, err := reload.New(pol, log)
	if err != nil {
		b.Fatal(err)
	}
	ca := testpki.NewCA(b, "bench.example")
	server := ca.Issue(b, "spiffe://bench.example/ns/bench/sa/gateway", time.Hour)
	client := ca.Issue(b, clientID, time.Hour)
	src := &identity.Source{}
	src.Set(server, x509bundle.NewSet(ca.Bundle()))
	writer := audit.NewWriter(discardSink{}, audit.Options{QueueSize: 1 << 16, Log: log})
	deps := proxy.Deps{Identity: src, Audit: writer, Metrics: telemetry.NewMetrics("bench", func() float64 { return 0 }), Log: log}
	srv := proxy.New(cfg.Listeners[0], proxy.Setup{Policy: holder}, deps)
	cliCert := tls.Certificate{PrivateKey: client.PrivateKey, Leaf: client.Certificates[0]}
	for _, c := range client.Certificates {
		cliCert.Certificate = append(cliCert.Certificate, c.Raw)
	}
	return &fixture{srv: srv, client: client.Certificates[0], ca: ca, cli: cliCert, src: src,
		close: func() { writer.Close(); backend.Close() }}
}

type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
func (w *discardWriter) Flush()                      {}

func BenchmarkHandler(b *testing.B) {
	for _, c := range []struct{ name, policy string }{
		{"1rule", oneRule},
		// Variant (c)'s rules without its JWT and rate tables: this fixture
		// has no JWT validator or limiter (see jwtauth's and ratelimit's
		// benchmarks for those on their own).
		{"100rules", benchcfg.PolicyHundredRules(clientID, benchcfg.Options{})},
	} {
		b.Run(c.name, func(b *testing.B) {
			f := setup(b, c.policy)
			defer f.close()
			h := f.srv.Handler()
			state := &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true,
				PeerCertificates: []*x509.Certificate{f.client}}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(http.MethodGet, "https://bench.example/bench/1k", nil)
				r.TLS = state
				r.RemoteAddr = "127.0.0.1:40000"
				clear(w.h)
				w.code, w.n = 0, 0
				h.ServeHTTP(w, r)
				if w.n != 1024 {
					b.Fatalf("status %d, %d bytes", w.code, w.n)
				}
			}
		})
	}
}

func BenchmarkTLS(b *testing.B) {
	f := setup(b, oneRule)
	defer f.close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = f.srv.Serve(ln) }()
	defer f.srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(f.ca.Cert)
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{f.cli}, RootCAs: roots, InsecureSkipVerify: true,
		CurvePreferences: []tls.CurveID{tls.X25519}, MinVersion: tls.VersionTLS13,
	}, Protocols: new(http.Protocols)}
	tr.Protocols.SetHTTP1(true)
	c := &http.Client{Transport: tr}
	url := "https://" + ln.Addr().String() + "/bench/1k"
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != 1024 {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
}
