package integration

import (
	"regexp"
	"testing"
	"time"
)

// TestStartWithoutEntryExits1 starts a gateway whose executable matches no
// registration entry: it must give up after identity.initial_timeout, exit 1
// and say why.
func TestStartWithoutEntryExits1(t *testing.T) {
	t.Parallel()
	const initialTimeout = 3 * time.Second
	// Never registered: no topology starts it.
	g, err := inboundGateway(env, "unregistered", "http://"+env.httpecho, pairPolicy("nobody"))
	if err == nil {
		err = env.prepare(g, initialTimeout.String())
	}
	if err != nil {
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
