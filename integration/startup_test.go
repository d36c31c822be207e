package integration

import (
	"regexp"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// TestStartWithoutEntryExits1 starts a gateway whose executable matches no
// registration entry: it must give up after identity.initial_timeout, exit 1
// and say why.
func TestStartWithoutEntryExits1(t *testing.T) {
	t.Parallel()
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{
		name: "gw-unregistered", id: spiffeid.RequireFromPath(td, "/not/registered"), agent: env.agentA,
		listeners: []listener{{name: "in", mode: "inbound", address: addr, upstream: "http://" + env.httpecho, policy: "policy.toml"}},
		policies:  map[string]string{"policy.toml": pairPolicy("nobody")},
	}
	const initialTimeout = 3 * time.Second
	if err := env.prepare(g, initialTimeout.String()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := env.launch(g); err != nil {
		t.Fatal(err)
	}
	defer g.proc.kill()
	if !g.proc.wait(initialTimeout + 15*time.Second) {
		t.Fatalf("still running %v after start, initial_timeout is %v; log:\n%s", time.Since(start).Round(time.Second), initialTimeout, indent(g.proc.tail(10)))
	}
	elapsed := time.Since(start)
	out := g.proc.tail(30)
	if code := g.proc.exitCode(); code != 1 {
		t.Fatalf("exit code %d, want 1; log:\n%s", code, indent(out))
	}
	if elapsed < initialTimeout-500*time.Millisecond {
		t.Errorf("exited after %v, before initial_timeout %v; log:\n%s", elapsed, initialTimeout, indent(out))
	}
	if !regexp.MustCompile(`(?i)registration entry|agent`).MatchString(out) {
		t.Errorf("the message does not point at the agent or a missing registration entry:\n%s", indent(out))
	}
}
