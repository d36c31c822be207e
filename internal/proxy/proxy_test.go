package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/svidgate/svidgate/internal/audit"
	"github.com/svidgate/svidgate/internal/config"
	"github.com/svidgate/svidgate/internal/identity"
	"github.com/svidgate/svidgate/internal/reload"
	"github.com/svidgate/svidgate/internal/telemetry"
	"github.com/svidgate/svidgate/internal/testpki"
)

const testPolicy = `version = 1

[[rule]]
id      = "web-reads-orders"
effect  = "allow"
callers = ["spiffe://example.org/web"]
methods = ["GET"]
paths   = ["/orders", "/orders/**"]

[[rule]]
id      = "web-checks-health"
effect  = "allow"
callers = ["spiffe://example.org/web"]
grpc    = ["/grpc.health.v1.Health/*"]

[[rule]]
id      = "no-watch-for-batch"
effect  = "deny"
callers = ["spiffe://example.org/batch"]
grpc    = ["/grpc.health.v1.Health/Watch"]

[[rule]]
id      = "batch-checks-health"
effect  = "allow"
callers = ["spiffe://example.org/batch"]
grpc    = ["/grpc.health.v1.Health/*"]
`

type memSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (m *memSink) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.buf.Write(p)
}
func (m *memSink) Sync() error  { return nil }
func (m *memSink) Close() error { return nil }

// records closes the writer and returns what it wrote.
// records waits until want records were written (a handler enqueues its
// record after the response, so the client may see the response first),
// closes the writer and returns them.
func (m *memSink) records(t *testing.T, w *audit.Writer, want int) []audit.Record {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		m.mu.Lock()
		n := bytes.Count(m.buf.Bytes(), []byte("\n"))
		m.mu.Unlock()
		if n >= want {
			break
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var out []audit.Record
	if m.buf.Len() == 0 {
		return nil
	}
	for _, line := range bytes.Split(bytes.TrimSpace(m.buf.Bytes()), []byte("\n")) {
		var r audit.Record
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

type fixture struct {
	ca      *testpki.CA
	addr    string // inbound listener
	sink    *memSink
	writer  *audit.Writer
	seen    chan *http.Request // requests that reached the HTTP backend
	handler http.Handler
	gateway spiffeid.ID
	src     *identity.Source // the gateway's own identity
}

// start runs an inbound listener in front of an HTTP backend (for /orders)
// and a gRPC health backend (h2c), chosen by content type.
func start(t *testing.T) *fixture {
	t.Helper()
	return startWith(t, testPolicy, nil)
}

// startWith is start with another policy and rate limits.
func startWith(t *testing.T, policyText string, limits *Limits) *fixture {
	t.Helper()
	return startWithDeps(t, policyText, func(d *Deps) {
		if limits != nil {
			limits.Metrics = d.Metrics
			d.Limits = limits
		}
	})
}

// startWithDeps is start with another policy and dependencies set by edit.
func startWithDeps(t *testing.T, policyText string, edit func(*Deps)) *fixture {
	t.Helper()
	return startFull(t, policyText, edit, 5*time.Second)
}

func startFull(t *testing.T, policyText string, edit func(*Deps), upstreamTimeout time.Duration) *fixture {
	t.Helper()
	f := &fixture{ca: testpki.NewCA(t, "example.org"), seen: make(chan *http.Request, 16),
		gateway: spiffeid.RequireFromString("spiffe://example.org/gateway")}

	grpcSrv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(grpcSrv, hs)
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			grpcSrv.ServeHTTP(w, r)
			return
		}
		if r.URL.Path == "/orders/hang" { // answers nothing until the client goes
			<-r.Context().Done()
			return
		}
		f.seen <- r
		_, _ = io.WriteString(w, "orders")
	})}
	backend.Protocols = new(http.Protocols)
	backend.Protocols.SetHTTP1(true)
	backend.Protocols.SetUnencryptedHTTP2(true)
	bln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go backend.Serve(bln)
	t.Cleanup(func() { backend.Close(); grpcSrv.Stop() })

	dir := t.TempDir()
	pfile := filepath.Join(dir, "policy.toml")
	if err := os.WriteFile(pfile, []byte(policyText), 0o600); err != nil {
		t.Fatal(err)
	}
	holder, err := reload.New(pfile, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := &identity.Source{}
	src.Set(f.ca.Issue(t, f.gateway.String(), time.Hour), x509bundle.NewSet(f.ca.Bundle()))
	f.src = src
	f.sink = &memSink{}
	f.writer = audit.NewWriter(f.sink, audit.Options{})
	var up config.Upstream
	if err := up.UnmarshalText([]byte("http://" + bln.Addr().String())); err != nil {
		t.Fatal(err)
	}
	lc := config.Listener{Name: "in", Mode: config.Inbound, Upstream: up,
		UpstreamTimeout: config.Duration{Duration: upstreamTimeout}}
	deps := Deps{Identity: src, Audit: f.writer, Metrics: telemetry.NewMetrics("test", nil), Log: slog.New(slog.DiscardHandler)}
	edit(&deps)
	srv := New(lc, Setup{Policy: holder}, deps)
	f.handler = srv.Handler()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	f.addr = ln.Addr().String()
	return f
}

// client returns an mTLS client holding an SVID for id, speaking HTTP/2
// (h2) or HTTP/1.1.
func (f *fixture) client(t *testing.T, id string, h2 bool) *http.Client {
	t.Helper()
	src := &identity.Source{}
	src.Set(f.ca.Issue(t, id, time.Hour), x509bundle.NewSet(f.ca.Bundle()))
	cfg := src.ClientConfig(f.gateway)
	if !h2 {
		cfg.NextProtos = []string{"http/1.1"}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: h2}}
}

func (f *fixture) grpcConn(t *testing.T, id string) *grpc.ClientConn {
	t.Helper()
	src := &identity.Source{}
	src.Set(f.ca.Issue(t, id, time.Hour), x509bundle.NewSet(f.ca.Bundle()))
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(credentials.NewTLS(src.ClientConfig(f.gateway))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestInboundHTTP(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2], func(t *testing.T) { testInboundHTTP(t, h2) })
	}
}

func testInboundHTTP(t *testing.T, h2 bool) {
	f := start(t)
	web := f.client(t, "spiffe://example.org/web", h2)
	batch := f.client(t, "spiffe://example.org/batch", h2)

	type testCase struct {
		name       string
		client     *http.Client
		method     string
		target     string
		header     map[string]string
		wantStatus int
		wantPath   string // what the backend received; "" = nothing reached it
	}
	tests := []testCase{
		{"allowed", web, "GET", "/orders/42", nil, 200, "/orders/42"},
		{"dot segments are removed before deciding and forwarding", web, "GET", "/admin/../orders/./7", nil, 200, "/orders/7"},
		{"duplicate slashes are merged", web, "GET", "/orders//9", nil, 200, "/orders/9"},
		{"encoded dot segments escape nothing", web, "GET", "/orders/%2e%2e/admin", nil, 403, ""},
		{"encoded slash is refused", web, "GET", "/orders%2F..%2Fadmin", nil, 400, ""},
		{"encoded NUL is refused", web, "GET", "/orders/%00", nil, 400, ""},
		{"encoded backslash is refused", web, "GET", "/orders/%5c..%5cadmin", nil, 400, ""},
		{"method not allowed for caller", web, "DELETE", "/orders/1", nil, 403, ""},
		{"unlisted caller", batch, "GET", "/orders/1", nil, 403, ""},
		{"client identity headers are replaced", web, "GET", "/orders/1", map[string]string{
			"X-Forwarded-Client-Cert": "By=spiffe://example.org/x;URI=spiffe://example.org/admin",
			"X-Svidgate-Caller":       "spiffe://example.org/admin",
		}, 200, "/orders/1"},
		{"spoofable headers are removed", web, "GET", "/orders/3", map[string]string{
			"X_Forwarded_Client_Cert": "By=spiffe://example.org/x;URI=spiffe://example.org/admin",
			"Forwarded":               "for=10.0.0.1",
			"X-Real-IP":               "10.0.0.1",
			"X-Original-URL":          "/admin",
			"x-rewrite-url":           "/admin",
			"X-HTTP-Method-Override":  "DELETE",
			"X-Method-Override":       "DELETE",
			"X-Http-Method":           "DELETE",
			"X-Envoy-Original-Path":   "/admin",
		}, 200, "/orders/3"},
		{"a lower-case method is refused", web, "get", "/orders/1", nil, 400, ""},
	}
	if !h2 { // HTTP/2 has no Connection header
		tests = append(tests, testCase{"a Connection header cannot drop the identity header", web, "GET", "/orders/2",
			map[string]string{"Connection": "X-Forwarded-Client-Cert"}, 200, "/orders/2"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, "https://"+f.addr+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = tt.target // sent exactly as written
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := tt.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if want := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != want {
				t.Fatalf("answered over HTTP/%d, want HTTP/%d", resp.ProtoMajor, want)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			select {
			case got := <-f.seen:
				if tt.wantPath == "" {
					t.Fatalf("backend received %s; it should not have", got.URL.Path)
				}
				if got.URL.RawPath != "" || got.URL.Path != tt.wantPath {
					t.Errorf("backend path %q (raw %q), want %q", got.URL.Path, got.URL.RawPath, tt.wantPath)
				}
				xfcc := got.Header.Values("X-Forwarded-Client-Cert")
				want := "By=spiffe://example.org/gateway;URI=spiffe://example.org/web"
				if len(xfcc) != 1 || xfcc[0] != want {
					t.Errorf("backend XFCC %q, want exactly [%q]", xfcc, want)
				}
				for k, v := range got.Header {
					if k == "X-Svidgate-Caller" || slices.Contains(Spoofable, k) ||
						strings.Contains(k, "_") || strings.HasPrefix(k, "X-Envoy-") {
						t.Errorf("client-supplied %s reached the backend: %q", k, v)
					}
				}
			default:
				if tt.wantPath != "" {
					t.Fatal("request did not reach the backend")
				}
			}
		})
	}

	recs := f.sink.records(t, f.writer, len(tests))
	if len(recs) != len(tests) {
		t.Fatalf("%d audit records, want %d", len(recs), len(tests))
	}
	byStatus := map[int]int{}
	for _, r := range recs {
		byStatus[r.Status]++
		if r.Source.SPIFFEID == "" || r.Listener != "in" || r.Decision.Result == "" {
			t.Errorf("incomplete record: %+v", r)
		}
	}
	if want := len(tests) - 7; byStatus[200] != want || byStatus[403] != 3 || byStatus[400] != 4 {
		t.Errorf("records by status %v, want %d×200, 3×403, 4×400", byStatus, want)
	}
	for _, r := range recs {
		if r.Status == 403 && r.Source.SPIFFEID == "spiffe://example.org/batch" && r.Decision.Reason == "" {
			t.Errorf("deny without a reason: %+v", r.Decision)
		}
	}
}

func TestInboundGRPC(t *testing.T) {
	f := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	web := healthpb.NewHealthClient(f.grpcConn(t, "spiffe://example.org/web"))
	if resp, err := web.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("allowed Check: %v %v", resp, err)
	}
	// Server streaming passes through: the first message arrives.
	stream, err := web.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := stream.Recv(); err != nil || msg.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("allowed Watch: %v %v", msg, err)
	}

	batch := healthpb.NewHealthClient(f.grpcConn(t, "spiffe://example.org/batch"))
	if _, err := batch.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("batch Check: %v", err)
	}
	ws, err := batch.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = ws.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("denied Watch: %v, want PermissionDenied", err)
	}
	// An unlisted caller gets PERMISSION_DENIED, not a bare 403.
	other := healthpb.NewHealthClient(f.grpcConn(t, "spiffe://example.org/other"))
	if _, err := other.Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("unlisted caller: %v, want PermissionDenied", err)
	}
	cancel()

	var denied int
	for _, r := range f.sink.records(t, f.writer, 5) {
		if r.Request.GRPCStatus == "7" {
			denied++
			if r.Request.GRPCMethod == "" || r.Decision.Result != "deny" {
				t.Errorf("denied gRPC record: %+v", r)
			}
		}
	}
	if denied != 2 {
		t.Errorf("%d records with grpc_status 7, want 2", denied)
	}
}

// Without a client certificate the handshake fails: nothing is served.
func TestInboundRequiresClientCert(t *testing.T) {
	f := start(t)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Get("https://" + f.addr + "/orders")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("served a client without a certificate: %d", resp.StatusCode)
	}
}

// An upstream that does not answer within upstream_timeout gets the caller
// a 504 and an audit record saying so, over HTTP/1.1 (svidgate's own pool)
// and HTTP/2 alike.
func TestUpstreamTimeout(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		f := startFull(t, testPolicy, func(*Deps) {}, 200*time.Millisecond)
		resp, err := f.client(t, "spiffe://example.org/web", h2).Get("https://" + f.addr + "/orders/hang")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusGatewayTimeout {
			t.Fatalf("h2=%v: status %d, want 504", h2, resp.StatusCode)
		}
		rec := f.sink.records(t, f.writer, 1)[0]
		if rec.Status != 504 || rec.Upstream.Error == "" {
			t.Fatalf("h2=%v: audit record status %d, upstream error %q", h2, rec.Status, rec.Upstream.Error)
		}
	}
}
