package proxy

import (
	"net/http"
	"time"

	"github.com/svidgate/svidgate/internal/audit"
)

// ownIdentity refuses every request while our own X509-SVID is past its
// NotAfter (the agent is down, or our registration entry was deleted):
// 503, and the connection is closed after the answer (HTTP/2: GOAWAY), so
// no connection opened before expiry keeps being served on it. New
// handshakes fail in identity.Source. As soon as a fresh SVID arrives,
// requests pass again, without a restart. An edge listener that presents
// no SVID anywhere (its own certificate, a plain upstream) is not stopped
// by an agent outage.
func (h *handler) ownIdentity(x *exchange) *refusal {
	if !h.usesSVID || !h.deps.Identity.Expired(x.start) {
		return nil
	}
	x.rw.Header().Set("Connection", "close")
	return &refusal{status: http.StatusServiceUnavailable, result: audit.ResultError,
		reason: "our X509-SVID expired at " + h.deps.Identity.Snapshot().NotAfter.UTC().Format(time.RFC3339) +
			" and no fresh one has arrived",
		msg: "service unavailable: the gateway's identity has expired"}
}
