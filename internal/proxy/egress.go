package proxy

import (
	"net/http"

	"github.com/svidgate/svidgate/internal/audit"
)

// egress attaches a JWT-SVID for the upstream's audience on an outbound
// listener that asks for one (jwt_audience); 503 when none can be had.
func (h *handler) egress(x *exchange) *refusal {
	if h.jwtAudience == "" {
		return nil
	}
	unavailable := func(reason string) *refusal {
		return &refusal{status: http.StatusServiceUnavailable, result: audit.ResultError, reason: reason,
			msg: "service unavailable: no JWT-SVID for the upstream"}
	}
	if h.deps.Tokens == nil {
		return unavailable("no JWT-SVID source")
	}
	tok, err := h.deps.Tokens.Get(x.r.Context(), h.jwtAudience)
	if err != nil {
		return unavailable("egress JWT-SVID: " + err.Error())
	}
	x.r.Header.Set("Authorization", "Bearer "+tok)
	return nil
}
