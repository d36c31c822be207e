package integration

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// own-expiry: gw-exp-out (exp/out) ─▶ gw-exp-in (exp/in) ─▶ httpecho, on an
// agent of their own (agent-c) with X509-SVIDs that live ownExpiryTTL: its
// test stops the agent until both SVIDs have expired.
const ownExpiryTTL = 20 * time.Second

func init() {
	defineTopology("own-expiry", func(h *harness) ([]*gateway, error) {
		agent, err := h.spire.startAgent("agent-c")
		if err != nil {
			return nil, fmt.Errorf("agent-c: %w", err)
		}
		return pairGateways(h, "exp", agent, ownExpiryTTL)
	})
}

// TestOwnSVIDExpiredFailsClosed stops the agent of a gateway pair and waits
// until both gateways' X509-SVIDs are past NotAfter. Then no handshake
// completes with either's expired SVID (a client that accepts any
// certificate sees none), a keep-alive connection opened before expiry is
// no longer served, and the local app gets 503 from the outbound listener.
// When the agent returns, the same processes serve again.
func TestOwnSVIDExpiredFailsClosed(t *testing.T) {
	tp := env.topology(t, "own-expiry")
	t.Parallel()
	in, out := tp.gateway(t, "gw-exp-in"), tp.gateway(t, "gw-exp-out")
	inURL, outURL := "https://"+in.addr("exp-in")+"/own-expiry", "http://"+out.addr("exp-out")+"/own-expiry"
	keepAlive := httpsClient(clientTLS(t, idAllowed, in.id), false, true)
	local := plainClient(false, true)
	expectStatus(t, in, keepAlive, "GET", inURL, http.StatusOK)
	expectStatus(t, out, local, "GET", outURL, http.StatusOK)
	pids := []int{in.proc.cmd.Process.Pid, out.proc.cmd.Process.Pid}

	agent := in.agent
	env.spire.killAgent(agent)
	waitSVIDsExpired(t, in, out)

	if r, err := do(keepAlive, "GET", inURL, nil); err == nil && r.code != http.StatusServiceUnavailable {
		t.Errorf("a keep-alive connection opened before expiry got %d after the gateway's SVID expired, want 503 (or no answer)", r.code)
	}
	if r, err := do(local, "GET", outURL, nil); err != nil || r.code != http.StatusServiceUnavailable {
		t.Errorf("outbound listener with an expired SVID: %v %v, want 503", r, err)
	}
	if presented := handshakeAnyCert(t, in.addr("exp-in")); presented != nil {
		t.Errorf("gw-exp-in completed a handshake with an SVID that expired at %s", presented.NotAfter.UTC().Format(time.RFC3339))
	}

	if err := env.spire.restartAgent(agent); err != nil {
		t.Fatalf("restart agent-c: %v", err)
	}
	fresh := httpsClient(clientTLS(t, idAllowed, in.id), false, false)
	err := poll(60*time.Second, 500*time.Millisecond, func() error {
		for _, c := range []struct {
			c   *http.Client
			url string
		}{{fresh, inURL}, {local, outURL}} {
			if r, err := do(c.c, "GET", c.url, nil); err != nil || r.code != http.StatusOK {
				return fmt.Errorf("%s: %v %v", c.url, r, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after the agent returned: %v", err)
	}
	if now := []int{in.proc.cmd.Process.Pid, out.proc.cmd.Process.Pid}; now[0] != pids[0] || now[1] != pids[1] {
		t.Errorf("gateway pids %v, then %v: the same processes must serve again", pids, now)
	}
}

// waitSVIDsExpired waits until the SVID each gateway holds is past its
// NotAfter (bounded by the TTL: the agent is down, none can arrive).
func waitSVIDsExpired(t *testing.T, gws ...*gateway) {
	t.Helper()
	err := poll(ownExpiryTTL+10*time.Second, 500*time.Millisecond, func() error {
		for _, g := range gws {
			st, err := g.status()
			if err != nil {
				return err
			}
			exp, err := time.Parse(time.RFC3339, st.SVIDExpiresAt)
			if err != nil || !time.Now().After(exp.Add(time.Second)) {
				return fmt.Errorf("%s: svid_expires_at %q not passed yet (%v)", g.name, st.SVIDExpiresAt, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// handshakeAnyCert runs one mTLS handshake with a client that presents a
// valid SVID and accepts whatever certificate the server presents, and
// returns that certificate, or nil when no handshake completed.
func handshakeAnyCert(t *testing.T, addr string) *x509.Certificate {
	t.Helper()
	cfg := clientTLS(t, idAllowed, idAllowed).Clone()
	var mu sync.Mutex
	var seen *x509.Certificate
	cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		if c, err := x509.ParseCertificate(raw[0]); err == nil {
			mu.Lock()
			seen = c
			mu.Unlock()
		}
		return nil
	}
	cfg.NextProtos = []string{"http/1.1"}
	d := &tls.Dialer{Config: cfg}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil
	}
	defer conn.Close()
	// TLS 1.3: the server's verdict on our certificate arrives with the
	// first read; a completed handshake is one the server finished too.
	_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, _ = conn.Write([]byte("GET /own-expiry HTTP/1.1\r\nHost: x\r\n\r\n"))
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		return nil
	}
	mu.Lock()
	defer mu.Unlock()
	return seen
}
