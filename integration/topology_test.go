package integration

import (
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// The gateways of the suite. Identities are spiffe://example.org/<path>.
//
//	gw-client (client/web)  to-http ──▶ gw-http (gw/http)  http-in ──▶ httpecho
//	                        to-grpc ──▶ gw-grpc (gw/grpc)  grpc-in ──▶ grpcecho
//	                        to-wrong ─▶ gw-http, but expects gw/grpc (502)
//	gw-reload (gw/reload)   reload-in ─▶ httpecho over a unix socket
//	gw-rot-out (rot/out) ──▶ gw-rot-in (rot/in) ──▶ httpecho      X509-SVID TTL 30s
//	gw-kill-out (kill/out) ─▶ gw-kill-in (kill/in) ─▶ httpecho   on agent-b, TTL 40s
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

// moreGateways lets a test file add gateways of its own to the suite (from
// an init function), so that features keep their topology beside their
// tests.
var moreGateways []func(h *harness) ([]*gateway, error)

func (h *harness) gatewaySpecs() ([]*gateway, error) {
	specs, err := h.coreGateways()
	if err != nil {
		return nil, err
	}
	for _, more := range moreGateways {
		gws, err := more(h)
		if err != nil {
			return nil, err
		}
		specs = append(specs, gws...)
	}
	return specs, nil
}

func (h *harness) coreGateways() ([]*gateway, error) {
	addrs := map[string]string{}
	for _, name := range []string{"http-in", "grpc-in", "to-http", "to-grpc", "to-wrong",
		"reload-in", "rot-in", "rot-out", "kill-in", "kill-out"} {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		addrs[name] = a
	}
	httpUp := "http://" + h.httpecho
	id := func(path string) spiffeid.ID { return spiffeid.RequireFromPath(td, path) }
	return []*gateway{
		{
			name: "gw-http", id: idGWHTTP, agent: h.agentA,
			listeners: []listener{{name: "http-in", mode: "inbound", address: addrs["http-in"], upstream: httpUp, policy: "policy.toml"}},
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
		{
			name: "gw-reload", id: id("/gw/reload"), agent: h.agentA,
			listeners: []listener{{name: "reload-in", mode: "inbound", address: addrs["reload-in"], upstream: "unix://" + h.httpechoSock, policy: "policy.toml"}},
			policies:  map[string]string{"policy.toml": reloadPolicy("v1-allowed-only", "test/allowed")},
		},
		{
			name: "gw-rot-in", id: id("/rot/in"), agent: h.agentA, ttl: rotationTTL,
			listeners: []listener{{name: "rot-in", mode: "inbound", address: addrs["rot-in"], upstream: httpUp, policy: "policy.toml"}},
			policies:  map[string]string{"policy.toml": pairPolicy("rot/out")},
		},
		{
			name: "gw-rot-out", id: id("/rot/out"), agent: h.agentA, ttl: rotationTTL,
			listeners: []listener{{name: "rot-out", mode: "outbound", address: addrs["rot-out"], upstream: "https://" + addrs["rot-in"], upstreamID: id("/rot/in")}},
		},
		{
			name: "gw-kill-in", id: id("/kill/in"), agent: h.agentB, ttl: agentKillTTL,
			listeners: []listener{{name: "kill-in", mode: "inbound", address: addrs["kill-in"], upstream: httpUp, policy: "policy.toml"}},
			policies:  map[string]string{"policy.toml": pairPolicy("kill/out")},
		},
		{
			name: "gw-kill-out", id: id("/kill/out"), agent: h.agentB, ttl: agentKillTTL,
			listeners: []listener{{name: "kill-out", mode: "outbound", address: addrs["kill-out"], upstream: "https://" + addrs["kill-in"], upstreamID: id("/kill/in")}},
		},
	}, nil
}
