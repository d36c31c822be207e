package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
)

// AuthorizeMembers accepts a peer whose SPIFFE ID has a path and belongs to
// one of the trust domains. An ID without a path names a trust domain, not
// a workload, and is never a valid X509-SVID.
func AuthorizeMembers(tds []spiffeid.TrustDomain) tlsconfig.Authorizer {
	return func(id spiffeid.ID, _ [][]*x509.Certificate) error {
		if id.Path() == "" {
			return fmt.Errorf("identity: peer SPIFFE ID %q has no path", id)
		}
		for _, td := range tds {
			if id.MemberOf(td) {
				return nil
			}
		}
		return fmt.Errorf("identity: peer trust domain %q is not accepted by this listener", id.TrustDomain())
	}
}

// AuthorizeExact accepts exactly one SPIFFE ID, which must have a path.
func AuthorizeExact(want spiffeid.ID) tlsconfig.Authorizer {
	return func(id spiffeid.ID, _ [][]*x509.Certificate) error {
		if id.Path() == "" {
			return fmt.Errorf("identity: peer SPIFFE ID %q has no path", id)
		}
		if id != want {
			return fmt.Errorf("identity: upstream presented SPIFFE ID %q, want %q", id, want)
		}
		return nil
	}
}

// ServerConfig returns the TLS configuration of a mesh listener: our SVID,
// a client SVID required and verified against the current bundles, TLS 1.3,
// HTTP/2 and HTTP/1.1 by ALPN, no session tickets. onVerified, if not nil,
// is called once per connection that passed verification.
func (s *Source) ServerConfig(auth tlsconfig.Authorizer, onVerified func()) *tls.Config {
	cfg := tlsconfig.MTLSServerConfig(s, s, auth)
	cfg.MinVersion = tls.VersionTLS13
	cfg.SessionTicketsDisabled = true
	cfg.NextProtos = []string{"h2", "http/1.1"}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		// Without tickets there is no resumption; refuse one anyway so that
		// a future change cannot skip peer verification silently.
		if cs.DidResume {
			return errors.New("identity: TLS session resumption is not allowed")
		}
		if onVerified != nil {
			onVerified()
		}
		return nil
	}
	return cfg
}

// ClientConfig returns the TLS configuration for connections to an upstream
// that must present the SPIFFE ID want.
func (s *Source) ClientConfig(want spiffeid.ID) *tls.Config {
	cfg := tlsconfig.MTLSClientConfig(s, s, AuthorizeExact(want))
	cfg.MinVersion = tls.VersionTLS13
	cfg.NextProtos = []string{"h2", "http/1.1"}
	return cfg
}
