package policy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/svidgate/svidgate/internal/normalize"
)

const spiffeScheme = "spiffe://"

// compileCaller validates and compiles a caller pattern: a SPIFFE ID whose
// path segments may be "*" (one segment) or, last, "**" (one or more).
func compileCaller(p string) (glob, error) {
	if !strings.HasPrefix(p, spiffeScheme) {
		return glob{}, fmt.Errorf("not a SPIFFE ID: want %q followed by a trust domain and a path", spiffeScheme)
	}
	rest := p[len(spiffeScheme):]
	slash := strings.IndexByte(rest, '/')
	td := rest
	if slash >= 0 {
		td = rest[:slash]
	}
	if strings.Contains(td, "*") {
		return glob{}, errors.New("wildcards are not allowed in the trust domain")
	}
	if td == "" {
		return glob{}, errors.New("invalid SPIFFE ID: trust domain is missing")
	}
	if _, err := spiffeid.TrustDomainFromString(td); err != nil {
		return glob{}, fmt.Errorf("invalid SPIFFE ID: %w", err)
	}
	if slash < 0 {
		return glob{}, fmt.Errorf("a trust domain ID names no workload; write %q for every workload in the trust domain", p+"/**")
	}
	segs := strings.Split(rest[slash+1:], "/")
	for i, s := range segs {
		if err := checkGlobSegment(s, i == len(segs)-1); err != nil {
			return glob{}, err
		}
		if s == "*" || s == "**" {
			continue
		}
		if err := spiffeid.ValidatePathSegment(s); err != nil {
			return glob{}, fmt.Errorf("invalid SPIFFE ID: %w", err)
		}
	}
	return compileGlob(p, len(spiffeScheme)+slash), nil
}

// checkGlobSegment checks the use of wildcards in one segment.
func checkGlobSegment(s string, last bool) error {
	switch {
	case s == "**" && !last:
		return errors.New(`"**" is allowed only as the last segment`)
	case s != "*" && s != "**" && strings.Contains(s, "*"):
		return fmt.Errorf(`wildcards must be whole segments: %q is neither "*" nor "**"`, s)
	}
	return nil
}

// checkPathPattern validates a path pattern: a normalized path whose
// segments may be "*" or, last, "**".
func checkPathPattern(p string) error {
	if !strings.HasPrefix(p, "/") {
		return errors.New(`a path pattern must start with "/"`)
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		if err := checkGlobSegment(s, i == len(segs)-1); err != nil {
			return err
		}
	}
	n, err := normalize.Path(p)
	if err != nil {
		return fmt.Errorf("invalid path: %s", strings.TrimPrefix(err.Error(), "normalize: "))
	}
	if n != p {
		return fmt.Errorf("path is not in normal form, so no request could match it; write %q", n)
	}
	return nil
}

// checkGRPCPattern validates "/package.Service/Method" where either part may
// be "*".
func checkGRPCPattern(p string) error {
	const want = `want "/package.Service/Method", "/package.Service/*" or "/*/*"`
	service, method, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	if !strings.HasPrefix(p, "/") || !ok || strings.Contains(method, "/") {
		return errors.New("a gRPC pattern has two segments; " + want)
	}
	if service == "**" || method == "**" {
		return errors.New(`"**" is not allowed in a gRPC pattern: a gRPC path always has exactly two segments; use "*"`)
	}
	if service != "*" {
		for _, part := range strings.Split(service, ".") {
			if !isIdent(part) {
				return fmt.Errorf("service %q is not a dotted name of identifiers; %s", service, want)
			}
		}
	}
	if method != "*" && !isIdent(method) {
		return fmt.Errorf("method %q is not an identifier; %s", method, want)
	}
	return nil
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// checkMethod validates an HTTP method: an upper-case token (RFC 9110).
func checkMethod(m string) error {
	for i := 0; i < len(m); i++ {
		c := m[i]
		switch {
		case 'a' <= c && c <= 'z':
			return fmt.Errorf("methods are case-sensitive and upper-case; write %q", strings.ToUpper(m))
		case 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return fmt.Errorf("not an HTTP method: %q is not allowed in a method name", c)
		}
	}
	if m == "" {
		return errors.New("not an HTTP method: empty")
	}
	return nil
}

// compileHost validates and compiles a host pattern: an exact host or
// "*." followed by a domain.
func compileHost(p string) (hostPattern, error) {
	if p == "*" {
		return hostPattern{}, errors.New(`"*" alone is not a host pattern; omit hosts to match any host`)
	}
	bracketed := strings.HasPrefix(p, "[")
	if bracketed && !strings.HasSuffix(p, "]") {
		return hostPattern{}, errors.New("hosts are matched without their port; remove the port")
	}
	if !bracketed && strings.Count(p, ":") == 1 {
		return hostPattern{}, errors.New("hosts are matched without their port; remove the port")
	}
	h := normalize.Host(p)
	if h == "" {
		return hostPattern{}, errors.New("empty host")
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' || c == ':' || c == '*') {
			return hostPattern{}, fmt.Errorf("%q is not allowed in a host", c)
		}
	}
	if !strings.Contains(h, "*") {
		return hostPattern{raw: h}, nil
	}
	suffix, ok := strings.CutPrefix(h, "*.")
	if !ok || suffix == "" || strings.Contains(suffix, "*") || strings.HasPrefix(suffix, ".") {
		return hostPattern{}, errors.New(`a wildcard host is "*." followed by a domain, for example "*.example.com"; "*" stands for exactly one label`)
	}
	return hostPattern{raw: h, wildcard: true, suffix: h[1:]}, nil
}
