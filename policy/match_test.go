package policy

import (
	"fmt"
	"strings"
	"testing"
)

// policyOf parses a policy made of the given rule bodies.
func policyOf(t testing.TB, rules ...string) *Policy {
	t.Helper()
	var b strings.Builder
	b.WriteString("version = 1\n")
	for _, r := range rules {
		b.WriteString("\n[[rule]]\n" + r + "\n")
	}
	p, err := Parse("test.toml", []byte(b.String()))
	if err != nil {
		t.Fatalf("Parse:\n%v\npolicy:\n%s", err, b.String())
	}
	return p
}

func TestCallerPatterns(t *testing.T) {
	tests := []struct {
		pattern string
		caller  string
		want    bool
	}{
		{"spiffe://example.org/web", "spiffe://example.org/web", true},
		{"spiffe://example.org/web", "spiffe://example.org/webx", false},
		{"spiffe://example.org/web", "spiffe://example.org/web/x", false},
		{"spiffe://example.org/web", "spiffe://example.org", false},
		{"spiffe://example.org/web", "spiffe://example.org.evil/web", false},
		{"spiffe://example.org/web", "spiffe://other.org/web", false},
		{"spiffe://example.org/web", "", false},
		{"spiffe://example.org/web", "spiffe://example.org/Web", false},

		{"spiffe://example.org/ns/*/sa/web", "spiffe://example.org/ns/prod/sa/web", true},
		{"spiffe://example.org/ns/*/sa/web", "spiffe://example.org/ns/prod/x/sa/web", false},
		{"spiffe://example.org/ns/*/sa/web", "spiffe://example.org/ns/sa/web", false},
		{"spiffe://example.org/ns/web/sa/*", "spiffe://example.org/ns/web/sa/api", true},
		{"spiffe://example.org/ns/web/sa/*", "spiffe://example.org/ns/web/sa", false},
		{"spiffe://example.org/ns/web/sa/*", "spiffe://example.org/ns/web/sa/api/x", false},
		{"spiffe://example.org/ns/web/sa/*", "spiffe://example.org/ns/webx/sa/api", false},
		{"spiffe://example.org/*", "spiffe://example.org/web", true},
		{"spiffe://example.org/*", "spiffe://example.org/web/x", false},
		{"spiffe://example.org/*/*", "spiffe://example.org/a/b", true},

		{"spiffe://example.org/ns/**", "spiffe://example.org/ns/a", true},
		{"spiffe://example.org/ns/**", "spiffe://example.org/ns/a/b/c", true},
		{"spiffe://example.org/ns/**", "spiffe://example.org/ns", false},
		{"spiffe://example.org/ns/**", "spiffe://example.org/nsx/a", false},
		{"spiffe://example.org/ns/*/**", "spiffe://example.org/ns/a/b", true},
		{"spiffe://example.org/ns/*/**", "spiffe://example.org/ns/a", false},

		{"spiffe://example.org/**", "spiffe://example.org/a", true},
		{"spiffe://example.org/**", "spiffe://example.org/a/b", true},
		{"spiffe://example.org/**", "spiffe://example.org", false},
		{"spiffe://example.org/**", "spiffe://example.org.evil/a", false},
		{"spiffe://example.org/**", "spiffe://evil.example.org/a", false},
		{"spiffe://example.org/**", "spiffe://example.orgx/a", false},
		{"spiffe://example.org/**", "spiffe://example.org:443/a", false},
		{"spiffe://example.org/**", "spiffe:/example.org/a", false},
		{"spiffe://example.org/**", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.caller, func(t *testing.T) {
			g, err := compileCaller(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := g.match(tt.caller); got != tt.want {
				t.Fatalf("%q matches %q = %v, want %v", tt.pattern, tt.caller, got, tt.want)
			}
		})
	}
}

func TestPathPatterns(t *testing.T) {
	tests := []struct {
		pattern string
		path    string
		want    bool
	}{
		{"/orders", "/orders", true},
		{"/orders", "/orders/", false},
		{"/orders", "/ordersx", false},
		{"/orders", "/orders/1", false},
		{"/orders/", "/orders/", true},
		{"/orders/", "/orders", false},
		{"/", "/", true},
		{"/", "/a", false},

		{"/orders/*", "/orders/1", true},
		{"/orders/*", "/orders/", false},
		{"/orders/*", "/orders", false},
		{"/orders/*", "/orders/1/items", false},
		{"/orders/*", "/orders/1/", false},
		{"/orders/*/items", "/orders/1/items", true},
		{"/orders/*/items", "/orders/1/items/", false},
		{"/orders/*/items", "/orders/1/2/items", false},
		{"/orders/*/items", "/orders//items", false},
		{"/*", "/a", true},
		{"/*", "/", false},
		{"/*/", "/a/", true},

		{"/orders/**", "/orders/1", true},
		{"/orders/**", "/orders/1/items/2", true},
		{"/orders/**", "/orders/", true},
		{"/orders/**", "/orders", false},
		{"/orders/**", "/ordersx/1", false},
		{"/orders/**", "/order", false},
		{"/orders/*/**", "/orders/1/x", true},
		{"/orders/*/**", "/orders/1", false},
		{"/**", "/", true},
		{"/**", "/a", true},
		{"/**", "/a/b/", true},

		{"/a%20b", "/a%20b", true},
		{"/a%20b", "/a b", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.path, func(t *testing.T) {
			if err := checkPathPattern(tt.pattern); err != nil {
				t.Fatal(err)
			}
			g := compileGlob(tt.pattern, 0)
			if got := g.match(tt.path); got != tt.want {
				t.Fatalf("%q matches %q = %v, want %v", tt.pattern, tt.path, got, tt.want)
			}
		})
	}
}

func TestGRPCPatterns(t *testing.T) {
	tests := []struct {
		pattern string
		path    string
		want    bool
	}{
		{"/pkg.Service/Method", "/pkg.Service/Method", true},
		{"/pkg.Service/Method", "/pkg.Service/MethodX", false},
		{"/pkg.Service/Method", "/pkg.ServiceX/Method", false},
		{"/pkg.Service/*", "/pkg.Service/Get", true},
		{"/pkg.Service/*", "/pkg.Service/", false},
		{"/pkg.Service/*", "/pkg.Service", false},
		{"/pkg.Service/*", "/pkg.Service/Get/x", false},
		{"/pkg.Service/*", "/pkg.Other/Get", false},
		{"/*/Check", "/grpc.health.v1.Health/Check", true},
		{"/*/*", "/a.B/C", true},
		{"/*/*", "/a.B", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.path, func(t *testing.T) {
			if err := checkGRPCPattern(tt.pattern); err != nil {
				t.Fatal(err)
			}
			g := compileGlob(tt.pattern, 0)
			if got := g.match(tt.path); got != tt.want {
				t.Fatalf("%q matches %q = %v, want %v", tt.pattern, tt.path, got, tt.want)
			}
		})
	}
}

func TestHostPatterns(t *testing.T) {
	tests := []struct {
		pattern string
		host    string
		want    bool
	}{
		{"orders.internal", "orders.internal", true},
		{"orders.internal", "orders.internalx", false},
		{"orders.internal", "x.orders.internal", false},
		{"Orders.Internal.", "orders.internal", true},
		{"*.example.com", "api.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", ".example.com", false},
		{"*.example.com", "a.b.example.com", false},
		{"*.example.com", "apiexample.com", false},
		{"*.example.com", "api.example.com.evil", false},
		{"[::1]", "::1", true},
		{"10.0.0.1", "10.0.0.1", true},
		{"orders.internal", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.host, func(t *testing.T) {
			h, err := compileHost(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := h.match(tt.host); got != tt.want {
				t.Fatalf("%q matches %q = %v, want %v", tt.pattern, tt.host, got, tt.want)
			}
		})
	}
}

func TestRuleMatching(t *testing.T) {
	const web = "spiffe://example.org/web"
	tests := []struct {
		name string
		rule string
		in   Input
		want bool
	}{
		{"caller only", `callers = ["spiffe://example.org/web"]`,
			Input{Caller: web, Method: "DELETE", Path: "/x"}, true},
		{"caller only, gRPC request", `callers = ["spiffe://example.org/web"]`,
			Input{Caller: web, Method: "POST", Path: "/a.B/C", GRPC: true}, true},
		{"unauthenticated", `callers = ["spiffe://example.org/**"]`,
			Input{Method: "GET", Path: "/"}, false},
		{"method in set", `callers = ["spiffe://example.org/web"]` + "\n" + `methods = ["GET", "HEAD"]`,
			Input{Caller: web, Method: "HEAD", Path: "/"}, true},
		{"method not in set", `callers = ["spiffe://example.org/web"]` + "\n" + `methods = ["GET", "HEAD"]`,
			Input{Caller: web, Method: "POST", Path: "/"}, false},
		{"method case-sensitive", `callers = ["spiffe://example.org/web"]` + "\n" + `methods = ["GET"]`,
			Input{Caller: web, Method: "get", Path: "/"}, false},
		{"extension method", `callers = ["spiffe://example.org/web"]` + "\n" + `methods = ["PROPFIND"]`,
			Input{Caller: web, Method: "PROPFIND", Path: "/"}, true},
		{"extension method not in set", `callers = ["spiffe://example.org/web"]` + "\n" + `methods = ["PROPFIND"]`,
			Input{Caller: web, Method: "MKCOL", Path: "/"}, false},
		{"standard method with only extension set", `callers = ["spiffe://example.org/web"]` + "\n" + `methods = ["PROPFIND"]`,
			Input{Caller: web, Method: "GET", Path: "/"}, false},
		{"host", `callers = ["spiffe://example.org/web"]` + "\n" + `hosts = ["orders.internal"]`,
			Input{Caller: web, Host: "orders.internal", Method: "GET", Path: "/"}, true},
		{"host mismatch", `callers = ["spiffe://example.org/web"]` + "\n" + `hosts = ["orders.internal"]`,
			Input{Caller: web, Host: "users.internal", Method: "GET", Path: "/"}, false},
		{"path", `callers = ["spiffe://example.org/web"]` + "\n" + `paths = ["/orders/**"]`,
			Input{Caller: web, Method: "GET", Path: "/orders/1"}, true},
		{"path mismatch", `callers = ["spiffe://example.org/web"]` + "\n" + `paths = ["/orders/**"]`,
			Input{Caller: web, Method: "GET", Path: "/orders"}, false},
		{"grpc rule, gRPC request", `callers = ["spiffe://example.org/web"]` + "\n" + `grpc = ["/pkg.Orders/*"]`,
			Input{Caller: web, Method: "POST", Path: "/pkg.Orders/Get", GRPC: true}, true},
		{"grpc rule, HTTP request with the same path", `callers = ["spiffe://example.org/web"]` + "\n" + `grpc = ["/pkg.Orders/*"]`,
			Input{Caller: web, Method: "POST", Path: "/pkg.Orders/Get"}, false},
		{"grpc rule, other method", `callers = ["spiffe://example.org/web"]` + "\n" + `grpc = ["/pkg.Orders/*"]`,
			Input{Caller: web, Method: "POST", Path: "/pkg.Users/Get", GRPC: true}, false},
		{"grpc rule with host", `callers = ["spiffe://example.org/web"]` + "\n" + `grpc = ["/pkg.Orders/*"]` + "\n" + `hosts = ["orders"]`,
			Input{Caller: web, Host: "users", Method: "POST", Path: "/pkg.Orders/Get", GRPC: true}, false},
		{"any of several callers", `callers = ["spiffe://example.org/api", "spiffe://example.org/web"]`,
			Input{Caller: web, Method: "GET", Path: "/"}, true},
		{"every condition", `callers = ["spiffe://example.org/*"]` + "\n" + `methods = ["GET"]` + "\n" + `hosts = ["*.internal"]` + "\n" + `paths = ["/a/*"]`,
			Input{Caller: web, Host: "orders.internal", Method: "GET", Path: "/a/b"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policyOf(t, fmt.Sprintf("id = \"r\"\neffect = \"allow\"\n%s", tt.rule))
			d := p.Decide(tt.in)
			if got := d.Result == Allow; got != tt.want {
				t.Fatalf("Decide(%+v) = %+v, want match %v\n%s", tt.in, d, tt.want, p.Explain(tt.in))
			}
		})
	}
}
