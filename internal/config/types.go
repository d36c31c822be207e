package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Duration is a time.Duration written as "30s", "5m".
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil || v <= 0 {
		return fmt.Errorf("expected a positive duration such as \"500ms\", \"30s\" or \"5m\", got %q", b)
	}
	d.Duration = v
	return nil
}

// SPIFFEID is a workload SPIFFE ID: it must have a path.
type SPIFFEID struct{ spiffeid.ID }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *SPIFFEID) UnmarshalText(b []byte) error {
	id, err := spiffeid.FromString(string(b))
	if err != nil {
		return fmt.Errorf("expected a SPIFFE ID such as \"spiffe://example.org/orders\", got %q: %v", b, err)
	}
	if id.Path() == "" {
		return fmt.Errorf("expected a workload SPIFFE ID with a path, got %q (a trust domain alone names no workload)", b)
	}
	s.ID = id
	return nil
}

// TrustDomain is a SPIFFE trust domain name such as "example.org".
type TrustDomain struct{ spiffeid.TrustDomain }

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *TrustDomain) UnmarshalText(b []byte) error {
	td, err := spiffeid.TrustDomainFromString(string(b))
	if err != nil || strings.Contains(string(b), "/") {
		return fmt.Errorf("expected a trust domain name such as \"example.org\", got %q", b)
	}
	t.TrustDomain = td
	return nil
}

// Upstream is where a listener forwards: http://host:port (plain, inbound),
// https://host:port (mTLS, outbound) or unix:///path.sock (plain, inbound).
type Upstream struct {
	Scheme string // http, https or unix
	Addr   string // host:port, or the socket path
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (u *Upstream) UnmarshalText(b []byte) error {
	const want = "expected http://host:port, https://host:port or unix:///path/to.sock"
	parsed, err := url.Parse(string(b))
	if err != nil {
		return fmt.Errorf("%s, got %q", want, b)
	}
	switch parsed.Scheme {
	case "http", "https":
		if !validPort(parsed.Port()) || parsed.Port() == "0" || parsed.Hostname() == "" || (parsed.Path != "" && parsed.Path != "/") || parsed.RawQuery != "" || parsed.User != nil {
			return fmt.Errorf("%s (host and port, nothing else), got %q", want, b)
		}
		u.Scheme, u.Addr = parsed.Scheme, parsed.Host
	case "unix":
		if parsed.Host != "" || parsed.Path == "" {
			return fmt.Errorf("%s (three slashes before an absolute path), got %q", want, b)
		}
		u.Scheme, u.Addr = "unix", parsed.Path
	default:
		return fmt.Errorf("%s, got %q", want, b)
	}
	return nil
}

// String returns the upstream in its configured form.
func (u Upstream) String() string {
	if u.Scheme == "unix" {
		return "unix://" + u.Addr
	}
	return u.Scheme + "://" + u.Addr
}

// Mode is what a listener does.
type Mode string

// Listener modes.
const (
	Inbound  Mode = "inbound"
	Outbound Mode = "outbound"
	Edge     Mode = "edge"
)

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *Mode) UnmarshalText(b []byte) error {
	switch Mode(b) {
	case Inbound, Outbound, Edge:
		*m = Mode(b)
		return nil
	}
	return fmt.Errorf("expected mode \"inbound\", \"outbound\" or \"edge\", got %q", b)
}

// OnFailure is what happens to requests when the audit trail cannot keep
// a record.
type OnFailure string

// Audit failure policies.
const (
	Block OnFailure = "block" // refuse with 503: nothing is served unaudited
	Drop  OnFailure = "drop"  // serve, and count every lost record
)

// UnmarshalText implements encoding.TextUnmarshaler.
func (o *OnFailure) UnmarshalText(b []byte) error {
	switch OnFailure(b) {
	case Block, Drop:
		*o = OnFailure(b)
		return nil
	}
	return fmt.Errorf("expected on_failure \"block\" or \"drop\", got %q", b)
}

// Backend is where rate-limit state lives.
type Backend string

// Rate-limit backends.
const (
	Local Backend = "local" // in this process
	Redis Backend = "redis" // shared by every replica through Redis
)

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *Backend) UnmarshalText(v []byte) error {
	switch Backend(v) {
	case Local, Redis:
		*b = Backend(v)
		return nil
	}
	return fmt.Errorf("expected backend \"local\" or \"redis\", got %q", v)
}
