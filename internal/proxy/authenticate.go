package proxy

import (
	"crypto/x509"
	"net/http"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/svidgate/svidgate/internal/audit"
	"github.com/svidgate/svidgate/internal/identity"
	"github.com/svidgate/svidgate/internal/jwtauth"
)

// notePeer records the verified mTLS peer in the audit record when the
// exchange starts, so that a request refused before authenticate (a bad
// path) still names its caller. authenticate decides whether the peer may
// be the caller.
func notePeer(x *exchange) {
	tls := x.r.TLS
	if tls == nil || len(tls.PeerCertificates) == 0 {
		return
	}
	leaf := tls.PeerCertificates[0]
	x.rec.Source.CertSerial = leaf.SerialNumber.Text(16)
	x.rec.Source.CertNotAfter = leaf.NotAfter.UTC()
	if id, err := identity.PeerID(tls.PeerCertificates); err == nil {
		x.peer = id.String()
		x.rec.Source.SPIFFEID = x.peer
		x.rec.Source.TrustDomain = id.TrustDomain().Name()
	}
}

// authenticatePeer makes the verified mTLS peer the caller (inbound). The
// handshake verified the chain; a connection can outlive the SVID it was
// verified with, and then each request on it is refused.
func (h *handler) authenticatePeer(x *exchange) *refusal {
	if x.peer == "" {
		return deny(http.StatusUnauthorized, "no verified client X509-SVID", "unauthenticated: a client X509-SVID is required")
	}
	leaf := x.r.TLS.PeerCertificates[0]
	switch freshness(leaf, x.start) {
	case expired:
		x.rw.Header().Set("Connection", "close")
		return deny(http.StatusUnauthorized, "client X509-SVID expired at "+
			leaf.NotAfter.UTC().Format(time.RFC3339)+"; the connection outlived it",
			"unauthenticated: client certificate expired; reconnect with a current SVID")
	case aging:
		// Past three quarters of its life the peer holds a newer SVID
		// (SPIRE rotates at half-life): ask it to reconnect with that
		// one. On HTTP/2 this sends GOAWAY once in-flight streams end.
		x.rw.Header().Set("Connection", "close")
	}
	// The caller only once its certificate is current: an expired one is
	// refused without counting towards abuse blocking.
	x.caller = x.peer
	return nil
}

// authenticateToken makes the subject of the request's JWT-SVID the caller
// (edge): the token must carry the listener's audience.
func (h *handler) authenticateToken(x *exchange) *refusal {
	if r := h.validateToken(x, h.jwtAudience); r != nil {
		return r
	}
	x.caller = x.claims.Subject
	x.rec.Source.SPIFFEID = x.caller
	if id, err := spiffeid.FromString(x.caller); err == nil {
		x.rec.Source.TrustDomain = id.TrustDomain().Name()
	}
	return nil
}

// validateToken reads and validates the request's JWT-SVID; audience, when
// set, must be one of its audiences. A failure is 401 with a Bearer
// challenge. The token is consumed: it is not forwarded unless a rule says.
func (h *handler) validateToken(x *exchange, audience string) *refusal {
	x.keepAuthorization = false
	if h.deps.JWT == nil {
		return invalidToken(x, "no JWT bundles available")
	}
	tok, err := h.deps.JWT.TokenFromHeader(x.r.Header)
	if err != nil {
		return invalidToken(x, jwtauth.Reason(err))
	}
	claims, err := h.deps.JWT.Validate(tok)
	if err != nil {
		return invalidToken(x, jwtauth.Reason(err))
	}
	x.claims = claims
	x.rec.JWT = audit.JWT{Sub: claims.Subject, Aud: claims.Audience, JTI: claims.ID, Exp: claims.Expiry.UTC(),
		TokenSHA256Prefix: jwtauth.ShortHash(claims)}
	if audience != "" && !claims.HasAudience(audience) {
		return invalidToken(x, "audience: token is not for "+audience)
	}
	return nil
}

func invalidToken(x *exchange, reason string) *refusal {
	x.rw.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	return deny(http.StatusUnauthorized, "jwt: "+reason, "unauthenticated: a valid JWT-SVID is required ("+reason+")")
}

type validity uint8

const (
	fresh validity = iota
	aging
	expired
)

// freshness tells how far into its lifetime a peer certificate is at now.
func freshness(leaf *x509.Certificate, now time.Time) validity {
	if now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return expired
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	if now.After(leaf.NotBefore.Add(life / 4 * 3)) {
		return aging
	}
	return fresh
}
