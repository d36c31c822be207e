package policy

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

const (
	allowWeb = `id = "allow-web"
effect = "allow"
callers = ["spiffe://example.org/web"]`
	allowAll = `id = "allow-all"
effect = "allow"
callers = ["spiffe://example.org/**"]`
	denyAdmin = `id = "deny-admin"
effect = "deny"
callers = ["spiffe://example.org/**"]
paths = ["/admin/**"]`
	denyDelete = `id = "deny-delete"
effect = "deny"
callers = ["spiffe://example.org/**"]
methods = ["DELETE"]`
	dryDenyWeb = `id = "dry-deny-web"
effect = "deny"
mode = "dry-run"
callers = ["spiffe://example.org/web"]`
	dryAllowAPI = `id = "dry-allow-api"
effect = "allow"
mode = "dry-run"
callers = ["spiffe://example.org/api"]`
	dryAllowWeb = `id = "dry-allow-web"
effect = "allow"
mode = "dry-run"
callers = ["spiffe://example.org/web"]`
)

func TestDecide(t *testing.T) {
	web := Input{Caller: "spiffe://example.org/web", Method: "GET", Path: "/orders"}
	webAdmin := Input{Caller: "spiffe://example.org/web", Method: "DELETE", Path: "/admin/x"}
	api := Input{Caller: "spiffe://example.org/api", Method: "GET", Path: "/orders"}
	tests := []struct {
		name  string
		rules []string
		in    Input
		want  Decision
	}{
		{"no rules", nil, web, Decision{Result: Deny, Reason: ReasonNoMatch}},
		{"no match", []string{allowWeb}, api, Decision{Result: Deny, Reason: ReasonNoMatch}},
		{"allow", []string{allowWeb}, web, Decision{Result: Allow, Rule: "allow-web", Reason: ReasonAllowed}},
		{"first allow named", []string{allowWeb, allowAll}, web,
			Decision{Result: Allow, Rule: "allow-web", Reason: ReasonAllowed}},
		{"first allow named, other order", []string{allowAll, allowWeb}, web,
			Decision{Result: Allow, Rule: "allow-all", Reason: ReasonAllowed}},
		{"deny after allow wins", []string{allowWeb, denyAdmin}, webAdmin,
			Decision{Result: Deny, Rule: "deny-admin", Reason: ReasonDenied}},
		{"deny before allow wins", []string{denyAdmin, allowWeb}, webAdmin,
			Decision{Result: Deny, Rule: "deny-admin", Reason: ReasonDenied}},
		{"first deny named", []string{allowWeb, denyDelete, denyAdmin}, webAdmin,
			Decision{Result: Deny, Rule: "deny-delete", Reason: ReasonDenied}},
		{"first deny named, other order", []string{denyAdmin, allowWeb, denyDelete}, webAdmin,
			Decision{Result: Deny, Rule: "deny-admin", Reason: ReasonDenied}},
		{"deny that does not match", []string{denyAdmin, allowWeb}, web,
			Decision{Result: Allow, Rule: "allow-web", Reason: ReasonAllowed}},
		{"dry-run deny does not deny", []string{allowWeb, dryDenyWeb}, web,
			Decision{Result: Allow, Rule: "allow-web", Reason: ReasonAllowed,
				DryRun: []DryRunOutcome{{Rule: "dry-deny-web", Result: Deny}}}},
		{"dry-run deny before the allow", []string{dryDenyWeb, allowWeb}, web,
			Decision{Result: Allow, Rule: "allow-web", Reason: ReasonAllowed,
				DryRun: []DryRunOutcome{{Rule: "dry-deny-web", Result: Deny}}}},
		{"dry-run allow does not allow", []string{dryAllowAPI}, api,
			Decision{Result: Deny, Reason: ReasonNoMatch,
				DryRun: []DryRunOutcome{{Rule: "dry-allow-api", Result: Allow}}}},
		{"dry-run reported after an enforced deny", []string{denyAdmin, dryDenyWeb}, webAdmin,
			Decision{Result: Deny, Rule: "deny-admin", Reason: ReasonDenied,
				DryRun: []DryRunOutcome{{Rule: "dry-deny-web", Result: Deny}}}},
		{"dry-run that does not match", []string{allowWeb, dryAllowAPI}, web,
			Decision{Result: Allow, Rule: "allow-web", Reason: ReasonAllowed}},
		{"several dry-runs in file order", []string{dryDenyWeb, allowAll, dryAllowWeb}, web,
			Decision{Result: Allow, Rule: "allow-all", Reason: ReasonAllowed,
				DryRun: []DryRunOutcome{{Rule: "dry-deny-web", Result: Deny}, {Rule: "dry-allow-web", Result: Allow}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policyOf(t, tt.rules...)
			got := p.Decide(tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Decide = %+v, want %+v\n%s", got, tt.want, p.Explain(tt.in))
			}
			if e := p.Explain(tt.in); !reflect.DeepEqual(e.Decision, got) {
				t.Fatalf("Explain decided %+v, Decide %+v", e.Decision, got)
			}
		})
	}
}

func TestDecideDoesNotAllocate(t *testing.T) {
	p := policyOf(t, allowWeb, denyAdmin, denyDelete, allowAll, dryAllowAPI)
	for _, in := range []Input{
		{Caller: "spiffe://example.org/web", Method: "GET", Path: "/orders"},
		{Caller: "spiffe://example.org/web", Method: "DELETE", Path: "/admin/x"},
		{Caller: "spiffe://other.org/web", Method: "GET", Path: "/orders"},
		{Method: "GET", Path: "/"},
	} {
		if n := testing.AllocsPerRun(100, func() { _ = p.Decide(in) }); n != 0 {
			t.Errorf("Decide(%+v) allocates %v times, want 0", in, n)
		}
	}
}

func TestPolicyAccessors(t *testing.T) {
	data := []byte("version = 1\n\n[[rule]]\n" + allowWeb + "\n")
	p, err := Parse("p.toml", data)
	if err != nil {
		t.Fatal(err)
	}
	if p.Rules() != 1 {
		t.Errorf("Rules() = %d, want 1", p.Rules())
	}
	// sha256sum of the bytes above.
	if got := p.SHA256(); len(got) != 64 || strings.Trim(got, "0123456789abcdef") != "" {
		t.Errorf("SHA256() = %q, want 64 hex digits", got)
	}
	q, _ := Parse("q.toml", append(data, '\n'))
	if p.SHA256() == q.SHA256() {
		t.Error("SHA256() is the same for different bytes")
	}
}

func TestExplain(t *testing.T) {
	p := policyOf(t, allowWeb, `id = "orders-grpc"
effect = "allow"
callers = ["spiffe://example.org/api"]
grpc = ["/shop.Orders/*"]
hosts = ["orders.internal"]`, `id = "reads"
effect = "allow"
callers = ["spiffe://example.org/api"]
methods = ["GET", "HEAD"]
paths = ["/orders/**"]`, denyAdmin, dryDenyWeb)
	in := Input{Caller: "spiffe://example.org/web", Host: "users.internal", Method: "POST", Path: "/admin/users"}
	e := p.Explain(in)
	want := `request:  HTTP POST /admin/users host "users.internal" caller spiffe://example.org/web
decision: deny by rule "deny-admin" (denied by rule)
dry-run:  rule "dry-deny-web" would_deny
rules:
    allow-web     allow  enforce  match
    orders-grpc   allow  enforce  no match: request is not a gRPC call; host "users.internal" not in [orders.internal]; caller "spiffe://example.org/web" not in [spiffe://example.org/api]; gRPC method "/admin/users" not in [/shop.Orders/*]
    reads         allow  enforce  no match: method "POST" not in [GET, HEAD]; caller "spiffe://example.org/web" not in [spiffe://example.org/api]; path "/admin/users" not in [/orders/**]
  * deny-admin    deny   enforce  match
    dry-deny-web  deny   dry-run  match
`
	if got := e.String(); got != want {
		t.Errorf("Explain report:\n%s\nwant:\n%s", got, want)
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"result":"deny"`, `"rule":"deny-admin"`, `"field":"methods"`,
		`"dry_run":[{"rule":"dry-deny-web","result":"deny"}]`, `"deciding":true`} {
		if !strings.Contains(string(b), s) {
			t.Errorf("JSON lacks %s:\n%s", s, b)
		}
	}

	unauth := p.Explain(Input{Method: "GET", Path: "/"}).String()
	for _, s := range []string{"caller (unauthenticated)", "decision: deny (no rule matched)", "request is unauthenticated"} {
		if !strings.Contains(unauth, s) {
			t.Errorf("report for an unauthenticated request lacks %q:\n%s", s, unauth)
		}
	}
	empty := policyOf(t).Explain(Input{Method: "GET", Path: "/"}).String()
	if !strings.Contains(empty, "none (the policy denies every request)") {
		t.Errorf("report for an empty policy:\n%s", empty)
	}
}

func TestResultText(t *testing.T) {
	for _, r := range []Result{Allow, Deny} {
		b, _ := r.MarshalText()
		var back Result
		if err := back.UnmarshalText(b); err != nil || back != r {
			t.Errorf("round trip of %v: %v, %v", r, back, err)
		}
	}
	var r Result
	if err := r.UnmarshalText([]byte("maybe")); err == nil || !strings.HasPrefix(err.Error(), "policy: ") {
		t.Errorf("UnmarshalText(maybe) = %v", err)
	}
	if (DryRunOutcome{Result: Allow}).Outcome() != "would_allow" || (DryRunOutcome{}).Outcome() != "would_deny" {
		t.Error("Outcome")
	}
}

// TestDecideAgreesWithExplain cross-checks Decide's indexed evaluation
// against Explain's rule-by-rule one on the benchmark policy.
func TestDecideAgreesWithExplain(t *testing.T) {
	p, err := Parse("bench.toml", []byte(hundredRules()))
	if err != nil {
		t.Fatal(err)
	}
	callers := []string{"", "spiffe://example.org", "spiffe://example.org/", "spiffe://evil.org/ns/shop/sa/svc00",
		"spiffe://partner.example.com/x", "spiffe://example.org/ns/ops/sa/probe90"}
	for _, ns := range []string{"shop", "billing", "identity", "search", "ops", "legacy"} {
		for _, svc := range []string{"svc00", "svc01", "svc02", "svc03", "svc07", "svc19", "svc02-writer", "admin", "other"} {
			callers = append(callers, "spiffe://example.org/ns/"+ns+"/sa/"+svc)
		}
	}
	paths := []string{"/", "/api/svc00", "/api/svc00/x", "/api/svc01/1/items", "/admin/svc03/x", "/public/svc01/a",
		"/internal/svc03/1/status", "/healthz", "/shop.v1.svc00/Get", "/grpc.health.v1.Health/Check"}
	hosts := []string{"", "svc01.internal", "a.svc01.example.com", "api.example.com"}
	methods := []string{"GET", "POST", "DELETE", "PUT", "PROPFIND"}
	n, k := 0, 0
	for _, c := range callers {
		for _, path := range paths {
			for _, h := range hosts {
				for _, m := range methods {
					for _, g := range []bool{false, true} {
						in := Input{Caller: c, Host: h, Method: m, Path: path, GRPC: g}
						d := p.Decide(in)
						if want := linearDecide(p, in); !reflect.DeepEqual(d, want) {
							t.Fatalf("Decide(%+v) = %+v, rule by rule %+v\n%s", in, d, want, p.Explain(in))
						}
						if k++; k%13 == 0 {
							if e := p.Explain(in); !reflect.DeepEqual(d, e.Decision) {
								t.Fatalf("Decide(%+v) = %+v, Explain says %+v\n%s", in, d, e.Decision, e)
							}
						}
						if d.Result == Allow {
							n++
						}
					}
				}
			}
		}
	}
	if n == 0 {
		t.Error("no input was allowed; the cross-check is vacuous")
	}
}

// linearDecide is the evaluation order written out rule by rule.
func linearDecide(p *Policy, in Input) Decision {
	q := newQuery(&in)
	allow, deny := -1, -1
	var dry []DryRunOutcome
	for i := range p.rules {
		r := &p.rules[i]
		if !matchGlobs(r.callers, in.Caller) || !r.matchRest(&q) {
			continue
		}
		switch {
		case r.dryRun:
			dry = append(dry, DryRunOutcome{Rule: r.id, Result: r.effect})
		case r.effect == Deny && deny < 0:
			deny = i
		case r.effect == Allow && allow < 0:
			allow = i
		}
	}
	return p.decision(allow, deny, dry)
}
