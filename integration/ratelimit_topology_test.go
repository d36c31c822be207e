package integration

import (
	"fmt"
	"path/filepath"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/svidgate/svidgate/internal/testredis"
)

// The topologies of the rate-limit tests (issue 4), all inbound to
// httpecho (gw-rl-local also to grpcecho). Callers are
// spiffe://example.org/rl/<name>, one identity per test, so that no two
// tests share a bucket. Each topology with a Redis backend starts a
// redis-server of its own (fast), so that none waits for another's.
//
//	rl-local    gw-rl-local   backend local; abuse blocking: >3 denials in 1m block for 3s
//	                          rl-http: /echo/** 3/m burst 3, /dry/** 2/m dry-run, /free/** no limit, /admin/** denied
//	                          rl-grpc: UnaryCall 2/m burst 2
//	rl-shared   gw-rl-a  ┐    backend redis (rlRedisShared), one policy: 10/m burst 10
//	            gw-rl-b  ┘    the replicas of one service
//	rl-outage   gw-rl-closed ┐ backend redis (rlRedisOutage, which the test stops and restarts),
//	            gw-rl-open   ┘ one policy 5/m burst 5; on_failure closed / open
//	rl-quota    gw-rl-quota   backend redis (rlRedisQuota), quota 3/day; the test restarts the gateway
//
// Without redis-server the topologies with Redis fail to start, and so do
// their tests, with an instruction.
var (
	rlRedisShared *testredis.Server // of rl-shared
	rlRedisOutage *testredis.Server // of rl-outage: stopped and restarted by TestRedisFailureModes
	rlRedisQuota  *testredis.Server // of rl-quota
)

func init() {
	defineTopology("rl-local", rlLocalGateways)
	defineTopology("rl-shared", func(h *harness) ([]*gateway, error) {
		policy := rlOnePolicy("rl-shared", fmt.Sprintf("limit = \"%d/m\"\nburst = %d", rlSharedBurst, rlSharedBurst))
		return rlRedisGateways(h, &rlRedisShared, policy, "svidgate:it:shared:", []string{"rl-a", "rl-b"}, []string{"closed", "closed"})
	})
	defineTopology("rl-outage", func(h *harness) ([]*gateway, error) {
		policy := rlOnePolicy("rl-outage", fmt.Sprintf("limit = \"%d/m\"\nburst = %d", rlOutageBurst, rlOutageBurst))
		return rlRedisGateways(h, &rlRedisOutage, policy, "svidgate:it:outage:", []string{"rl-closed", "rl-open"}, []string{"closed", "open"})
	})
	defineTopology("rl-quota", func(h *harness) ([]*gateway, error) {
		policy := rlOnePolicy("rl-quota", fmt.Sprintf("quota = \"%d/day\"", rlQuotaPerDay))
		return rlRedisGateways(h, &rlRedisQuota, policy, "svidgate:it:quota:", []string{"rl-quota"}, []string{"closed"})
	})
}

// rlRedisGateways starts a redis-server (stopped at teardown) into *srv
// and returns a gateway gw-<name> per name, counting in it under prefix
// with the on_failure of the same index.
func rlRedisGateways(h *harness, srv **testredis.Server, policy, prefix string, names, onFailure []string) ([]*gateway, error) {
	s, err := testredis.StartProcess(filepath.Join(h.dir, "logs"))
	if err != nil {
		return nil, fmt.Errorf("the rate-limit tests' Redis: %w", err)
	}
	h.atTeardown(s.Stop)
	*srv = s
	var gws []*gateway
	for i, name := range names {
		g, err := inboundGateway(h, name, "http://"+h.httpecho, policy)
		if err != nil {
			return nil, err
		}
		g.extra = rlRedisTOML(s.Addr(), prefix, onFailure[i])
		gws = append(gws, g)
	}
	return gws, nil
}

func rlID(name string) spiffeid.ID { return spiffeid.RequireFromPath(td, "/rl/"+name) }

const rlHTTPPolicy = `version = 1

[[rule]]
id      = "rl-echo"
effect  = "allow"
callers = ["spiffe://example.org/rl/**"]
methods = ["GET"]
paths   = ["/echo", "/echo/**"]

[rule.rate]
limit = "3/m"
burst = 3

[[rule]]
id      = "rl-dry"
effect  = "allow"
callers = ["spiffe://example.org/rl/**"]
methods = ["GET"]
paths   = ["/dry/**"]

[rule.rate]
limit = "2/m"
burst = 2
mode  = "dry-run"

[[rule]]
id      = "rl-free"
effect  = "allow"
callers = ["spiffe://example.org/rl/**"]
methods = ["GET"]
paths   = ["/free/**"]

[[rule]]
id      = "rl-no-admin"
effect  = "deny"
callers = ["spiffe://example.org/rl/**"]
paths   = ["/admin/**"]
`

const rlGRPCPolicy = `version = 1

[[rule]]
id      = "rl-grpc"
effect  = "allow"
callers = ["spiffe://example.org/rl/**"]
grpc    = ["/grpc.testing.TestService/UnaryCall"]

[rule.rate]
limit = "2/m"
burst = 2
`

// rlOnePolicy is a policy of one allow rule with the [rule.rate] given.
func rlOnePolicy(rule, rate string) string {
	return fmt.Sprintf(`version = 1

[[rule]]
id      = %q
effect  = "allow"
callers = ["spiffe://example.org/rl/**"]
methods = ["GET"]
paths   = ["/echo", "/echo/**"]

[rule.rate]
%s
`, rule, rate)
}

// rlRedisTOML is the [ratelimit] of a gateway counting in Redis at addr.
func rlRedisTOML(addr, prefix, onFailure string) string {
	return fmt.Sprintf(`[ratelimit]
backend = "redis"

[ratelimit.redis]
address = %q
timeout = "300ms"
on_failure = %q
prefix = %q
`, addr, onFailure, prefix)
}

// Limits of the Redis gateways, shared with the tests.
const (
	rlSharedBurst  = 10 // rl-shared: 10/m burst 10, one token every 6s
	rlOutageBurst  = 5  // rl-outage: 5/m burst 5
	rlQuotaPerDay  = 3  // rl-quota: 3/day
	rlAbuseCooling = 3  // seconds of abuse cooldown on gw-rl-local
)

func rlLocalGateways(h *harness) ([]*gateway, error) {
	addrs, err := freeAddrs("rl-http", "rl-grpc")
	if err != nil {
		return nil, err
	}
	httpUp := "http://" + h.httpecho
	return []*gateway{{
		name: "gw-rl-local", id: spiffeid.RequireFromPath(td, "/gw/rl-local"), agent: h.agentA,
		listeners: []listener{
			{name: "rl-http", mode: "inbound", address: addrs["rl-http"], upstream: httpUp, policy: "http.toml"},
			{name: "rl-grpc", mode: "inbound", address: addrs["rl-grpc"], upstream: "http://" + h.grpcecho, policy: "grpc.toml"},
		},
		policies: map[string]string{"http.toml": rlHTTPPolicy, "grpc.toml": rlGRPCPolicy},
		extra: fmt.Sprintf("[ratelimit]\nbackend = \"local\"\n\n[ratelimit.abuse]\nthreshold = 3\nwindow = \"1m\"\ncooldown = \"%ds\"\n",
			rlAbuseCooling),
	}}, nil
}
