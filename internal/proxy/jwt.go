package proxy

import "net/http"

// ruleJWT applies the deciding rule's [rule.jwt]: the request must carry a
// valid JWT-SVID (validated here unless the edge already did) whose
// audience, subject and claims the rule accepts; else 401.
func (h *handler) ruleJWT(x *exchange) *refusal {
	req := x.jwtReq
	if req == nil {
		return nil
	}
	if x.claims == nil {
		if r := h.validateToken(x, ""); r != nil {
			return r
		}
	}
	if reason := req.Check(x.peer, x.claims.Subject, x.claims.Audience, x.claims.Raw); reason != "" {
		x.rw.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		return deny(http.StatusUnauthorized, reason+" (rule "+x.rule+")", "unauthenticated: "+reason)
	}
	x.keepAuthorization = req.Forward
	return nil
}
