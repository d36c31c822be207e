package normalize

import (
	"strings"
	"testing"
)

func TestHost(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"canonical", "orders.internal", "orders.internal"},
		{"empty", "", ""},
		{"upper case", "Orders.Example.COM", "orders.example.com"},
		{"port", "orders.internal:8443", "orders.internal"},
		{"upper case and port", "API.Example.com:443", "api.example.com"},
		{"trailing dot", "example.com.", "example.com"},
		{"trailing dot and port", "example.com.:443", "example.com"},
		{"trailing dots", "example.com..", "example.com"},
		{"empty port", "example.com:", "example.com"},
		{"ipv4", "10.0.0.1", "10.0.0.1"},
		{"ipv4 port", "10.0.0.1:80", "10.0.0.1"},
		{"bracketed ipv6", "[::1]", "::1"},
		{"bracketed ipv6 port", "[::1]:8080", "::1"},
		{"bracketed ipv6 upper", "[FE80::1]:443", "fe80::1"},
		{"bare ipv6", "fe80::1", "fe80::1"},
		{"unclosed bracket left alone", "[::1", "[::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Host(tt.in); got != tt.want {
				t.Fatalf("Host(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if again := Host(tt.want); again != tt.want {
				t.Fatalf("Host(%q) = %q; not idempotent", tt.want, again)
			}
		})
	}
}

func TestHostCanonicalDoesNotAllocate(t *testing.T) {
	for _, h := range []string{"orders.internal", "orders.internal:8443", "[::1]:443", "example.com."} {
		if n := testing.AllocsPerRun(100, func() { _ = Host(h) }); n != 0 {
			t.Errorf("Host(%q) allocates %v times, want 0", h, n)
		}
	}
}

func BenchmarkHost(b *testing.B) {
	for _, bm := range []struct{ name, in string }{
		{"canonical", "orders.internal"},
		{"port", "orders.internal:8443"},
		{"upper", "Orders.Internal:8443"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = Host(bm.in)
			}
		})
	}
}

func TestCheckHost(t *testing.T) {
	for _, h := range []string{"", "orders.internal", "Orders.Example.COM:8443", "example.com.", "10.0.0.1:80",
		"[::1]", "[::1]:8443", "[fe80::1]:443", "svc_name.local", "localhost:0"} {
		if err := CheckHost(h); err != nil {
			t.Errorf("CheckHost(%q) = %v, want ok", h, err)
		}
	}
	for _, h := range []string{"a:80:80", "a.com,b.com", "a com", "a%2ecom", "user@a.com", "fe80::1", "[::1", "[::1]x",
		"[10.0.0.1]", "[fe80::1%eth0]", "[::1]:", "a.com:", "a.com:123456", "a.com:8o", "a.com\t", "a/b", "a\\b", "[::1]:80:80", "a;b"} {
		if err := CheckHost(h); err == nil {
			t.Errorf("CheckHost(%q) = nil, want an error", h)
		}
	}
}

// A host CheckHost accepts is one Host normalizes without surprises: no
// character outside the allowed set, at most one port.
func FuzzCheckHost(f *testing.F) {
	for _, s := range []string{"a.com:80", "[::1]:1", "a:80:80", "a,b", "%41", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if CheckHost(h) != nil {
			return
		}
		if strings.ContainsAny(h, ",%@ /\\\t\r\n;") {
			t.Fatalf("CheckHost accepted %q", h)
		}
		if !strings.HasPrefix(h, "[") && strings.Count(h, ":") > 1 {
			t.Fatalf("CheckHost accepted %q with more than one colon outside brackets", h)
		}
	})
}
