package proxy

import "github.com/svidgate/svidgate/internal/config"

// stage is one step of the request pipeline. It returns nil to hand the
// request to the next stage, or the refusal that ends it: the refusal is
// answered in the caller's protocol (respond) and audited (finish). A stage
// may set response headers (Retry-After, WWW-Authenticate, RateLimit) that
// go out with either outcome. The last stage, forward, never refuses: what
// the upstream answers, or why it could not, is the response.
type stage struct {
	name string
	run  func(*handler, *exchange) *refusal
}

// Every stage, by the name docs/ARCHITECTURE.md uses for it. Each lives in
// the file of the same name.
var (
	ownIdentity       = stage{"identity", (*handler).ownIdentity}
	sanitize          = stage{"sanitize", (*handler).sanitize}
	authenticatePeer  = stage{"authenticate", (*handler).authenticatePeer}
	authenticateToken = stage{"authenticate", (*handler).authenticateToken}
	block             = stage{"block", (*handler).block}
	decide            = stage{"decide", (*handler).decide}
	decideOutbound    = stage{"decide", (*handler).decideOutbound}
	ruleJWT           = stage{"jwt", (*handler).ruleJWT}
	throttle          = stage{"throttle", (*handler).throttle}
	admit             = stage{"admit", (*handler).admit}
	egress            = stage{"egress", (*handler).egress}
	forward           = stage{"forward", (*handler).forward}
)

// pipelines is the order of the stages for each listener mode. The audit
// finisher (finish) runs after the last stage that ran, whatever its
// outcome. Adding a stage is one file and one entry here.
var pipelines = map[config.Mode][]stage{
	config.Inbound:  {ownIdentity, authenticatePeer, sanitize, block, decide, ruleJWT, throttle, admit, forward},
	config.Edge:     {ownIdentity, sanitize, authenticateToken, block, decide, ruleJWT, throttle, admit, forward},
	config.Outbound: {ownIdentity, sanitize, decideOutbound, admit, egress, forward},
}

// Stages lists the stage names of mode's pipeline, in order (for docs,
// tests and tracing).
func Stages(mode config.Mode) []string {
	var names []string
	for _, s := range pipelines[mode] {
		names = append(names, s.name)
	}
	return names
}
