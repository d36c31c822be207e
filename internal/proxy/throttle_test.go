package proxy

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/svidgate/svidgate/internal/ratelimit"
)

const ratePolicy = `version = 1

[[rule]]
id      = "orders"
effect  = "allow"
callers = ["spiffe://example.org/web", "spiffe://example.org/batch"]
paths   = ["/orders/**"]
[rule.rate]
limit = "2/m"
burst = 2

[[rule]]
id      = "health"
effect  = "allow"
callers = ["spiffe://example.org/web"]
grpc    = ["/grpc.health.v1.Health/*"]
[rule.rate]
limit = "1/m"
burst = 1

[[rule]]
id      = "reports"
effect  = "allow"
callers = ["spiffe://example.org/web"]
paths   = ["/reports/**"]
[rule.rate]
limit = "1/m"
burst = 1
mode  = "dry-run"
`

func localLimits() *Limits {
	return &Limits{Limiter: ratelimit.Fallible{Limiter: ratelimit.NewLocal(1000)}, InFlight: ratelimit.NewInFlight(1000)}
}

func getStatus(t *testing.T, c *http.Client, url string) *http.Response {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestRateLimitPerCaller(t *testing.T) {
	f := startWith(t, ratePolicy, localLimits())
	web := f.client(t, "spiffe://example.org/web", true)
	batch := f.client(t, "spiffe://example.org/batch", true)
	url := "https://" + f.addr + "/orders/1"
	for i := range 2 {
		if r := getStatus(t, web, url); r.StatusCode != 200 {
			t.Fatalf("request %d: %d", i+1, r.StatusCode)
		}
		<-f.seen
	}
	r := getStatus(t, web, url)
	if r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third request: %d, want 429", r.StatusCode)
	}
	if ra := r.Header.Get("Retry-After"); ra != "30" {
		t.Errorf("Retry-After %q, want 30 (one request per 30 s)", ra)
	}
	if p := r.Header.Get("RateLimit-Policy"); p != `"orders";q=2;w=60` {
		t.Errorf("RateLimit-Policy %q", p)
	}
	if rl := r.Header.Get("RateLimit"); !strings.HasPrefix(rl, `"orders";r=0;t=`) {
		t.Errorf("RateLimit %q", rl)
	}
	// Another caller has its own bucket.
	if r := getStatus(t, batch, url); r.StatusCode != 200 {
		t.Fatalf("second caller: %d, want 200", r.StatusCode)
	}
	<-f.seen

	// gRPC: RESOURCE_EXHAUSTED, not a bare 429.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(f.grpcConn(t, "spiffe://example.org/web"))
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("second gRPC call: %v, want ResourceExhausted", err)
	}

	// Dry-run: served, and recorded as would_limit.
	for range 2 {
		if r := getStatus(t, web, "https://"+f.addr+"/reports/1"); r.StatusCode != 200 {
			t.Fatalf("dry-run limit refused: %d", r.StatusCode)
		}
		<-f.seen
	}
	limited, would := 0, 0
	for _, rec := range f.sink.records(t, f.writer, 8) {
		if rec.Decision.Result == "limited" {
			limited++
			if rec.RateLimit.Rule == "" || !strings.Contains(rec.Decision.Reason, "limit") {
				t.Errorf("limited record %+v", rec)
			}
		}
		for _, d := range rec.Decision.DryRun {
			if strings.HasPrefix(d.Result, "would_limit") {
				would++
			}
		}
	}
	if limited != 2 || would != 1 {
		t.Errorf("%d limited records (want 2), %d would_limit (want 1)", limited, would)
	}
}

// downLimiter is a backend that fails every call, and counts them.
type downLimiter struct{ calls *atomic.Int32 }

func (d downLimiter) Allow(context.Context, string, ratelimit.Limit) (ratelimit.Result, error) {
	d.calls.Add(1)
	return ratelimit.Result{}, errors.New("dial tcp 127.0.0.1:6379: connection refused")
}

// A failed backend answers by on_failure, and is asked once per request
// even when the rule has a limit and a quota: a Redis that stopped
// answering costs one timeout, not one per bucket.
func TestRateLimitBackendDown(t *testing.T) {
	const policy = ratePolicy + `
[[rule]]
id      = "quota"
effect  = "allow"
callers = ["spiffe://example.org/web"]
paths   = ["/quota/**"]
[rule.rate]
limit = "10/s"
quota = "1000/day"
`
	for _, open := range []bool{false, true} {
		lim := localLimits()
		down := downLimiter{calls: new(atomic.Int32)}
		lim.Limiter = ratelimit.Fallible{Limiter: down, FailOpen: open}
		f := startWith(t, policy, lim)
		r := getStatus(t, f.client(t, "spiffe://example.org/web", false), "https://"+f.addr+"/quota/1")
		if n := down.calls.Load(); n != 1 {
			t.Errorf("fail-open=%v: the failed backend was asked %d times for one request, want 1", open, n)
		}
		want := http.StatusServiceUnavailable
		if open {
			want = 200
			<-f.seen
		}
		if r.StatusCode != want {
			t.Errorf("fail-open=%v: %d, want %d", open, r.StatusCode, want)
		}
	}
}

const inflightPolicy = `version = 1
[[rule]]
id      = "orders"
effect  = "allow"
callers = ["spiffe://example.org/web"]
paths   = ["/orders/**"]
[rule.rate]
limit = "100/s"
burst = 100
max_in_flight = 1
`

// A backend that is down while failing open does not turn a local
// max_in_flight refusal into "backend unreachable; failing closed" (503).
func TestInFlightWithFailOpenBackend(t *testing.T) {
	lim := localLimits()
	lim.Limiter = ratelimit.Fallible{Limiter: downLimiter{calls: new(atomic.Int32)}, FailOpen: true}
	f := startWith(t, inflightPolicy, lim)
	web := f.client(t, "spiffe://example.org/web", true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+f.addr+"/orders/hang", nil)
		if resp, err := web.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(300 * time.Millisecond) // the hanging request holds the one in-flight place
	r := getStatus(t, web, "https://"+f.addr+"/orders/1")
	cancel()
	recs := f.sink.records(t, f.writer, 2)
	var reason, result string
	for _, rec := range recs {
		if rec.Request.Path == "/orders/1" {
			reason, result = rec.Decision.Reason, rec.Decision.Result
		}
	}
	if r.StatusCode != http.StatusTooManyRequests || result != "limited" || !strings.Contains(reason, "max_in_flight") {
		t.Errorf("got %d, audit %s %q; want 429 limited by max_in_flight (the backend fails open)", r.StatusCode, result, reason)
	}
}
