package proxy

import (
	"net/http"

	"github.com/svidgate/svidgate/internal/audit"
	"github.com/svidgate/svidgate/policy"
)

// decide asks the listener's policy (the snapshot in force now) about the
// caller and the request: deny by default, 403 with the reason. Dry-run
// rules that matched are recorded, never enforced. An allow hands the
// deciding rule's [rule.jwt] and [rule.rate] to the stages after it.
func (h *handler) decide(x *exchange) *refusal {
	p := h.policy.Policy()
	x.rec.PolicySHA256 = p.SHA256()
	d := p.Decide(policy.Input{Caller: x.caller, Host: x.rec.Request.Host, Method: x.r.Method, Path: x.path, GRPC: x.grpc})
	x.rec.Decision = audit.Decision{Result: d.Result.String(), Rule: d.Rule, Reason: d.Reason}
	for _, o := range d.DryRun {
		x.rec.Decision.DryRun = append(x.rec.Decision.DryRun, audit.DryRun{Rule: o.Rule, Result: o.Outcome()})
	}
	h.deps.Metrics.AuthzDecisions.WithLabelValues(h.name, d.Rule, x.rec.Decision.Result).Inc()
	if d.Result != policy.Allow {
		return deny(http.StatusForbidden, d.Reason, "forbidden: "+d.Reason)
	}
	x.rule, x.jwtReq, x.rate = d.Rule, d.JWT, d.Rate
	return nil
}

// decideOutbound allows every request of the local app: an outbound
// listener takes no policy. The authorization is the upstream's SPIFFE ID,
// checked in the handshake; the upstream's own inbound listener decides
// about us.
func (h *handler) decideOutbound(x *exchange) *refusal {
	x.rec.Decision = audit.Decision{Result: audit.ResultAllow, Reason: "outbound: authorized by the upstream's SPIFFE ID"}
	x.rec.Upstream.SPIFFEID = h.upstreamID
	return nil
}
