package integration

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// A topology is a named group of gateways, with what they need beyond the
// SPIRE server, agent-a and the sample backends that TestMain starts (an
// agent of their own, a Redis, a tmpfs). Tests declare the topologies they
// use and the first declaration starts one, so that `go test -run TestX`
// starts only what TestX needs. The topologies, each defined beside its
// tests:
//
//	mesh, reload, rotation, agent-kill    core_topology_test.go
//	aud-load, aud-tamper, … aud-graph     audit_topology_test.go
//	jwt                                   jwt_topology_test.go
//	rl-local, rl-shared, rl-outage, …     ratelimit_topology_test.go
type topology struct {
	name    string
	ready   chan struct{} // closed when the start has ended: gws, err and took are set
	gws     map[string]*gateway
	err     error
	took    time.Duration
	started time.Time
}

// topologyBuilders maps a topology's name to the function that starts what
// its gateways need and returns their specs; the harness then registers,
// starts and waits for the gateways. Test files define theirs from init
// functions with defineTopology.
var topologyBuilders = map[string]func(h *harness) ([]*gateway, error){}

// defineTopology registers a topology; defining a name twice is a
// programming error and panics at init.
func defineTopology(name string, build func(h *harness) ([]*gateway, error)) {
	if _, dup := topologyBuilders[name]; dup {
		panic("integration: topology " + name + " defined twice")
	}
	topologyBuilders[name] = build
}

// topology declares that the test uses the named topology and starts it
// in the background unless a test declared it before. Declare before
// t.Parallel: the selected tests' serial prefixes run first, so every
// topology they need starts at once, concurrently, as one global start
// did; then each test waits only for its own gateways (topology.gateway).
// Safe from parallel tests: one start per topology and run.
func (h *harness) topology(t testing.TB, name string) *topology {
	t.Helper()
	build, ok := topologyBuilders[name]
	if !ok {
		t.Fatalf("no topology %q (defined: %s)", name, strings.Join(slices.Sorted(maps.Keys(topologyBuilders)), ", "))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if tp := h.tops[name]; tp != nil {
		return tp
	}
	tp := &topology{name: name, ready: make(chan struct{}), started: time.Now()}
	h.tops[name] = tp
	h.starting.Add(1)
	go func() {
		defer h.starting.Done()
		defer close(tp.ready)
		tp.gws, tp.err = h.startTopology(build)
		tp.took = time.Since(tp.started)
	}()
	return tp
}

// topologyStartTimeout bounds the wait of a test for its topology; the
// start itself is bounded by its parts (SPIRE commands 20s, readiness 60s).
const topologyStartTimeout = 3 * time.Minute

// gateway waits for the topology and returns its running gateway name, or
// fails the test. A gateway that did not come up fails only the tests that
// use it.
func (tp *topology) gateway(t testing.TB, name string) *gateway {
	t.Helper()
	select {
	case <-tp.ready:
	case <-time.After(topologyStartTimeout - time.Since(tp.started)):
		t.Fatalf("topology %s not started within %v", tp.name, topologyStartTimeout)
	}
	if tp.err != nil {
		t.Fatalf("topology %s did not start: %v", tp.name, tp.err)
	}
	g, ok := tp.gws[name]
	if !ok {
		t.Fatalf("no gateway %q in topology %s", name, tp.name)
	}
	if g.err != nil {
		t.Fatal(g.err)
	}
	if g.proc.exited() {
		t.Fatalf("gateway %s is no longer running (%v); log %s:\n%s", name, g.proc.err, g.proc.log, indent(g.proc.tail(25)))
	}
	return g
}

// startTopology builds the specs, registers one entry per gateway (its own
// binary copy, selected by unix:path), starts the gateways and waits for
// each to be ready. Every gateway launched is handed to teardown, ready or
// not.
func (h *harness) startTopology(build func(h *harness) ([]*gateway, error)) (map[string]*gateway, error) {
	specs, err := build(h)
	if err != nil {
		return nil, err
	}
	gws := map[string]*gateway{}
	for _, g := range specs {
		if err := h.prepare(g, "30s"); err != nil {
			return nil, err
		}
		if err := h.spire.register(g.agent, g.id, g.ttl, "unix:path:"+g.bin); err != nil {
			return nil, fmt.Errorf("register %s: %w", g.name, err)
		}
		gws[g.name] = g
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, g := range specs {
		if err := h.launch(g); err != nil {
			return nil, err
		}
		h.mu.Lock()
		h.gateways = append(h.gateways, g)
		h.mu.Unlock()
		wg.Go(func() { g.waitReady(60 * time.Second) })
	}
	return gws, nil
}

// atTeardown hands teardown a function that stops what a topology started
// besides its gateways; it runs after every gateway has stopped.
func (h *harness) atTeardown(stop func()) {
	h.mu.Lock()
	h.stops = append(h.stops, stop)
	h.mu.Unlock()
}

// reportTopologies prints how long each topology took to start, for a
// reader of a slow run.
func (h *harness) reportTopologies() {
	h.mu.Lock()
	defer h.mu.Unlock()
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(h.tops)) {
		tp := h.tops[name]
		select {
		case <-tp.ready:
			parts = append(parts, fmt.Sprintf("%s %v", name, tp.took.Round(100*time.Millisecond)))
		default:
			parts = append(parts, name+" (unfinished)")
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(os.Stderr, "integration: topologies started (ready after): %s\n", strings.Join(parts, ", "))
	}
}

// freeAddrs reserves a loopback address for each name.
func freeAddrs(names ...string) (map[string]string, error) {
	addrs := map[string]string{}
	for _, n := range names {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		addrs[n] = a
	}
	return addrs, nil
}

// inboundGateway is the spec of gateway gw-<name> (spiffe://example.org/gw/<name>)
// on agent-a with one inbound listener <name> at a free address, to
// upstream, enforcing policy.
func inboundGateway(h *harness, name, upstream, policy string) (*gateway, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	return &gateway{
		name: "gw-" + name, id: spiffeid.RequireFromPath(td, "/gw/"+name), agent: h.agentA,
		listeners: []listener{{name: name, mode: "inbound", address: addr, upstream: upstream, policy: "policy.toml"}},
		policies:  map[string]string{"policy.toml": policy},
	}, nil
}
