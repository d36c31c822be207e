package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// The topology jwt, of the JWT-SVID tests (issue 3):
//
//	gw-jwt-in (jwt/in)     jwt-in      ──▶ httpecho   [rule.jwt] per rule, [jwt] leeway 1s
//	                       jwt-grpc-in ──▶ grpcecho   [rule.jwt] on a gRPC method
//	gw-jwt-edge (jwt/edge) jwt-edge (mode edge, no client certificate) ──▶ gw-jwt-in over mTLS
//	gw-jwt-out (jwt/out)   jwt-egress      (jwt_audience = audJWTIn) ──▶ gw-jwt-in
//	                       jwt-egress-none (no jwt_audience)         ──▶ gw-jwt-in
//
// The test clients fetch their JWT-SVIDs from agent-a with copies of the
// spire-agent binary, one per identity (see jwtAgentCLIs), registered
// with the topology so that the agent syncs the entries while the
// gateways start.
var (
	idJWTIn   = spiffeid.RequireFromPath(td, "/jwt/in")
	idJWTEdge = spiffeid.RequireFromPath(td, "/jwt/edge")
	idJWTOut  = spiffeid.RequireFromPath(td, "/jwt/out")
)

const (
	audJWTIn    = "spiffe://example.org/jwt-in"   // what gw-jwt-in's rules require
	audJWTB     = "spiffe://example.org/jwt-b"    // the rule on /jwt-b/**
	audJWTEdge  = "spiffe://example.org/jwt-edge" // the edge listener's jwt_audience
	audNobody   = "spiffe://example.org/nobody"   // no rule or listener wants it
	jwtInLeeway = "1s"                            // [jwt] leeway of gw-jwt-in, for the expiry test
)

// jwtInPolicy is gw-jwt-in's HTTP policy. The jwt-echo rule lets several
// mTLS callers in, each only with a JWT-SVID of its own (subject = "peer").
const jwtInPolicy = `version = 1

[[rule]]
id      = "jwt-echo"
effect  = "allow"
mode    = "enforce"
callers = ["spiffe://example.org/test/allowed", "spiffe://example.org/test/stranger", "spiffe://example.org/jwt/out"]
methods = ["GET"]
paths   = ["/jwt/**"]

[rule.jwt]
audience = "spiffe://example.org/jwt-in"

[[rule]]
id      = "jwt-other-audience"
effect  = "allow"
mode    = "enforce"
callers = ["spiffe://example.org/test/allowed"]
methods = ["GET"]
paths   = ["/jwt-b/**"]

[rule.jwt]
audience = "spiffe://example.org/jwt-b"

[[rule]]
id      = "jwt-forward"
effect  = "allow"
mode    = "enforce"
callers = ["spiffe://example.org/jwt/out"]
methods = ["GET"]
paths   = ["/jwt-fwd/**"]

[rule.jwt]
audience = "spiffe://example.org/jwt-in"
forward  = true

[[rule]]
id      = "edge-internal"
effect  = "allow"
mode    = "enforce"
callers = ["spiffe://example.org/jwt/edge"]
methods = ["GET"]
paths   = ["/edge/**"]
`

const jwtGRPCPolicy = `version = 1

[[rule]]
id      = "jwt-grpc"
effect  = "allow"
mode    = "enforce"
callers = ["spiffe://example.org/test/allowed"]
grpc    = ["/grpc.testing.TestService/UnaryCall"]

[rule.jwt]
audience = "spiffe://example.org/jwt-in"
`

// jwtEdgePolicy: at the edge the caller is the token's subject.
const jwtEdgePolicy = `version = 1

[[rule]]
id      = "edge-allowed"
effect  = "allow"
mode    = "enforce"
callers = ["spiffe://example.org/test/allowed"]
methods = ["GET"]
paths   = ["/edge/**"]
`

// jwtAgentCLIs maps a test identity to its copy of spire-agent, whose
// `api fetch jwt` the agent attests as that identity.
var jwtAgentCLIs struct {
	sync.Mutex
	m map[spiffeid.ID]string
}

func init() {
	defineTopology("jwt", jwtGateways)
}

func jwtGateways(h *harness) ([]*gateway, error) {
	for _, id := range []spiffeid.ID{idAllowed, idStranger} {
		dir := filepath.Join(h.binDir, "jwt-cli", id.Path()[1:])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		bin := filepath.Join(dir, "spire-agent")
		if err := copyFile(filepath.Join(h.spire.bin, "spire-agent"), bin); err != nil {
			return nil, err
		}
		if err := h.spire.register(h.agentA, id, 0, "unix:path:"+bin); err != nil {
			return nil, fmt.Errorf("register JWT client %s: %w", id, err)
		}
		jwtAgentCLIs.Lock()
		if jwtAgentCLIs.m == nil {
			jwtAgentCLIs.m = map[spiffeid.ID]string{}
		}
		jwtAgentCLIs.m[id] = bin
		jwtAgentCLIs.Unlock()
	}

	addrs, err := freeAddrs("jwt-in", "jwt-grpc-in", "jwt-edge", "jwt-egress", "jwt-egress-none")
	if err != nil {
		return nil, err
	}
	jwtIn := "https://" + addrs["jwt-in"]
	return []*gateway{
		{
			name: "gw-jwt-in", id: idJWTIn, agent: h.agentA,
			listeners: []listener{
				{name: "jwt-in", mode: "inbound", address: addrs["jwt-in"], upstream: "http://" + h.httpecho, policy: "policy.toml"},
				{name: "jwt-grpc-in", mode: "inbound", address: addrs["jwt-grpc-in"], upstream: "http://" + h.grpcecho, policy: "grpc-policy.toml"},
			},
			policies: map[string]string{"policy.toml": jwtInPolicy, "grpc-policy.toml": jwtGRPCPolicy},
			extra:    fmt.Sprintf("[jwt]\nleeway = %q\n", jwtInLeeway),
		},
		{
			name: "gw-jwt-edge", id: idJWTEdge, agent: h.agentA,
			listeners: []listener{{
				name: "jwt-edge", mode: "edge", address: addrs["jwt-edge"], upstream: jwtIn, upstreamID: idJWTIn, policy: "edge-policy.toml",
				extra: fmt.Sprintf("jwt_audience = %q\n", audJWTEdge),
			}},
			policies: map[string]string{"edge-policy.toml": jwtEdgePolicy},
		},
		{
			name: "gw-jwt-out", id: idJWTOut, agent: h.agentA,
			listeners: []listener{
				{name: "jwt-egress", mode: "outbound", address: addrs["jwt-egress"], upstream: jwtIn, upstreamID: idJWTIn,
					extra: fmt.Sprintf("jwt_audience = %q\n", audJWTIn)},
				{name: "jwt-egress-none", mode: "outbound", address: addrs["jwt-egress-none"], upstream: jwtIn, upstreamID: idJWTIn},
			},
		},
	}, nil
}
