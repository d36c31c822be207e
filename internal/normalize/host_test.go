package normalize

import "testing"

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
