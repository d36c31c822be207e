package normalize

import (
	"errors"
	"net/netip"
	"strings"
)

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

// ErrHost is returned by CheckHost for a Host or :authority that is not an
// RFC 3986 host (reg-name, IPv4 or bracketed IPv6 literal) with an optional
// numeric port.
var ErrHost = errors.New("normalize: host must be a DNS name, an IPv4 address or a bracketed IPv6 address, with an optional numeric port")

// CheckHost accepts what a Host header or :authority may be, and nothing
// a backend could read differently: letters, digits, '-', '.' and '_' in a
// name or IPv4 address, or an IPv6 literal in brackets, then optionally ':'
// and a port of 1 to 5 digits. Commas (several hosts), spaces,
// percent-escapes, a second port ("a:80:80"), user info and bare IPv6
// addresses are refused. The empty host is accepted (HTTP/1.0; HTTP/1.1
// requires Host and net/http enforces it).
func CheckHost(h string) error {
	host, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return ErrHost
		}
		if ip, err := netip.ParseAddr(h[1:end]); err != nil || !ip.Is6() || ip.Zone() != "" {
			return ErrHost
		}
		host, port = "", h[end+1:]
		if port != "" && port[0] != ':' {
			return ErrHost
		}
	} else if i := strings.IndexByte(h, ':'); i >= 0 {
		host, port = h[:i], h[i:]
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return ErrHost
		}
	}
	if port == "" {
		return nil
	}
	digits := port[1:]
	if len(digits) == 0 || len(digits) > 5 {
		return ErrHost
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return ErrHost
		}
	}
	return nil
}
