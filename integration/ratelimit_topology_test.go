package integration

import (
	"fmt"
	"path/filepath"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/svidgate/svidgate/internal/testredis"
)

// The gateways of the rate-limit tests (issue 4), all inbound to httpecho
// (gw-rl-local also to grpcecho). Callers are spiffe://example.org/rl/<name>,
// one identity per test, so that no two tests share a bucket.
//
//	gw-rl-local   backend local; abuse blocking: >3 denials in 1m block for 3s
//	              rl-http: /echo/** 3/m burst 3, /dry/** 2/m dry-run, /free/** no limit, /admin/** denied
//	              rl-grpc: UnaryCall 2/m burst 2
//	gw-rl-a  ┐    backend redis (rlRedisShared), one policy: 10/m burst 10
//	gw-rl-b  ┘    the replicas of one service
//	gw-rl-closed ┐ backend redis (rlRedisOutage, which the test stops and restarts),
//	gw-rl-open   ┘ one policy 5/m burst 5; on_failure closed / open
//	gw-rl-quota   backend redis (rlRedisShared), quota 3/day; the test restarts it
var (
	rlRedisShared *testredis.Server // never stopped while the tests run
	rlRedisOutage *testredis.Server // stopped and restarted by TestRedisFailureModes
)

func init() {
	moreServices = append(moreServices, rlStartRedis)
	moreGateways = append(moreGateways, rlGateways)
}

// rlStartRedis starts the two Redis servers of the suite. Without
// redis-server the whole run fails with an instruction, as without SPIRE.
func rlStartRedis(h *harness) (func(), error) {
	var started []*testredis.Server
	stop := func() {
		for _, s := range started {
			s.Stop()
		}
	}
	for _, s := range []**testredis.Server{&rlRedisShared, &rlRedisOutage} {
		srv, err := testredis.StartProcess(filepath.Join(h.dir, "logs"))
		if err != nil {
			return stop, fmt.Errorf("the rate-limit tests' Redis: %w", err)
		}
		started = append(started, srv)
		*s = srv
	}
	return stop, nil
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

func rlGateways(h *harness) ([]*gateway, error) {
	names := []string{"rl-http", "rl-grpc", "rl-a", "rl-b", "rl-closed", "rl-open", "rl-quota"}
	addrs := map[string]string{}
	for _, n := range names {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		addrs[n] = a
	}
	httpUp := "http://" + h.httpecho
	shared := rlOnePolicy("rl-shared", fmt.Sprintf("limit = \"%d/m\"\nburst = %d", rlSharedBurst, rlSharedBurst))
	outage := rlOnePolicy("rl-outage", fmt.Sprintf("limit = \"%d/m\"\nburst = %d", rlOutageBurst, rlOutageBurst))
	quota := rlOnePolicy("rl-quota", fmt.Sprintf("quota = \"%d/day\"", rlQuotaPerDay))
	// gw is a gateway with one inbound listener of the same name.
	gw := func(name, policy, extra string) *gateway {
		return &gateway{
			name: "gw-" + name, id: spiffeid.RequireFromPath(td, "/gw/"+name), agent: h.agentA,
			listeners: []listener{{name: name, mode: "inbound", address: addrs[name], upstream: httpUp, policy: "policy.toml"}},
			policies:  map[string]string{"policy.toml": policy},
			extra:     extra,
		}
	}
	return []*gateway{
		{
			name: "gw-rl-local", id: spiffeid.RequireFromPath(td, "/gw/rl-local"), agent: h.agentA,
			listeners: []listener{
				{name: "rl-http", mode: "inbound", address: addrs["rl-http"], upstream: httpUp, policy: "http.toml"},
				{name: "rl-grpc", mode: "inbound", address: addrs["rl-grpc"], upstream: "http://" + h.grpcecho, policy: "grpc.toml"},
			},
			policies: map[string]string{"http.toml": rlHTTPPolicy, "grpc.toml": rlGRPCPolicy},
			extra: fmt.Sprintf("[ratelimit]\nbackend = \"local\"\n\n[ratelimit.abuse]\nthreshold = 3\nwindow = \"1m\"\ncooldown = \"%ds\"\n",
				rlAbuseCooling),
		},
		gw("rl-a", shared, rlRedisTOML(rlRedisShared.Addr(), "svidgate:it:shared:", "closed")),
		gw("rl-b", shared, rlRedisTOML(rlRedisShared.Addr(), "svidgate:it:shared:", "closed")),
		gw("rl-closed", outage, rlRedisTOML(rlRedisOutage.Addr(), "svidgate:it:outage:", "closed")),
		gw("rl-open", outage, rlRedisTOML(rlRedisOutage.Addr(), "svidgate:it:outage:", "open")),
		gw("rl-quota", quota, rlRedisTOML(rlRedisShared.Addr(), "svidgate:it:quota:", "closed")),
	}, nil
}
