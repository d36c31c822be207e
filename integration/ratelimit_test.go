package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The integration tests of issue 4: rate limits, quotas, abuse blocking,
// local and shared through a real redis-server. Topology in
// ratelimit_topology_test.go.

var (
	rlPolicyRE = regexp.MustCompile(`^"([^"]+)";q=(\d+);w=(\d+)$`)
	rlStateRE  = regexp.MustCompile(`^"([^"]+)";r=(\d+);t=(\d+)$`)
)

// rlHeaders parses RateLimit-Policy ("rule";q=burst;w=seconds) and
// RateLimit ("rule";r=remaining;t=seconds) and checks that both name rule.
func rlHeaders(hdr http.Header, rule string) (q, w, r, tt int, err error) {
	p, s := hdr.Get("RateLimit-Policy"), hdr.Get("RateLimit")
	pm, sm := rlPolicyRE.FindStringSubmatch(p), rlStateRE.FindStringSubmatch(s)
	if pm == nil || sm == nil {
		return 0, 0, 0, 0, fmt.Errorf("RateLimit-Policy %q, RateLimit %q: want \"<rule>\";q=<burst>;w=<seconds> and \"<rule>\";r=<remaining>;t=<seconds>", p, s)
	}
	if pm[1] != rule || sm[1] != rule {
		return 0, 0, 0, 0, fmt.Errorf("RateLimit-Policy %q, RateLimit %q: want the rule %q", p, s, rule)
	}
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	return atoi(pm[2]), atoi(pm[3]), atoi(sm[2]), atoi(sm[3]), nil
}

// retryAfter parses Retry-After as whole seconds; -1 if absent or not a number.
func retryAfter(hdr http.Header) int {
	n, err := strconv.Atoi(hdr.Get("Retry-After"))
	if err != nil {
		return -1
	}
	return n
}

// rlLogCount counts the lines of g's log that contain every one of parts.
func rlLogCount(g *gateway, parts ...string) int {
	b, _ := os.ReadFile(g.proc.log)
	n := 0
lines:
	for _, line := range strings.Split(string(b), "\n") {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue lines
			}
		}
		n++
	}
	return n
}

// TestRateLimitOneCallerNotAnother: a caller over "3/m burst 3" gets 429 with
// Retry-After and the RateLimit headers while another caller, at the same
// time and under the same rule, is served; the audit record names the limit.
func TestRateLimitOneCallerNotAnother(t *testing.T) {
	tp := env.topology(t, "rl-local")
	t.Parallel()
	g := tp.gateway(t, "gw-rl-local")
	url := "https://" + g.addr("rl-http") + "/echo/limited"
	noisyID, quietID := rlID("noisy"), rlID("quiet")
	noisy, quiet := g.client(t, noisyID, false), g.client(t, quietID, false)

	// 3/m burst 3: T = 20s, nothing refills within the test. After the
	// i-th request of a full bucket r = 3-i and t (until full again) = 20·i
	// seconds, less the time since the first request (rounded up).
	checkAllowed := func(who string, i int, r *result) {
		t.Helper()
		if r.code != http.StatusOK || r.echo == nil {
			t.Fatalf("%s request %d: %d, want 200 from httpecho: %.200q", who, i, r.code, r.body)
		}
		q, w, rem, reset, err := rlHeaders(r.hdr, "rl-echo")
		if err != nil {
			t.Fatalf("%s request %d: %v", who, i, err)
		}
		if q != 3 || w != 60 || rem != 3-i || reset > 20*i || reset < 20*i-3 {
			t.Fatalf("%s request %d: q=%d w=%d r=%d t=%d, want q=3 w=60 r=%d t=%d (or up to 3s less)", who, i, q, w, rem, reset, 3-i, 20*i)
		}
		if ra := r.hdr.Get("Retry-After"); ra != "" {
			t.Fatalf("%s request %d: allowed, but Retry-After %q", who, i, ra)
		}
	}
	for i := 1; i <= 3; i++ {
		checkAllowed("noisy", i, mustDo(t, noisy, http.MethodGet, url, nil))
	}

	// Now, at the same time: the noisy caller floods, the quiet one spends
	// its own burst.
	const flood = 8
	noisyAnswers := make([]*result, flood)
	quietAnswers := make([]*result, 3)
	var wg sync.WaitGroup
	for i := range flood {
		wg.Go(func() { noisyAnswers[i] = doOrError(t, noisy, http.MethodGet, url, nil) })
	}
	wg.Go(func() {
		for i := range quietAnswers {
			quietAnswers[i] = doOrError(t, quiet, http.MethodGet, url, nil)
		}
	})
	wg.Wait()
	if t.Failed() {
		return
	}
	for i, r := range quietAnswers {
		checkAllowed("quiet (during the flood)", i+1, r)
	}
	for i, r := range noisyAnswers {
		if r.code != http.StatusTooManyRequests || r.echo != nil {
			t.Fatalf("noisy flood request %d: %d, want 429 not forwarded: %.200q", i, r.code, r.body)
		}
		if !strings.Contains(string(r.body), "too many requests: limit 3/m") {
			t.Errorf("noisy flood request %d: body %q, want it to name the limit 3/m", i, r.body)
		}
		// The bucket is empty: one token in T = 20s, less the time spent.
		if ra := retryAfter(r.hdr); ra < 1 || ra > 20 {
			t.Errorf("noisy flood request %d: Retry-After %q, want whole seconds in [1, 20]", i, r.hdr.Get("Retry-After"))
		}
		q, w, rem, reset, err := rlHeaders(r.hdr, "rl-echo")
		if err != nil {
			t.Errorf("noisy flood request %d: %v", i, err)
		} else if q != 3 || w != 60 || rem != 0 || reset > 60 || reset < 55 {
			t.Errorf("noisy flood request %d: q=%d w=%d r=%d t=%d, want q=3 w=60 r=0 t≈60", i, q, w, rem, reset)
		}
	}

	rlCheckFloodRecords(t, g, noisyID, 3, flood)
}

// rlCheckFloodRecords checks what g recorded of a caller that spent its
// burst of 3 on rl-echo (allowed requests) and then flooded (limited ones):
// one record each, naming the limit, and the limited ones counted.
func rlCheckFloodRecords(t testing.TB, g *gateway, noisyID spiffeid.ID, allowed, flood int) {
	t.Helper()
	recs := g.recordsOf(t, noisyID, allowed+flood)
	limited := 0
	for _, rec := range recs {
		switch rec.Status {
		case http.StatusOK:
			if rec.Decision.Result != "allow" || rec.RateLimit.Rule != "rl-echo" || rec.RateLimit.Limit != "3/m" {
				t.Errorf("audit of an allowed request: decision %+v, ratelimit %+v; want allow, rule rl-echo, limit 3/m", rec.Decision, rec.RateLimit)
			}
		case http.StatusTooManyRequests:
			limited++
			if rec.Decision.Result != "limited" || rec.Decision.Rule != "rl-echo" ||
				!strings.Contains(rec.Decision.Reason, "limit 3/m") ||
				rec.RateLimit.Rule != "rl-echo" || rec.RateLimit.Limit != "3/m" || rec.RateLimit.Remaining != 0 {
				t.Errorf("audit of a limited request: decision %+v, ratelimit %+v; want result limited, rule rl-echo, "+
					"a reason naming limit 3/m, ratelimit {rl-echo 3/m 0}", rec.Decision, rec.RateLimit)
			}
		default:
			t.Errorf("audit record with status %d for %s", rec.Status, noisyID)
		}
	}
	if limited != flood {
		t.Errorf("%d limited audit records of %s, want %d", limited, noisyID, flood)
	}
	if n := metric(t, g, `svidgate_ratelimit_decisions_total{listener="rl-http",result="limited",rule="rl-echo"}`); n < float64(flood) {
		t.Errorf("svidgate_ratelimit_decisions_total limited = %v, want at least %d", n, flood)
	}
}

// TestRateLimitGRPC: over gRPC, a caller over its limit gets
// RESOURCE_EXHAUSTED, with Retry-After in the response metadata.
func TestRateLimitGRPC(t *testing.T) {
	tp := env.topology(t, "rl-local")
	t.Parallel()
	g := tp.gateway(t, "gw-rl-local")
	caller := rlID("grpc")
	c := testpb.NewTestServiceClient(grpcDirect(t, g.addr("rl-grpc"), caller, g.id))
	call := func(c testpb.TestServiceClient) (metadata.MD, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var md metadata.MD
		_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 1}, grpc.Header(&md))
		return md, err
	}
	for i := 1; i <= 2; i++ { // 2/m burst 2
		if _, err := call(c); err != nil {
			t.Fatalf("call %d within the burst: %v", i, err)
		}
	}
	md, err := call(c)
	if got := status.Code(err); got != codes.ResourceExhausted {
		t.Errorf("call over the limit: %v (%v), want %v", got, err, codes.ResourceExhausted)
	}
	if ra := md.Get("retry-after"); len(ra) != 1 || ra[0] == "" || ra[0] == "0" {
		t.Errorf("call over the limit: retry-after metadata %q, want one value of at least 1s", ra)
	}
	if p := md.Get("ratelimit-policy"); len(p) != 1 || p[0] != `"rl-grpc";q=2;w=60` {
		t.Errorf("call over the limit: ratelimit-policy metadata %q, want [\"rl-grpc\";q=2;w=60]", p)
	}
	// Another caller of the same method is not affected.
	other := testpb.NewTestServiceClient(grpcDirect(t, g.addr("rl-grpc"), rlID("grpc-other"), g.id))
	if _, err := call(other); err != nil {
		t.Errorf("another caller: %v, want OK", err)
	}
	recs := g.recordsOf(t, caller, 3)
	last := recs[len(recs)-1]
	if last.Decision.Result != "limited" || last.RateLimit.Rule != "rl-grpc" || last.Request.GRPCStatus != strconv.Itoa(int(codes.ResourceExhausted)) {
		t.Errorf("audit of the limited call: decision %+v, ratelimit %+v, grpc_status %q; want limited, rule rl-grpc, grpc_status 8",
			last.Decision, last.RateLimit, last.Request.GRPCStatus)
	}
}

// TestRateLimitDryRun: a dry-run limit serves every request and audits the
// ones over the limit as would_limit.
func TestRateLimitDryRun(t *testing.T) {
	tp := env.topology(t, "rl-local")
	t.Parallel()
	g := tp.gateway(t, "gw-rl-local")
	caller := rlID("dry")
	c := g.client(t, caller, false)
	url := "https://" + g.addr("rl-http") + "/dry/x"
	const n = 5 // 2/m burst 2: the last 3 are over the limit
	for i := range n {
		if r := mustDo(t, c, http.MethodGet, url, nil); r.code != http.StatusOK || r.echo == nil {
			t.Fatalf("request %d under a dry-run limit: %d, want 200 from httpecho: %.200q", i+1, r.code, r.body)
		}
	}
	recs := g.recordsOf(t, caller, n)
	would := 0
	for i, rec := range recs {
		var entries []string
		for _, d := range rec.Decision.DryRun {
			if d.Rule == "rl-dry" && strings.HasPrefix(d.Result, "would_limit") {
				entries = append(entries, d.Result)
			}
		}
		if rec.Decision.Result != "allow" || rec.Status != http.StatusOK || rec.RateLimit.Rule != "rl-dry" {
			t.Errorf("record %d: decision %+v, status %d, ratelimit %+v; want allow, 200, rule rl-dry", i+1, rec.Decision, rec.Status, rec.RateLimit)
		}
		switch {
		case i < 2 && len(entries) != 0:
			t.Errorf("record %d (within the burst): dry-run entries %q, want none", i+1, entries)
		case i >= 2 && (len(entries) != 1 || !strings.Contains(entries[0], "limit 2/m")):
			t.Errorf("record %d (over the limit): dry-run entries %+v, want one would_limit entry of rl-dry naming limit 2/m", i+1, rec.Decision.DryRun)
		}
		would += len(entries)
	}
	if would != n-2 {
		t.Errorf("%d would_limit entries, want %d", would, n-2)
	}
	if v := metric(t, g, `svidgate_ratelimit_decisions_total{listener="rl-http",result="would_limit",rule="rl-dry"}`); v != n-2 {
		t.Errorf("svidgate_ratelimit_decisions_total would_limit = %v, want %d", v, n-2)
	}
}

// TestAbuseBlocking: more than 3 denials within the window block the caller
// for the cooldown (3s), even on a route it may use and that has no limit;
// then it is released. Others are not affected.
func TestAbuseBlocking(t *testing.T) {
	tp := env.topology(t, "rl-local")
	t.Parallel()
	g := tp.gateway(t, "gw-rl-local")
	base := "https://" + g.addr("rl-http")
	abuserID := rlID("abuser")
	abuser, bystander := g.client(t, abuserID, false), g.client(t, rlID("bystander"), false)

	if r := mustDo(t, abuser, http.MethodGet, base+"/free/x", nil); r.code != http.StatusOK {
		t.Fatalf("before any denial: %d, want 200: %.200q", r.code, r.body)
	}
	var lastDenial time.Time
	for i := 1; i <= 4; i++ {
		lastDenial = time.Now()
		if r := mustDo(t, abuser, http.MethodGet, base+"/admin/x", nil); r.code != http.StatusForbidden {
			t.Fatalf("denial %d: %d, want 403: %.200q", i, r.code, r.body)
		}
	}
	r := mustDo(t, abuser, http.MethodGet, base+"/free/x", nil)
	if r.code != http.StatusTooManyRequests || r.echo != nil {
		t.Fatalf("after 4 denials (threshold 3): %d, want 429 not forwarded: %.200q", r.code, r.body)
	}
	if ra := retryAfter(r.hdr); ra < 1 || ra > rlAbuseCooling+1 {
		t.Errorf("blocked: Retry-After %q, want whole seconds in [1, %d]", r.hdr.Get("Retry-After"), rlAbuseCooling+1)
	}
	if !strings.Contains(string(r.body), "blocked after repeated denials") {
		t.Errorf("blocked: body %q, want it to say the caller is blocked", r.body)
	}
	// Others pass, and one denial of another caller blocks nobody.
	if r := mustDo(t, bystander, http.MethodGet, base+"/admin/x", nil); r.code != http.StatusForbidden {
		t.Errorf("bystander on a denied route: %d, want 403", r.code)
	}
	if r := mustDo(t, bystander, http.MethodGet, base+"/free/x", nil); r.code != http.StatusOK {
		t.Errorf("bystander while the abuser is blocked: %d, want 200: %.200q", r.code, r.body)
	}

	rlCheckBlockListed(t, g, abuserID, lastDenial)

	// Released after the cooldown, not before; knocking while blocked does
	// not extend the block.
	cooldown := rlAbuseCooling * time.Second
	var released time.Duration
	err := poll(cooldown+5*time.Second, 100*time.Millisecond, func() error {
		r := mustDo(t, abuser, http.MethodGet, base+"/free/x", nil)
		switch r.code {
		case http.StatusOK:
			released = time.Since(lastDenial)
			return nil
		case http.StatusTooManyRequests:
			return fmt.Errorf("still blocked %v after the last denial", time.Since(lastDenial).Round(time.Millisecond))
		default:
			return permanent(fmt.Errorf("while blocked: %d, want 429 or 200: %.200q", r.code, r.body))
		}
	})
	if err != nil {
		t.Fatalf("not released within cooldown %v + 5s: %v", cooldown, err)
	}
	if released < cooldown {
		t.Errorf("released %v after the last denial, before the cooldown %v", released, cooldown)
	}
	// Released means a clean slate: one denial does not block again.
	if r := mustDo(t, abuser, http.MethodGet, base+"/admin/x", nil); r.code != http.StatusForbidden {
		t.Errorf("denial after release: %d, want 403", r.code)
	}
	if r := mustDo(t, abuser, http.MethodGet, base+"/free/x", nil); r.code != http.StatusOK {
		t.Errorf("after release and one denial: %d, want 200", r.code)
	}

	rlCheckBlockRecorded(t, g, abuserID)
}

// rlCheckBlockListed checks that g's /v1/status lists caller as blocked
// after 4 denials, until the last one plus the cooldown.
func rlCheckBlockListed(t testing.TB, g *gateway, abuserID spiffeid.ID, lastDenial time.Time) {
	t.Helper()
	var st struct {
		BlockedCallers []struct {
			SPIFFEID string    `json:"spiffe_id"`
			Until    time.Time `json:"until"`
			Failures int       `json:"failures"`
		} `json:"blocked_callers"`
	}
	if code, err := getJSON(&http.Client{Timeout: 5 * time.Second}, g.adminURL("/v1/status"), &st); err != nil || code != http.StatusOK {
		t.Errorf("/v1/status: %d, %v", code, err)
	}
	listed := false
	for _, b := range st.BlockedCallers {
		if b.SPIFFEID == abuserID.String() {
			listed = true
			if b.Failures != 4 || b.Until.Before(lastDenial.Add(rlAbuseCooling*time.Second)) || b.Until.After(time.Now().Add(rlAbuseCooling*time.Second)) {
				t.Errorf("/v1/status blocked caller %+v: want 4 failures, until the last denial + %ds", b, rlAbuseCooling)
			}
		}
	}
	if !listed {
		t.Errorf("/v1/status blocked_callers %+v: want %s listed", st.BlockedCallers, abuserID)
	}
}

// rlCheckBlockRecorded checks that g's trail and log show the block of
// the caller of TestAbuseBlocking.
func rlCheckBlockRecorded(t testing.TB, g *gateway, abuserID spiffeid.ID) {
	t.Helper()
	recs := g.recordsOf(t, abuserID, 8)
	blocked := 0
	for _, rec := range recs {
		if rec.Status == http.StatusTooManyRequests {
			blocked++
			if rec.Decision.Result != "limited" || !strings.Contains(rec.Decision.Reason, "blocked until") ||
				!strings.Contains(rec.Decision.Reason, "after repeated denials") || rec.Request.Path != "/free/x" {
				t.Errorf("audit of a blocked request: path %q, decision %+v; want result limited, a reason saying blocked until ... after repeated denials",
					rec.Request.Path, rec.Decision)
			}
		}
	}
	if blocked < 2 {
		t.Errorf("%d audit records of the block, want at least 2", blocked)
	}
	if rlLogCount(g, "caller blocked after repeated denials", abuserID.String()) != 1 {
		t.Errorf("%s log: want one line \"caller blocked after repeated denials\" naming %s", g.name, abuserID)
	}
}

// TestRedisSharedLimitAcrossReplicas: two replicas with the same policy and
// backend = "redis" enforce one limit, 10/m burst 10. The requests allowed
// across both stay within burst + what refills during the test (see
// docs/POLICY.md, "Shared limits").
func TestRedisSharedLimitAcrossReplicas(t *testing.T) {
	tp := env.topology(t, "rl-shared")
	t.Parallel()
	a, b := tp.gateway(t, "gw-rl-a"), tp.gateway(t, "gw-rl-b")
	t.Run("concurrent", func(t *testing.T) {
		caller := rlID("shared")
		clients := []*http.Client{a.client(t, caller, false), b.client(t, caller, false)}
		urls := []string{"https://" + a.addr("rl-a") + "/echo/s", "https://" + b.addr("rl-b") + "/echo/s"}
		const requests, workers = 60, 6
		var mu sync.Mutex
		allowed := [2]int{}
		next := make(chan int)
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Go(func() {
				for i := range next {
					r := doOrError(t, clients[i%2], http.MethodGet, urls[i%2], nil)
					switch r.code {
					case http.StatusOK:
						mu.Lock()
						allowed[i%2]++
						mu.Unlock()
					case http.StatusTooManyRequests, 0: // 0: rlGo reported it
					default:
						t.Errorf("request %d via replica %d: %d, want 200 or 429: %.200q", i, i%2, r.code, r.body)
					}
				}
			})
		}
		for i := range requests {
			next <- i
		}
		close(next)
		wg.Wait()
		window := time.Since(start)
		// GCRA with T = 6s: n requests pass only if their TAT, start + n·T,
		// stays within burst·T of the server's clock, so in a window W at
		// most burst + ⌊W/T⌋ pass.
		tolerance := rlSharedBurst + int(window/(time.Minute/rlSharedBurst))
		total := allowed[0] + allowed[1]
		t.Logf("%d requests in %v: %d allowed (%d via gw-rl-a, %d via gw-rl-b); tolerance %d",
			requests, window.Round(time.Millisecond), total, allowed[0], allowed[1], tolerance)
		if total < rlSharedBurst || total > tolerance {
			t.Fatalf("%d requests allowed across both replicas in %v, want between the burst %d and %d (burst + refill)",
				total, window.Round(time.Millisecond), rlSharedBurst, tolerance)
		}
	})
	t.Run("spent on one, refused by the other", func(t *testing.T) {
		caller := rlID("shared-seq")
		ca, cb := a.client(t, caller, false), b.client(t, caller, false)
		for i := 1; i <= rlSharedBurst; i++ {
			r := mustDo(t, ca, http.MethodGet, "https://"+a.addr("rl-a")+"/echo/s", nil)
			if r.code != http.StatusOK {
				t.Fatalf("request %d via gw-rl-a: %d, want 200: %.200q", i, r.code, r.body)
			}
		}
		r := mustDo(t, cb, http.MethodGet, "https://"+b.addr("rl-b")+"/echo/s", nil)
		if r.code != http.StatusTooManyRequests {
			t.Fatalf("gw-rl-b after the burst was spent on gw-rl-a: %d, want 429: %.200q", r.code, r.body)
		}
		q, w, rem, reset, err := rlHeaders(r.hdr, "rl-shared")
		if err != nil || q != rlSharedBurst || w != 60 || rem != 0 || reset < 50 || reset > 60 {
			t.Errorf("gw-rl-b refusal: q=%d w=%d r=%d t=%d (%v), want q=%d w=60 r=0 t≈60 (Redis's bucket)", q, w, rem, reset, err, rlSharedBurst)
		}
		if ra := retryAfter(r.hdr); ra < 1 || ra > 6 {
			t.Errorf("gw-rl-b refusal: Retry-After %q, want [1, 6] (one token per 6s)", r.hdr.Get("Retry-After"))
		}
		// The bucket is in Redis, under the configured prefix.
		key := "svidgate:it:shared:rl-shared\x00" + caller.String()
		if reply, err := rlRedisShared.Do("EXISTS", key); err != nil || reply != ":1" {
			t.Errorf("EXISTS %q in Redis: %q, %v; want :1", key, reply, err)
		}
	})
}

// TestRedisFailureModes stops Redis: the gateway with on_failure = "closed"
// refuses with 503, the one with "open" allows, both count the errors and log them;
// Redis restarted on the same port: both share one limit again, on their own.
func TestRedisFailureModes(t *testing.T) {
	tp := env.topology(t, "rl-outage")
	t.Parallel()
	closed, open := tp.gateway(t, "gw-rl-closed"), tp.gateway(t, "gw-rl-open")
	urlC, urlO := "https://"+closed.addr("rl-closed")+"/echo/o", "https://"+open.addr("rl-open")+"/echo/o"
	t.Cleanup(func() {
		if !rlRedisOutage.Running() {
			if err := rlRedisOutage.Restart(); err != nil {
				t.Error(err)
			}
		}
	})

	// Redis up: one bucket for both (5/m burst 5).
	caller := rlID("outage")
	cc, co := closed.client(t, caller, false), open.client(t, caller, false)
	for i, step := range []struct {
		c    *http.Client
		url  string
		left int
	}{{cc, urlC, 4}, {co, urlO, 3}} {
		r := mustDo(t, step.c, http.MethodGet, step.url, nil)
		_, _, rem, _, err := rlHeaders(r.hdr, "rl-outage")
		if r.code != http.StatusOK || err != nil || rem != step.left {
			t.Fatalf("step %d with Redis up: %d, r=%d (%v); want 200, r=%d: %.200q", i, r.code, rem, err, step.left, r.body)
		}
	}

	rlRedisOutage.Stop()
	errsC := metric(t, closed, "svidgate_ratelimit_backend_errors_total")
	errsO := metric(t, open, "svidgate_ratelimit_backend_errors_total")
	const down = 3
	for i := range down {
		r := mustDo(t, cc, http.MethodGet, urlC, nil)
		// Failing closed is the gateway's doing, not the caller's: 503
		// (docs/CONFIG.md), with a short Retry-After.
		if r.code != http.StatusServiceUnavailable || r.echo != nil {
			t.Fatalf("on_failure = closed, Redis down, request %d: %d, want 503 not forwarded: %.200q", i, r.code, r.body)
		}
		if ra := retryAfter(r.hdr); ra < 1 || ra > 12 {
			t.Errorf("on_failure = closed, Redis down: Retry-After %q, want whole seconds in [1, 12]", r.hdr.Get("Retry-After"))
		}
	}
	for i := range 2 * rlOutageBurst { // more than the burst: nothing is limited
		if r := mustDo(t, co, http.MethodGet, urlO, nil); r.code != http.StatusOK || r.echo == nil {
			t.Fatalf("on_failure = open, Redis down, request %d: %d, want 200 from httpecho: %.200q", i, r.code, r.body)
		}
	}
	if n := metric(t, closed, "svidgate_ratelimit_backend_errors_total") - errsC; n != down {
		t.Errorf("gw-rl-closed: %v backend errors counted while Redis was down, want %d", n, down)
	}
	if n := metric(t, open, "svidgate_ratelimit_backend_errors_total") - errsO; n != 2*rlOutageBurst {
		t.Errorf("gw-rl-open: %v backend errors counted while Redis was down, want %d", n, 2*rlOutageBurst)
	}
	rlCheckOutageReported(t, closed, open, caller, down)

	// Redis back on the same port, empty: the gateways reconnect by
	// themselves, and share one limit again.
	if err := rlRedisOutage.Restart(); err != nil {
		t.Fatal(err)
	}
	rlCheckSharedAgain(t, closed, open)
}

// rlCheckOutageReported checks how the two gateways of rl-outage
// reported the down requests of caller while Redis was down: a log line
// each, and gw-rl-closed's audit records and decision counter.
func rlCheckOutageReported(t testing.TB, closed, open *gateway, caller spiffeid.ID, down int) {
	t.Helper()
	for _, c := range []struct {
		g    *gateway
		mode string
	}{{closed, "closed"}, {open, "open"}} {
		if err := poll(5*time.Second, 100*time.Millisecond, func() error {
			if rlLogCount(c.g, "rate-limit backend failed", `"on_failure":"`+c.mode+`"`, rlRedisOutage.Addr()) == 0 {
				return fmt.Errorf("no log line")
			}
			return nil
		}); err != nil {
			t.Errorf("%s log: no line \"rate-limit backend failed\" with on_failure %s naming %s:\n%s", c.g.name, c.mode, rlRedisOutage.Addr(), indent(c.g.proc.tail(5)))
		}
	}
	recs := closed.recordsOf(t, caller, 1+down)
	for _, rec := range recs[1:] {
		if rec.Status != http.StatusServiceUnavailable || rec.Decision.Result != "error" || rec.Decision.Rule != "rl-outage" ||
			!strings.Contains(rec.Decision.Reason, "backend unreachable") {
			t.Errorf("gw-rl-closed audit while Redis was down: status %d, decision %+v; want 503, result error, rule rl-outage, "+
				"a reason saying the backend is unreachable", rec.Status, rec.Decision)
		}
	}
	if n := metric(t, closed, `svidgate_ratelimit_decisions_total{listener="rl-closed",result="backend_down",rule="rl-outage"}`); n != float64(down) {
		t.Errorf("gw-rl-closed: svidgate_ratelimit_decisions_total backend_down = %v, want %d", n, down)
	}
}

// rlCheckSharedAgain checks, once Redis is back (empty, on the same port),
// that both gateways of rl-outage count in it again, by themselves, in one
// bucket.
func rlCheckSharedAgain(t testing.TB, closed, open *gateway) {
	t.Helper()
	back := rlID("outage-back")
	bc, bo := closed.client(t, back, false), open.client(t, back, false)
	urlC, urlO := "https://"+closed.addr("rl-closed")+"/echo/o", "https://"+open.addr("rl-open")+"/echo/o"
	// Counted in Redis again: allowed with r = burst-1 (a refusal or a
	// pass for want of Redis has r=0).
	counted := func(g *gateway, c *http.Client, url string) func() error {
		return func() error {
			r := mustDo(t, c, http.MethodGet, url, nil)
			if _, _, rem, _, err := rlHeaders(r.hdr, "rl-outage"); r.code != http.StatusOK || err != nil || rem != rlOutageBurst-1 {
				return fmt.Errorf("%s: %d, r=%d (%v)", g.name, r.code, rem, err)
			}
			return nil
		}
	}
	if err := poll(10*time.Second, 200*time.Millisecond, counted(closed, bc, urlC)); err != nil {
		t.Fatalf("Redis back: gw-rl-closed did not count in Redis again within 10s: %v", err)
	}
	probe := open.client(t, rlID("outage-probe"), false)
	if err := poll(10*time.Second, 200*time.Millisecond, counted(open, probe, urlO)); err != nil {
		t.Fatalf("Redis back: gw-rl-open did not count in Redis again within 10s: %v", err)
	}
	errsO := metric(t, open, "svidgate_ratelimit_backend_errors_total")
	for i := 2; i <= rlOutageBurst; i++ {
		r := mustDo(t, bo, http.MethodGet, urlO, nil)
		_, _, rem, _, err := rlHeaders(r.hdr, "rl-outage")
		if r.code != http.StatusOK || err != nil || rem != rlOutageBurst-i {
			t.Fatalf("Redis back, request %d via gw-rl-open: %d, r=%d (%v); want 200, r=%d (one bucket with gw-rl-closed)", i, r.code, rem, err, rlOutageBurst-i)
		}
	}
	for _, c := range []struct {
		g   *gateway
		cl  *http.Client
		url string
	}{{open, bo, urlO}, {closed, bc, urlC}} {
		r := mustDo(t, c.cl, http.MethodGet, c.url, nil)
		_, _, rem, reset, err := rlHeaders(r.hdr, "rl-outage")
		// A real limit: the bucket is full until ≈60s from now (t), unlike
		// a refusal for want of Redis (t=0).
		if r.code != http.StatusTooManyRequests || err != nil || rem != 0 || reset < 50 {
			t.Errorf("Redis back, burst spent: %s answered %d, r=%d t=%d (%v); want 429 by the shared limit, r=0 t≈60", c.g.name, r.code, rem, reset, err)
		}
	}
	if n := metric(t, open, "svidgate_ratelimit_backend_errors_total") - errsO; n != 0 {
		t.Errorf("gw-rl-open: %v backend errors after Redis came back, want 0", n)
	}
}

// TestRedisQuotaSurvivesGatewayRestart: a quota spent before a gateway
// restart is still spent after it, with the Redis backend.
func TestRedisQuotaSurvivesGatewayRestart(t *testing.T) {
	tp := env.topology(t, "rl-quota")
	t.Parallel()
	g := tp.gateway(t, "gw-rl-quota")
	url := "https://" + g.addr("rl-quota") + "/echo/q"
	caller := rlID("quota")
	c := g.client(t, caller, false)
	for i := 1; i <= rlQuotaPerDay; i++ {
		if r := mustDo(t, c, http.MethodGet, url, nil); r.code != http.StatusOK {
			t.Fatalf("request %d within the quota: %d, want 200: %.200q", i, r.code, r.body)
		}
	}
	checkSpent := func(when string, r *result) {
		t.Helper()
		if r.code != http.StatusTooManyRequests || !strings.Contains(string(r.body), "quota 3/day") {
			t.Fatalf("%s: %d, want 429 naming quota 3/day: %.200q", when, r.code, r.body)
		}
		// One request per 8h comes back.
		if ra := retryAfter(r.hdr); ra < 8*3600-60 || ra > 8*3600 {
			t.Errorf("%s: Retry-After %q, want about 8h (28800)", when, r.hdr.Get("Retry-After"))
		}
	}
	checkSpent("over the quota", mustDo(t, c, http.MethodGet, url, nil))

	if err := env.restart(g, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	c = g.client(t, caller, false) // new connections
	checkSpent("over the quota, after the gateway restarted", mustDo(t, c, http.MethodGet, url, nil))
	if r := mustDo(t, g.client(t, rlID("quota-fresh"), false), http.MethodGet, url, nil); r.code != http.StatusOK {
		t.Fatalf("another caller after the restart: %d, want 200: %.200q", r.code, r.body)
	}

	recs := g.recordsOf(t, caller, rlQuotaPerDay+2)
	for _, rec := range recs[rlQuotaPerDay:] {
		if rec.Decision.Result != "limited" || rec.RateLimit.Rule != "rl-quota" || rec.RateLimit.Limit != "3/day" ||
			!strings.Contains(rec.Decision.Reason, "quota 3/day") {
			t.Errorf("audit of a request over the quota: decision %+v, ratelimit %+v; want limited, rule rl-quota, limit 3/day", rec.Decision, rec.RateLimit)
		}
	}
	key := "svidgate:it:quota:rl-quota\x00" + caller.String() + "\x00quota"
	if reply, err := rlRedisQuota.Do("PTTL", key); err != nil || !strings.HasPrefix(reply, ":") {
		t.Errorf("PTTL of the quota key %q: %q, %v", key, reply, err)
	} else if ms, _ := strconv.ParseInt(reply[1:], 10, 64); ms < (23 * time.Hour).Milliseconds() {
		t.Errorf("PTTL of the quota key: %dms, want about 24h (the spent quota refills over a day)", ms)
	}
}
