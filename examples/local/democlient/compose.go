package main

// The steps of the docker compose demo (examples/compose), after the four of
// the local demo: they need an edge gateway, two replicas behind a shared
// Redis limit and the gateways' audit trails, which only the compose demo has.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

type composeSteps struct {
	edge         string // https://edge:8443: the edge gateway
	edgeID       string // the SPIFFE ID the edge must present
	edgeAudience string // the audience of the JWT-SVID for the edge
	workloadAPI  string // where this process, a registered workload, gets its JWT-SVID
	burst        string // comma-separated URLs, one per replica, called in turn
	burstN       int    // requests in the burst
	burstLimit   int    // the shared bucket's size: at most this many may pass
	redis        string // host:port of the Redis the gateways share
	auditDir     string // the gateways' audit trails
	svidgate     string // the svidgate binary, for audit verify and audit graph
	graphFiles   string // comma-separated trail names (in auditDir) for the graph
	svidWait     time.Duration
	auditOnly    bool   // run step 7 alone (in a container that may read the trails)
	since        string // RFC 3339: records before are not the tour's
	wantLimited  int    // -audit-only: at least this many limited records

	start   time.Time
	limited int // 429s seen in the burst
}

func (c *composeSteps) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.edge, "edge", "", "compose demo: the edge gateway's URL, e.g. https://edge:8443 (enables the compose steps)")
	fs.StringVar(&c.edgeID, "edge-id", "spiffe://example.org/demo/edge", "SPIFFE ID the edge gateway must present")
	fs.StringVar(&c.edgeAudience, "edge-audience", "spiffe://example.org/demo/edge", "audience of the JWT-SVID for the edge")
	fs.StringVar(&c.workloadAPI, "workload-api", "unix:///run/spire/agent/api.sock", "Workload API this process fetches its JWT-SVID from")
	fs.StringVar(&c.burst, "burst", "", "comma-separated URLs of one rate-limited route, one per replica, called in turn")
	fs.IntVar(&c.burstN, "burst-n", 10, "requests in the burst")
	fs.IntVar(&c.burstLimit, "burst-limit", 5, "size of the shared bucket: at most this many requests of the burst may pass")
	fs.StringVar(&c.redis, "redis", "", "host:port of the gateways' Redis, to show the shared bucket")
	fs.StringVar(&c.auditDir, "audit", "", "directory of the gateways' audit trails (NAME.jsonl)")
	fs.StringVar(&c.svidgate, "svidgate", "svidgate", "svidgate binary for audit verify and audit graph")
	fs.StringVar(&c.graphFiles, "graph", "httpecho-gw,httpecho-b-gw,grpcecho-gw,edge", "trails (names in -audit) the graph is drawn from")
	fs.DurationVar(&c.svidWait, "svid-wait", 60*time.Second, "how long to wait for this workload's JWT-SVID")
	fs.BoolVar(&c.auditOnly, "audit-only", false, "only check the audit trail (-audit); the trails are 0600, so this runs as their reader")
	fs.StringVar(&c.since, "since", "", "RFC 3339 time: audit records before it are not the tour's (default: now - 1 minute)")
	fs.IntVar(&c.wantLimited, "want-limited", 5, "with -audit-only: the burst's limited records to expect, at least")
}

func (c *composeSteps) enabled() bool { return c.edge != "" || c.burst != "" || c.auditDir != "" }

func (c *composeSteps) run(d *demo, hc *http.Client) {
	c.start = time.Now().Add(-time.Second)
	if c.auditOnly {
		c.start = time.Now().Add(-time.Minute)
		if c.since != "" {
			t, err := time.Parse(time.RFC3339, c.since)
			if err != nil {
				d.result(false, "-since: %v", err)
				return
			}
			c.start = t
		}
		c.auditStep(d)
		return
	}
	if c.edge != "" {
		c.edgeStep(d)
	}
	if c.burst != "" {
		c.burstStep(d, hc)
	}
	if c.auditDir != "" {
		c.auditStep(d)
	}
}

// edgeStep: a north-south caller without a token, then with a JWT-SVID the
// agent issued to this very process.
func (c *composeSteps) edgeStep(d *demo) {
	url := strings.TrimSuffix(c.edge, "/") + "/orders/42"
	d.step(5, "JWT-required route: partner → edge → httpecho", "GET "+url+"  (TLS to the edge's X509-SVID, no client certificate)")

	ctx, cancel := context.WithTimeout(context.Background(), c.svidWait)
	defer cancel()
	edgeID, err := spiffeid.FromString(c.edgeID)
	if err != nil {
		d.result(false, "-edge-id: %v", err)
		return
	}
	var token *jwtsvid.SVID
	var tlsConf *tls.Config
	err = retry(ctx, func() error {
		bundles, err := workloadapi.FetchX509Bundles(ctx, workloadapi.WithAddr(c.workloadAPI))
		if err != nil {
			return err
		}
		tlsConf = tlsconfig.TLSClientConfig(bundles, tlsconfig.AuthorizeID(edgeID))
		token, err = workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: c.edgeAudience}, workloadapi.WithAddr(c.workloadAPI))
		return err
	})
	if err != nil {
		d.result(false, "no JWT-SVID from %s within %s: %v", c.workloadAPI, c.svidWait, err)
		return
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true}}

	code, body, err := call(hc, url, "")
	if err != nil {
		d.result(false, "without a token: %v", err)
	} else {
		d.result(code == http.StatusUnauthorized, "without a token: %d %s: %s", code, http.StatusText(code), oneLine(body))
	}

	fmt.Fprintf(d.out, "   JWT-SVID from the Workload API: sub %s, aud %s, expires %s\n",
		token.ID, strings.Join(token.Audience, ","), token.Expiry.UTC().Format(time.RFC3339))
	code, body, err = call(hc, url, token.Marshal())
	if err != nil {
		d.result(false, "with the JWT-SVID: %v", err)
		return
	}
	var e struct {
		XFCC    []string            `json:"xfcc"`
		Headers map[string][]string `json:"headers"`
	}
	_ = json.Unmarshal(body, &e)
	d.result(code == http.StatusOK, "with the JWT-SVID: %d %s", code, http.StatusText(code))
	if code == http.StatusOK {
		d.result(len(e.XFCC) == 1 && strings.Contains(e.XFCC[0], "URI="+c.edgeID),
			"httpecho received X-Forwarded-Client-Cert: %s", strings.Join(e.XFCC, ", "))
		_, forwarded := e.Headers["Authorization"]
		d.result(!forwarded, "the token stopped at the edge (Authorization forwarded: %v)", forwarded)
	}
}

// burstStep calls the replicas of one rate-limited route in turn: with the
// bucket in Redis, together they let no more than its size through.
func (c *composeSteps) burstStep(d *demo, hc *http.Client) {
	urls := strings.Split(c.burst, ",")
	d.step(6, "rate limit shared by replicas: web → httpecho, httpecho-b",
		fmt.Sprintf("%d × GET, in turn to %s  (web-pulls-reports: 5/m, burst %d, in Redis)", c.burstN, strings.Join(urls, " and "), c.burstLimit))
	type tally struct{ ok, limited, other int }
	per := make([]tally, len(urls))
	var seq []string
	retryAfter := true
	for i := range c.burstN {
		j := i % len(urls)
		resp, err := hc.Get(urls[j])
		if err != nil {
			d.result(false, "%s: %v", urls[j], err)
			return
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		seq = append(seq, strconv.Itoa(resp.StatusCode))
		switch resp.StatusCode {
		case http.StatusOK:
			per[j].ok++
		case http.StatusTooManyRequests:
			per[j].limited++
			if resp.Header.Get("Retry-After") == "" {
				retryAfter = false
			}
		default:
			per[j].other++
		}
	}
	fmt.Fprintf(d.out, "   statuses in order: %s\n", strings.Join(seq, " "))
	ok, other := 0, 0
	everyReplicaLimited := true
	for j, t := range per {
		fmt.Fprintf(d.out, "   %-32s %d × 200, %d × 429\n", urls[j], t.ok, t.limited)
		ok += t.ok
		c.limited += t.limited
		other += t.other
		if t.limited == 0 {
			everyReplicaLimited = false
		}
	}
	d.result(other == 0 && ok <= c.burstLimit && c.limited == c.burstN-ok,
		"%d passed, %d got 429 Too Many Requests: the replicas drew on one bucket of %d", ok, c.limited, c.burstLimit)
	d.result(everyReplicaLimited && retryAfter, "every replica refused some (429 with Retry-After)")
	if c.redis != "" {
		keys, err := redisKeys(c.redis, "svidgate:rl:*")
		if err != nil {
			d.result(false, "Redis %s: %v", c.redis, err)
			return
		}
		var shown []string
		for _, k := range keys {
			if strings.Contains(k, "web-pulls-reports") {
				shown = append(shown, strconv.Quote(k))
			}
		}
		d.result(len(shown) > 0, "the bucket in Redis %s: %s", c.redis, strings.Join(shown, ", "))
	}
}

type dryRun struct {
	Rule   string `json:"rule"`
	Result string `json:"result"`
}

// auditRecord holds the fields of an audit record that the checks read.
type auditRecord struct {
	Time     time.Time `json:"time"`
	Listener string    `json:"listener"`
	Source   struct {
		SPIFFEID string `json:"spiffe_id"`
	} `json:"source"`
	JWT *struct {
		Sub string `json:"sub"`
	} `json:"jwt"`
	Request struct {
		Path string `json:"path"`
	} `json:"request"`
	Decision struct {
		Result string   `json:"result"`
		Rule   string   `json:"rule"`
		DryRun []dryRun `json:"dry_run"`
	} `json:"decision"`
	Status int `json:"status"`
}

func (c *composeSteps) trail(name string) ([]auditRecord, error) {
	b, err := os.ReadFile(filepath.Join(c.auditDir, name+".jsonl"))
	if err != nil {
		return nil, err
	}
	var out []auditRecord
	for line := range bytes.Lines(b) {
		var r auditRecord
		if !bytes.HasSuffix(line, []byte("\n")) || json.Unmarshal(line, &r) != nil {
			continue // a line being written
		}
		if !r.Time.Before(c.start) {
			out = append(out, r)
		}
	}
	return out, nil
}

type auditCheck struct {
	trail string
	what  string
	want  int // at least this many records (exactly, when exact)
	exact bool
	match func(auditRecord) bool
}

func (c *composeSteps) auditStep(d *demo) {
	d.step(7, "the audit trail", "one record per decision, in "+c.auditDir+"/*.jsonl")
	const batch, partner, web = "spiffe://example.org/demo/batch", "spiffe://example.org/demo/partner", "spiffe://example.org/demo/web"
	checks := []auditCheck{
		{trail: "httpecho-gw", what: "batch denied, dry-run rule batch-reads-orders would_allow", want: 1, match: func(r auditRecord) bool {
			return r.Source.SPIFFEID == batch && r.Decision.Result == "deny" && r.Status == http.StatusForbidden &&
				slices.Contains(r.Decision.DryRun, dryRun{Rule: "batch-reads-orders", Result: "would_allow"})
		}},
		{trail: "edge", what: "the call without a token: 401", want: 1, match: func(r auditRecord) bool {
			return r.Status == http.StatusUnauthorized && r.Decision.Result == "deny"
		}},
		{trail: "edge", what: "the partner's JWT-SVID call: allowed by partner-reads-orders", want: 1, match: func(r auditRecord) bool {
			return r.Status == http.StatusOK && r.Decision.Result == "allow" && r.Decision.Rule == "partner-reads-orders" &&
				r.JWT != nil && r.JWT.Sub == partner && r.Source.SPIFFEID == partner
		}},
		{trail: "grpcecho-gw", what: "web's EmptyCall denied", want: 1, match: func(r auditRecord) bool {
			return r.Source.SPIFFEID == web && r.Decision.Result == "deny" && r.Request.Path == "/grpc.testing.TestService/EmptyCall"
		}},
	}
	if c.burst != "" || c.auditOnly {
		want, exact := c.limited, true
		if c.auditOnly {
			want, exact = c.wantLimited, false
		}
		checks = append(checks, auditCheck{trail: "httpecho-gw+httpecho-b-gw", what: "the burst's 429s, limited by web-pulls-reports", want: want, exact: exact,
			match: func(r auditRecord) bool {
				return r.Source.SPIFFEID == web && r.Decision.Result == "limited" && r.Decision.Rule == "web-pulls-reports" && r.Status == http.StatusTooManyRequests
			}})
	}
	// The writer is asynchronous: give the last records a moment to land.
	counts := make([]int, len(checks))
	deadline := time.Now().Add(15 * time.Second)
	for {
		done := true
		for i, ck := range checks {
			counts[i] = 0
			for name := range strings.SplitSeq(ck.trail, "+") {
				recs, _ := c.trail(name)
				for _, r := range recs {
					if ck.match(r) {
						counts[i]++
					}
				}
			}
			if counts[i] < max(ck.want, 1) {
				done = false
			}
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	for i, ck := range checks {
		ok := counts[i] >= ck.want && counts[i] > 0
		if ck.exact {
			ok = counts[i] == ck.want && ck.want > 0
		}
		d.result(ok, "%s: %s (%d record(s))", ck.trail+".jsonl", ck.what, counts[i])
	}

	names, _ := filepath.Glob(filepath.Join(c.auditDir, "*.jsonl"))
	sort.Strings(names)
	for _, f := range names {
		out, err := exec.Command(c.svidgate, "audit", "verify", f).CombinedOutput()
		msg := oneLine(out)
		if i := strings.Index(msg, ", last chain"); i > 0 {
			msg = msg[:i]
		}
		d.result(err == nil, "svidgate audit verify %s: %s", filepath.Base(f), msg)
	}

	var files []string
	for name := range strings.SplitSeq(c.graphFiles, ",") {
		if f := filepath.Join(c.auditDir, name+".jsonl"); fileExists(f) {
			files = append(files, f)
		}
	}
	out, err := exec.Command(c.svidgate, append([]string{"audit", "graph", "-format", "json"}, files...)...).Output()
	var g struct {
		Edges []struct {
			From     string `json:"from"`
			To       string `json:"to"`
			Requests uint64 `json:"requests"`
			Denied   uint64 `json:"denied"`
			Limited  uint64 `json:"limited"`
			Errors   uint64 `json:"errors"`
		} `json:"edges"`
	}
	if err == nil {
		err = json.Unmarshal(out, &g)
	}
	if err != nil {
		d.result(false, "svidgate audit graph: %v", err)
		return
	}
	fmt.Fprintf(d.out, "\n   service graph (svidgate audit graph over %s):\n", strings.ReplaceAll(c.graphFiles, ",", ", "))
	for _, e := range g.Edges {
		fmt.Fprintf(d.out, "     %-36s → %-38s %3d requests, %d denied, %d limited, %d errors\n",
			short(e.From), short(e.To), e.Requests, e.Denied, e.Limited, e.Errors)
	}
	d.result(len(g.Edges) >= 4, "%d edges: who called whom, from the gateways' own records", len(g.Edges))
}

func short(id string) string { return strings.TrimPrefix(id, "spiffe://example.org") }

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func call(c *http.Client, url, token string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// retry runs f every 500 ms until it succeeds or ctx ends.
func retry(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// redisKeys asks a Redis server for KEYS pattern over RESP (a demo-sized
// database: KEYS is fine there).
func redisKeys(addr, pattern string) ([]string, error) {
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprintf(conn, "*2\r\n$4\r\nKEYS\r\n$%d\r\n%s\r\n", len(pattern), pattern); err != nil {
		return nil, err
	}
	r := bufio.NewReader(conn)
	head, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(head, "*") {
		return nil, fmt.Errorf("KEYS: unexpected answer %q", strings.TrimSpace(head))
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil || n > 10000 {
		return nil, fmt.Errorf("KEYS: unexpected answer %q", strings.TrimSpace(head))
	}
	keys := make([]string, 0, n)
	for range n {
		h, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(h, "$")))
		if err != nil || size < 0 || size > 1<<16 {
			return nil, errors.New("KEYS: malformed bulk string")
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		keys = append(keys, string(buf[:size]))
	}
	return keys, nil
}
