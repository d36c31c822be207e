package policy

import (
	"strings"
	"testing"
	"time"
)

const jwtPolicy = `version = 1

[[rule]]
id      = "web-reads"
effect  = "allow"
callers = ["spiffe://example.org/web"]
paths   = ["/orders/**"]
[rule.jwt]
audience = "spiffe://example.org/orders"
[rule.jwt.claims]
scope  = { contains = "orders:read" }
tenant = { equals = "acme" }
env    = { one_of = ["prod", "staging"] }

[[rule]]
id      = "gw-for-workloads"
effect  = "allow"
callers = ["spiffe://example.org/gateway"]
[rule.jwt]
audience = "spiffe://example.org/orders"
subject  = ["spiffe://example.org/ns/*/web"]
forward  = true
[rule.rate]
limit = "50/s"
burst = 100
quota = "100000/day"
max_in_flight = 8
key = "trust_domain"
[[rule.rate.override]]
callers = ["spiffe://example.org/gateway"]
limit   = "500/s"

[[rule]]
id      = "open"
effect  = "allow"
callers = ["spiffe://example.org/public"]
`

func TestJWTRequirement(t *testing.T) {
	p, err := Parse("p.toml", []byte(jwtPolicy))
	if err != nil {
		t.Fatal(err)
	}
	good := map[string]any{"scope": []any{"orders:read", "orders:write"}, "tenant": "acme", "env": "prod"}
	aud := []string{"spiffe://example.org/orders"}
	tests := []struct {
		name   string
		caller string
		sub    string
		aud    []string
		claims map[string]any
		want   string
	}{
		{"all conditions hold", "spiffe://example.org/web", "spiffe://example.org/web", aud, good, ""},
		{"scope as space-separated words", "spiffe://example.org/web", "spiffe://example.org/web", aud,
			map[string]any{"scope": "a orders:read", "tenant": "acme", "env": "staging"}, ""},
		{"wrong audience", "spiffe://example.org/web", "spiffe://example.org/web", []string{"spiffe://example.org/billing"}, good, ReasonJWTAudience},
		{"subject is not the peer", "spiffe://example.org/web", "spiffe://example.org/batch", aud, good, ReasonJWTSubject},
		{"claim missing", "spiffe://example.org/web", "spiffe://example.org/web", aud, map[string]any{"tenant": "acme", "env": "prod"}, ReasonJWTClaim},
		{"claim not one of", "spiffe://example.org/web", "spiffe://example.org/web", aud, map[string]any{"scope": []any{"orders:read"}, "tenant": "acme", "env": "dev"}, ReasonJWTClaim},
		{"claim of wrong type", "spiffe://example.org/web", "spiffe://example.org/web", aud, map[string]any{"scope": []any{"orders:read"}, "tenant": 7.0, "env": "prod"}, ReasonJWTClaim},
		{"gateway acting for a listed subject", "spiffe://example.org/gateway", "spiffe://example.org/ns/shop/web", aud, nil, ""},
		{"gateway acting for an unlisted subject", "spiffe://example.org/gateway", "spiffe://example.org/ns/shop/batch", aud, nil, ReasonJWTSubject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(Input{Caller: tt.caller, Method: "GET", Path: "/orders/1"})
			if d.Result != Allow || d.JWT == nil {
				t.Fatalf("decision %+v: want an allow with a JWT requirement", d)
			}
			if got := d.JWT.Check(tt.caller, tt.sub, tt.aud, tt.claims); got != tt.want {
				t.Errorf("Check = %q, want %q", got, tt.want)
			}
			ex := d.JWT.Explain(tt.caller, tt.sub, tt.aud, tt.claims)
			allOK := true
			for _, r := range ex {
				allOK = allOK && r.OK
			}
			if allOK != (tt.want == "") {
				t.Errorf("Explain says all ok = %v, Check says %q: %+v", allOK, tt.want, ex)
			}
		})
	}
	if d := p.Decide(Input{Caller: "spiffe://example.org/public", Method: "GET", Path: "/"}); d.JWT != nil || d.Rate != nil {
		t.Errorf("a rule without [rule.jwt] or [rule.rate] got %+v", d)
	}
}

func TestRateSpec(t *testing.T) {
	p, err := Parse("p.toml", []byte(jwtPolicy))
	if err != nil {
		t.Fatal(err)
	}
	d := p.Decide(Input{Caller: "spiffe://example.org/gateway", Method: "GET", Path: "/"})
	if d.Rate == nil || !d.JWT.Forward {
		t.Fatalf("decision %+v", d)
	}
	s := d.Rate
	if s.Limit != (Rate{50, time.Second}) || s.Burst != 100 || s.Quota != (Rate{100000, 24 * time.Hour}) || s.MaxInFlight != 8 || s.Key != KeyTrustDomain {
		t.Errorf("spec %+v", s)
	}
	e := s.For("spiffe://example.org/gateway")
	if e.Override != 0 || e.Limit != (Rate{500, time.Second}) || e.Burst != 500 || e.Quota != s.Quota || e.MaxInFlight != 8 {
		t.Errorf("override: %+v", e)
	}
	if e := s.For("spiffe://example.org/other"); e.Override != -1 || e.Limit != s.Limit {
		t.Errorf("no override: %+v", e)
	}
	if got := s.Quota.String(); got != "100000/day" {
		t.Errorf("Rate.String = %q", got)
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{"50/s": {50, time.Second}, "3000/m": {3000, time.Minute}, "10/h": {10, time.Hour}, "100000/day": {100000, 24 * time.Hour}} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "50", "0/s", "-1/s", "5/week", "x/s", "5/S", "2000000/s"} {
		if _, err := ParseRate(bad); err == nil || strings.HasPrefix(err.Error(), "ratelimit:") {
			t.Errorf("ParseRate(%q) = %v, want an error listing the forms", bad, err)
		}
	}
}

func BenchmarkJWTCheck(b *testing.B) {
	p, _ := Parse("p.toml", []byte(jwtPolicy))
	d := p.Decide(Input{Caller: "spiffe://example.org/web", Method: "GET", Path: "/orders/1"})
	claims := map[string]any{"scope": []any{"orders:read"}, "tenant": "acme", "env": "prod"}
	aud := []string{"spiffe://example.org/orders"}
	b.ReportAllocs()
	for b.Loop() {
		if d.JWT.Check("spiffe://example.org/web", "spiffe://example.org/web", aud, claims) != "" {
			b.Fatal("check failed")
		}
	}
}
