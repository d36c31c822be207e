package integration

import (
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// The core topologies. Identities are spiffe://example.org/<path>.
//
//	mesh        gw-client (client/web)  to-http ──▶ gw-http (gw/http)  http-in ──▶ httpecho
//	                                    to-grpc ──▶ gw-grpc (gw/grpc)  grpc-in ──▶ grpcecho
//	                                    to-wrong ─▶ gw-http, but expects gw/grpc (502)
//	reload      gw-reload (gw/reload)   reload-in ─▶ httpecho over a unix socket
//	rotation    gw-rot-out (rot/out) ──▶ gw-rot-in (rot/in) ──▶ httpecho      X509-SVID TTL 30s
//	agent-kill  gw-kill-out (kill/out) ─▶ gw-kill-in (kill/in) ─▶ httpecho   on agent-b, TTL 40s
//
// agent-b is a SPIRE agent of agent-kill's own: its test kills and
// restarts it, which no other gateway must notice.
const (
	rotationTTL  = 30 * time.Second
	agentKillTTL = 40 * time.Second
)

var (
	idClientWeb = spiffeid.RequireFromPath(td, "/client/web")
	idGWHTTP    = spiffeid.RequireFromPath(td, "/gw/http")
	idGWGRPC    = spiffeid.RequireFromPath(td, "/gw/grpc")
)

const httpPolicy = `version = 1

[[rule]]
id      = "callers-use-echo"
effect  = "allow"
mode    = "enforce"
callers = ["spiffe://example.org/client/web", "spiffe://example.org/test/allowed"]
methods = ["GET", "POST"]
paths   = ["/echo", "/echo/**"]

[[rule]]
id      = "nobody-reaches-admin"
effect  = "deny"
mode    = "enforce"
callers = ["spiffe://example.org/**"]
paths   = ["/echo/admin/**"]
`

const grpcPolicy = `version = 1

[[rule]]
id      = "callers-use-testservice"
effect  = "allow"
mode    = "enforce"
callers = ["spiffe://example.org/client/web", "spiffe://example.org/test/allowed"]
grpc    = ["/grpc.testing.TestService/UnaryCall", "/grpc.testing.TestService/StreamingOutputCall"]
`

// pairPolicy lets the outbound gateway of a pair and the allowed test client in.
func pairPolicy(outbound string) string {
	return fmt.Sprintf(`version = 1

[[rule]]
id      = "pair"
effect  = "allow"
mode    = "enforce"
callers = ["spiffe://example.org/%s", "spiffe://example.org/test/allowed"]
methods = ["GET"]
paths   = ["/**"]
`, outbound)
}

// reloadPolicy allows the callers given, GET only.
func reloadPolicy(rule string, callers ...string) string {
	list := ""
	for i, c := range callers {
		if i > 0 {
			list += ", "
		}
		list += fmt.Sprintf("%q", "spiffe://example.org/"+c)
	}
	return fmt.Sprintf(`version = 1

[[rule]]
id      = %q
effect  = "allow"
mode    = "enforce"
callers = [%s]
methods = ["GET"]
paths   = ["/echo", "/echo/**"]
`, rule, list)
}

func init() {
	defineTopology("mesh", meshGateways)
	defineTopology("reload", func(h *harness) ([]*gateway, error) {
		g, err := inboundGateway(h, "reload", "unix://"+h.httpechoSock, reloadPolicy("v1-allowed-only", "test/allowed"))
		if err != nil {
			return nil, err
		}
		g.listeners[0].name = "reload-in"
		return []*gateway{g}, nil
	})
	defineTopology("rotation", func(h *harness) ([]*gateway, error) {
		return pairGateways(h, "rot", h.agentA, rotationTTL)
	})
	defineTopology("agent-kill", func(h *harness) ([]*gateway, error) {
		agent, err := h.spire.startAgent("agent-b")
		if err != nil {
			return nil, fmt.Errorf("agent-b: %w", err)
		}
		return pairGateways(h, "kill", agent, agentKillTTL)
	})
}

func meshGateways(h *harness) ([]*gateway, error) {
	addrs, err := freeAddrs("http-in", "grpc-in", "to-http", "to-grpc", "to-wrong")
	if err != nil {
		return nil, err
	}
	return []*gateway{
		{
			name: "gw-http", id: idGWHTTP, agent: h.agentA,
			listeners: []listener{{name: "http-in", mode: "inbound", address: addrs["http-in"], upstream: "http://" + h.httpecho, policy: "policy.toml"}},
			policies:  map[string]string{"policy.toml": httpPolicy},
		},
		{
			name: "gw-grpc", id: idGWGRPC, agent: h.agentA,
			listeners: []listener{{name: "grpc-in", mode: "inbound", address: addrs["grpc-in"], upstream: "http://" + h.grpcecho, policy: "policy.toml"}},
			policies:  map[string]string{"policy.toml": grpcPolicy},
		},
		{
			name: "gw-client", id: idClientWeb, agent: h.agentA,
			listeners: []listener{
				{name: "to-http", mode: "outbound", address: addrs["to-http"], upstream: "https://" + addrs["http-in"], upstreamID: idGWHTTP},
				{name: "to-grpc", mode: "outbound", address: addrs["to-grpc"], upstream: "https://" + addrs["grpc-in"], upstreamID: idGWGRPC},
				{name: "to-wrong", mode: "outbound", address: addrs["to-wrong"], upstream: "https://" + addrs["http-in"], upstreamID: idGWGRPC},
			},
		},
	}, nil
}

// pairGateways is an outbound gateway gw-<p>-out (spiffe://example.org/<p>/out)
// in front of an inbound one gw-<p>-in (<p>/in) to httpecho, listeners
// <p>-out and <p>-in, both served by agent with X509-SVIDs that live ttl.
func pairGateways(h *harness, p string, agent *spireAgent, ttl time.Duration) ([]*gateway, error) {
	addrs, err := freeAddrs("in", "out")
	if err != nil {
		return nil, err
	}
	inID, outID := spiffeid.RequireFromPath(td, "/"+p+"/in"), spiffeid.RequireFromPath(td, "/"+p+"/out")
	return []*gateway{
		{
			name: "gw-" + p + "-in", id: inID, agent: agent, ttl: ttl,
			listeners: []listener{{name: p + "-in", mode: "inbound", address: addrs["in"], upstream: "http://" + h.httpecho, policy: "policy.toml"}},
			policies:  map[string]string{"policy.toml": pairPolicy(p + "/out")},
		},
		{
			name: "gw-" + p + "-out", id: outID, agent: agent, ttl: ttl,
			listeners: []listener{{name: p + "-out", mode: "outbound", address: addrs["out"], upstream: "https://" + addrs["in"], upstreamID: inID}},
		},
	}, nil
}
