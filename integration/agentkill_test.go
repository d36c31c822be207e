package integration

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestAgentKilledAndRestarted kills the SPIRE agent of a gateway pair with
// SIGKILL during steady traffic, restarts it a few seconds later from its
// data_dir (no new join token), and wants every request to succeed, none
// on an expired client certificate, and both gateways to take later SVIDs
// from the restarted agent.
func TestAgentKilledAndRestarted(t *testing.T) {
	tp := env.topology(t, "agent-kill")
	t.Parallel()
	in := tp.gateway(t, "gw-kill-in")
	out := tp.gateway(t, "gw-kill-out")
	agent := in.agent // agent-b, of this topology only

	outURL := "http://" + out.addr("kill-out") + "/agent-kill"
	inURL := "https://" + in.addr("kill-in") + "/agent-kill"
	viaOut := xfcc(in.id, out.id)
	targets := []target{
		getEchoTarget("outbound keep-alive", plainClient(false, true), outURL, viaOut),
		getEchoTarget("outbound new connection", plainClient(false, false), outURL, viaOut),
		getEchoTarget("inbound mTLS new connection", httpsClient(clientTLS(t, idAllowed, in.id), false, false), inURL, xfcc(in.id, idAllowed)),
	}
	w := watchSerials(in, out)
	l := startLoad(20, targets...)
	defer l.stop()
	time.Sleep(2 * time.Second)

	before := map[string][]string{in.name: w.seen(in.name), out.name: w.seen(out.name)}
	env.spire.killAgent(agent)
	if !agent.proc.exited() {
		t.Fatal("agent-b survived SIGKILL")
	}
	t.Logf("agent killed; serials so far %v", before)
	time.Sleep(4 * time.Second)
	// Without an agent the gateways keep their SVIDs and stay ready.
	for _, g := range []*gateway{in, out} {
		if code, err := getJSON(&http.Client{Timeout: 2 * time.Second}, g.adminURL("/readyz"), nil); err != nil || code != http.StatusOK {
			t.Errorf("%s /readyz with the agent down: %d %v, want 200 (its SVID is still valid)", g.name, code, err)
		}
	}
	if err := env.spire.restartAgent(agent); err != nil {
		t.Fatalf("restart agent-b from its data_dir without a join token: %v", err)
	}
	restarted := time.Now()
	t.Log("agent restarted")

	// Two SVIDs not seen before the kill: the gateways reconnected and keep
	// following rotations.
	newSerials := func(name string) int {
		n := 0
		for _, s := range w.seen(name) {
			if !slices.Contains(before[name], s) {
				n++
			}
		}
		return n
	}
	err := poll(80*time.Second, 500*time.Millisecond, func() error {
		for _, g := range []*gateway{in, out} {
			if n := newSerials(g.name); n < 2 {
				return fmt.Errorf("%s: %d new svid_serial values since the restart, want 2 (seen %v)", g.name, n, w.seen(g.name))
			}
		}
		return nil
	})
	time.Sleep(2 * time.Second)
	l.stop()
	w.stop()
	if err != nil {
		t.Errorf("after the agent restart (%v ago): %v; agent log:\n%s", time.Since(restarted).Round(time.Second), err, indent(agent.proc.tail(10)))
	}
	l.check(t, targets...)
	checkNoExpiredClientCert(t, in, out.id)
}
