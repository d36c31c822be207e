package integration

import (
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// drain: gw-drain (gw/drain) ─▶ a backend in this test process that holds
// each request until the test releases it.
var drainBackend = struct {
	arrived chan struct{}
	release chan struct{}
}{make(chan struct{}, 1), make(chan struct{})}

func init() {
	defineTopology("drain", func(h *harness) ([]*gateway, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			drainBackend.arrived <- struct{}{}
			select {
			case <-drainBackend.release:
			case <-time.After(20 * time.Second):
			}
			_, _ = w.Write([]byte("drained\n"))
		})}
		go func() { _ = srv.Serve(ln) }()
		h.atTeardown(func() { _ = srv.Close() })
		g, err := inboundGateway(h, "drain", "http://"+ln.Addr().String(), pairPolicy("nobody"))
		if err != nil {
			return nil, err
		}
		return []*gateway{g}, nil
	})
}

// TestDrainSurvivesSIGHUP: SIGTERM with a request in flight, then SIGHUP
// (logrotate's postrotate during a restart) while the gateway drains. The
// request is still answered and audited, and the gateway exits 0: SIGHUP
// is caught until the drain is over, never the default action (exit).
func TestDrainSurvivesSIGHUP(t *testing.T) {
	tp := env.topology(t, "drain")
	t.Parallel()
	g := tp.gateway(t, "gw-drain")
	c := httpsClient(clientTLS(t, idAllowed, g.id), false, false)
	url := "https://" + g.addr("drain") + "/drain/slow"
	type answer struct {
		code int
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		code, err := doStatus(c, "GET", url)
		done <- answer{code, err}
	}()
	select {
	case <-drainBackend.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the backend")
	}
	g.proc.signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	g.proc.signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	close(drainBackend.release)
	if a := <-done; a.err != nil || a.code != http.StatusOK {
		t.Errorf("the request in flight at SIGTERM: %d %v, want 200", a.code, a.err)
	}
	if !g.proc.wait(15 * time.Second) {
		t.Fatal("gw-drain did not exit after the drain")
	}
	if c := g.proc.exitCode(); c != 0 {
		t.Errorf("gw-drain exited %d after SIGTERM and SIGHUP, want 0; log:\n%s", c, indent(g.proc.tail(5)))
	}
	recs, err := g.records(func(r *auditRecord) bool { return r.Request.Path == "/drain/slow" })
	if err != nil || len(recs) != 1 || recs[0].Status != http.StatusOK {
		t.Errorf("audit records of the drained request: %v %v, want one with status 200", recs, err)
	}
	// Teardown wants every gateway it knows running.
	if err := env.relaunch(g, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}
