package policy

import (
	"fmt"
	"strings"
	"testing"
)

// hundredRules returns a policy of 100 varied rules, shaped like a mesh of
// 20 services in 5 namespaces: per-service read and write rules, namespace
// wildcards, gRPC services, host-bound rules, cross-trust-domain rules,
// denies and dry-run rules.
func hundredRules() string {
	var b strings.Builder
	b.WriteString("version = 1\n")
	ns := []string{"shop", "billing", "identity", "search", "ops"}
	n := 0
	add := func(format string, args ...any) {
		n++
		fmt.Fprintf(&b, "\n[[rule]]\nid = \"r%03d\"\n", n)
		fmt.Fprintf(&b, format+"\n", args...)
	}
	for i := 0; i < 20; i++ {
		space, svc := ns[i%5], fmt.Sprintf("svc%02d", i)
		add(`effect = "allow"
callers = ["spiffe://example.org/ns/%s/sa/%s"]
methods = ["GET", "HEAD"]
paths = ["/api/%s", "/api/%s/**"]`, space, svc, svc, svc)
		add(`effect = "allow"
callers = ["spiffe://example.org/ns/%s/sa/%s-writer", "spiffe://example.org/ns/%s/sa/admin"]
methods = ["POST", "PUT", "PATCH"]
paths = ["/api/%s/*/items", "/api/%s/*"]
hosts = ["%s.internal", "*.%s.example.com"]`, space, svc, space, svc, svc, svc, svc)
		add(`effect = "allow"
callers = ["spiffe://example.org/ns/%s/sa/*"]
grpc = ["/%s.v1.%s/*", "/grpc.health.v1.Health/Check"]`, space, space, svc)
		switch i % 4 {
		case 0:
			add(`effect = "deny"
callers = ["spiffe://example.org/ns/%s/**"]
methods = ["DELETE"]
paths = ["/api/%s/**"]`, space, svc)
		case 1:
			add(`effect = "allow"
callers = ["spiffe://partner.example.com/**"]
methods = ["GET"]
paths = ["/public/%s/**"]
hosts = ["api.example.com"]`, svc)
		case 2:
			add(`effect = "deny"
mode = "dry-run"
callers = ["spiffe://example.org/ns/legacy/sa/%s"]`, svc)
		case 3:
			add(`effect = "allow"
callers = ["spiffe://example.org/ns/%s/sa/%s"]
paths = ["/internal/%s/*/status"]`, space, svc, svc)
		}
		if i%4 == 3 {
			add(`effect = "deny"
callers = ["spiffe://example.org/**"]
paths = ["/admin/%s/**"]`, svc)
		}
	}
	for n < 100 {
		add(`effect = "allow"
callers = ["spiffe://example.org/ns/ops/sa/probe%d"]
methods = ["GET"]
paths = ["/healthz", "/readyz"]`, n)
	}
	return b.String()
}

func BenchmarkDecide100Rules(b *testing.B) {
	p, err := Parse("bench.toml", []byte(hundredRules()))
	if err != nil {
		b.Fatal(err)
	}
	if p.Rules() != 100 {
		b.Fatalf("%d rules", p.Rules())
	}
	cases := []struct {
		name string
		in   Input
		want Result
	}{
		{"early-allow", Input{Caller: "spiffe://example.org/ns/shop/sa/svc00", Host: "svc00.internal",
			Method: "GET", Path: "/api/svc00/orders/1"}, Allow},
		{"late-allow", Input{Caller: "spiffe://example.org/ns/ops/sa/svc19", Host: "svc19.internal",
			Method: "GET", Path: "/api/svc19/x"}, Allow},
		{"grpc", Input{Caller: "spiffe://example.org/ns/search/sa/anything", Host: "svc13.internal",
			Method: "POST", Path: "/search.v1.svc13/Query", GRPC: true}, Allow},
		{"deny", Input{Caller: "spiffe://example.org/ns/shop/sa/svc00", Host: "svc00.internal",
			Method: "DELETE", Path: "/api/svc00/orders/1"}, Deny},
		{"no-match", Input{Caller: "spiffe://example.org/ns/shop/sa/unknown", Host: "svc00.internal",
			Method: "GET", Path: "/api/svc00/orders/1"}, Deny},
		{"other-trust-domain", Input{Caller: "spiffe://evil.org/ns/shop/sa/svc00", Host: "svc00.internal",
			Method: "GET", Path: "/api/svc00"}, Deny},
	}
	for _, c := range cases {
		if d := p.Decide(c.in); d.Result != c.want || d.DryRun != nil {
			b.Fatalf("%s: %+v\n%s", c.name, d, p.Explain(c.in))
		}
	}
	b.Run("mix", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			_ = p.Decide(cases[i%len(cases)].in)
			i++
		}
	})
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = p.Decide(c.in)
			}
		})
	}
}

func BenchmarkParse100Rules(b *testing.B) {
	src := []byte(hundredRules())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("bench.toml", src); err != nil {
			b.Fatal(err)
		}
	}
}
