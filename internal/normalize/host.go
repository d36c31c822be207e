package normalize

import "strings"

// Host returns the canonical form of a Host header value or URL authority
// host: ASCII lower case, without a port, without the brackets of an IPv6
// literal (as [net/url.URL.Hostname] does) and without trailing dots.
//
//	"Orders.Example.COM:8443" → "orders.example.com"
//	"[::1]:443", "[::1]"      → "::1"
//	"example.com."            → "example.com"
//
// A value with more than one colon and no brackets is taken to be a bare IPv6
// address and keeps its colons. Host does not validate h; it returns h itself
// without allocating when h is already canonical.
func Host(h string) string {
	if len(h) > 0 && h[0] == '[' {
		if end := strings.IndexByte(h, ']'); end > 0 {
			h = h[1:end]
		}
	} else if i := strings.IndexByte(h, ':'); i >= 0 && strings.IndexByte(h[i+1:], ':') < 0 {
		h = h[:i]
	}
	for len(h) > 0 && h[len(h)-1] == '.' {
		h = h[:len(h)-1]
	}
	return strings.ToLower(h)
}
