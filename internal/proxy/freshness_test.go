package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"

	"github.com/svidgate/svidgate/internal/identity"
	"github.com/svidgate/svidgate/internal/ratelimit"
	"github.com/svidgate/svidgate/internal/testpki"
)

// A client whose SVID is in its last quarter is asked to reconnect, over
// HTTP/1.1 (Connection: close) and HTTP/2 (GOAWAY), and still served.
func TestAgingClientIsAskedToReconnect(t *testing.T) {
	f := start(t)
	for _, h2 := range []bool{false, true} {
		src := &identity.Source{}
		// Valid from a minute ago for 5 s more: 92% through its life.
		src.Set(f.ca.Issue(t, "spiffe://example.org/web", 5*time.Second), x509bundle.NewSet(f.ca.Bundle()))
		cfg := src.ClientConfig(f.gateway)
		if !h2 {
			cfg.NextProtos = []string{"http/1.1"}
		}
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: h2}}
		newConns := 0
		for range 2 {
			trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
				if !i.Reused {
					newConns++
				}
			}}
			req, _ := http.NewRequest("GET", "https://"+f.addr+"/orders/1", nil)
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			<-f.seen
			if resp.StatusCode != 200 {
				t.Fatalf("h2=%v: status %d", h2, resp.StatusCode)
			}
			time.Sleep(50 * time.Millisecond) // let GOAWAY arrive
		}
		if newConns != 2 {
			t.Errorf("h2=%v: %d new connections for 2 requests, want 2 (the first must be closed)", h2, newConns)
		}
	}
}

// A connection that outlived the client's SVID is refused per request,
// and told to close.
func TestExpiredClientOnLiveConnection(t *testing.T) {
	f := start(t)
	leaf := *f.ca.Issue(t, "spiffe://example.org/web", time.Hour).Certificates[0]
	leaf.NotAfter = time.Now().Add(-time.Second) // as if the connection had lived on

	r := httptest.NewRequest("GET", "/orders/1", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{&leaf}}
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized || w.Header().Get("Connection") != "close" {
		t.Fatalf("status %d, Connection %q; want 401 and close", w.Code, w.Header().Get("Connection"))
	}
	select {
	case <-f.seen:
		t.Fatal("request reached the backend")
	default:
	}
	recs := f.sink.records(t, f.writer, 1)
	if len(recs) != 1 || recs[0].Status != 401 || recs[0].Decision.Result != "deny" {
		t.Fatalf("audit: %+v", recs)
	}
}

func TestFreshness(t *testing.T) {
	now := time.Now()
	leaf := &x509.Certificate{NotBefore: now.Add(-time.Minute), NotAfter: now.Add(3 * time.Minute)}
	for _, tt := range []struct {
		at   time.Time
		want validity
	}{
		{now, fresh},
		{now.Add(110 * time.Second), fresh},
		{now.Add(130 * time.Second), aging},
		{now.Add(181 * time.Second), expired},
		{now.Add(-2 * time.Minute), expired},
	} {
		if got := freshness(leaf, tt.at); got != tt.want {
			t.Errorf("at %v: %v, want %v", tt.at.Sub(now), got, tt.want)
		}
	}
}

// A refused handshake is audited with the reason and the SPIFFE ID the
// peer presented.
func TestRefusedHandshakeIsAudited(t *testing.T) {
	f := start(t)
	rogue := testpki.NewCA(t, "example.org")
	src := &identity.Source{}
	src.Set(rogue.Issue(t, "spiffe://example.org/evil", time.Hour), x509bundle.NewSet(f.ca.Bundle()))
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: src.ClientConfig(f.gateway)}}
	if resp, err := c.Get("https://" + f.addr + "/orders/1"); err == nil {
		resp.Body.Close()
		t.Fatalf("a certificate from an unknown CA was accepted: %d", resp.StatusCode)
	}
	recs := f.sink.records(t, f.writer, 1)
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1: %+v", len(recs), recs)
	}
	r := recs[0]
	if r.Source.SPIFFEID != "" {
		t.Errorf("source.spiffe_id %q: it names the verified caller only; an unverified ID belongs in tls.presented_spiffe_id", r.Source.SPIFFEID)
	}
	if r.TLS.PresentedSPIFFEID != "spiffe://example.org/evil" || r.Decision.Result != "deny" ||
		!strings.Contains(r.TLS.Reason, "unknown authority") || r.Source.Addr == "" {
		t.Errorf("record %+v", r)
	}
}

// While our own SVID is expired, a connection opened before expiry is
// answered 503 and closed (HTTP/1.1 and HTTP/2), and the request never
// reaches the backend; a fresh SVID serves again on a new connection.
func TestOwnExpiredSVIDClosesLiveConnections(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		f := start(t)
		c := f.client(t, "spiffe://example.org/web", h2)
		newConns := 0
		get := func() int {
			trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
				if !i.Reused {
					newConns++
				}
			}}
			req, _ := http.NewRequest("GET", "https://"+f.addr+"/orders/1", nil)
			resp, err := c.Do(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
			if err != nil {
				t.Fatalf("h2=%v: %v", h2, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body) // so that the connection is reused
			resp.Body.Close()
			return resp.StatusCode
		}
		if s := get(); s != 200 {
			t.Fatalf("h2=%v: status %d before expiry", h2, s)
		}
		<-f.seen
		bundles := x509bundle.NewSet(f.ca.Bundle())
		f.src.Set(f.ca.Issue(t, f.gateway.String(), -time.Second), bundles)
		if s := get(); s != http.StatusServiceUnavailable {
			t.Fatalf("h2=%v: status %d on a live connection after our SVID expired, want 503", h2, s)
		}
		select {
		case <-f.seen:
			t.Fatalf("h2=%v: a request reached the backend while our SVID was expired", h2)
		default:
		}
		time.Sleep(50 * time.Millisecond) // let GOAWAY arrive
		f.src.Set(f.ca.Issue(t, f.gateway.String(), time.Hour), bundles)
		if s := get(); s != 200 {
			t.Fatalf("h2=%v: status %d after a fresh SVID", h2, s)
		}
		<-f.seen
		if newConns != 2 {
			t.Errorf("h2=%v: %d connections for 3 requests, want 2 (the one served after expiry must be closed)", h2, newConns)
		}
	}
}

// The 401s of a connection that outlived the client's SVID do not count
// towards abuse blocking: they would lock out the caller's fresh SVID.
func TestExpiredPeerIsNotAbuse(t *testing.T) {
	lim := localLimits()
	lim.Blocker = ratelimit.NewBlocker(1, time.Minute, time.Minute, 100)
	f := startWith(t, testPolicy, lim)
	leaf := *f.ca.Issue(t, "spiffe://example.org/web", time.Hour).Certificates[0]
	leaf.NotAfter = time.Now().Add(-time.Second)
	for range 2 {
		r := httptest.NewRequest("GET", "/orders/1", nil)
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{&leaf}}
		w := httptest.NewRecorder()
		f.handler.ServeHTTP(w, r)
		if w.Code != 401 {
			t.Fatalf("expired: %d", w.Code)
		}
	}
	r := getStatus(t, f.client(t, "spiffe://example.org/web", true), "https://"+f.addr+"/orders/1")
	if r.StatusCode != 200 {
		t.Errorf("caller with a fresh SVID refused %d: refusals of an expired connection counted as abuse", r.StatusCode)
	}
}

// A connection that outlived the client's SVID is refused (401) and closed
// before its request is looked at, whatever the path.
func TestExpiredPeerBadPath(t *testing.T) {
	f := start(t)
	leaf := *f.ca.Issue(t, "spiffe://example.org/web", time.Hour).Certificates[0]
	leaf.NotAfter = time.Now().Add(-time.Second)
	r := httptest.NewRequest("GET", "/orders%2F..%2Fadmin", nil)
	r.RequestURI = "/orders%2F..%2Fadmin"
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{&leaf}}
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized || w.Header().Get("Connection") != "close" {
		t.Errorf("expired peer, bad path: %d, Connection %q; want 401 and close", w.Code, w.Header().Get("Connection"))
	}
}

// Host and :authority: malformed hosts and a disagreeing Host header are
// 400 and never reach the backend; a trailing dot is dropped on the way.
func TestHostChecked(t *testing.T) {
	f := start(t)
	peer := f.ca.Issue(t, "spiffe://example.org/web", time.Hour).Certificates[0]
	for _, tt := range []struct {
		name, host, header string
		want               int
		forwarded          string
	}{
		{"plain", "orders.internal:8443", "", 200, "orders.internal:8443"},
		{"trailing dot", "orders.internal.:8443", "", 200, "orders.internal:8443"},
		{"two ports", "a:80:80", "", 400, ""},
		{"comma", "a.com,b.com", "", 400, ""},
		{"escape", "a%2ecom", "", 400, ""},
		{"Host disagrees with :authority", "a.com", "b.com", 400, ""},
	} {
		r := httptest.NewRequest("GET", "/orders/1", nil)
		r.Host = tt.host
		if tt.header != "" {
			r.ProtoMajor, r.Header["Host"] = 2, []string{tt.header}
		}
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{peer}}
		w := httptest.NewRecorder()
		f.handler.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("%s: status %d, want %d", tt.name, w.Code, tt.want)
		}
		select {
		case got := <-f.seen:
			if tt.forwarded == "" || got.Host != tt.forwarded {
				t.Errorf("%s: backend received Host %q, want %q", tt.name, got.Host, tt.forwarded)
			}
		default:
			if tt.forwarded != "" {
				t.Errorf("%s: nothing reached the backend", tt.name)
			}
		}
	}
}
