package identity

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/svidgate/svidgate/internal/testpki"
)

func newSource(t *testing.T, ca *testpki.CA, id string, extra ...*testpki.CA) *Source {
	t.Helper()
	set := x509bundle.NewSet(ca.Bundle())
	for _, e := range extra {
		set.Add(e.Bundle())
	}
	s := &Source{}
	s.Set(ca.Issue(t, id, time.Hour), set)
	return s
}

// handshake runs one TLS handshake between a server and client config and
// returns the client's and server's errors.
func handshake(t *testing.T, server, client *tls.Config) (error, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	serr := make(chan error, 1)
	go func() {
		conn := tls.Server(s, server)
		err := conn.HandshakeContext(ctx)
		if err == nil {
			// Let the client see the server's verdict on its certificate.
			_, err = conn.Read(make([]byte, 1))
			if err != nil && strings.Contains(err.Error(), "EOF") {
				err = nil
			}
		}
		serr <- err
		s.Close()
	}()
	conn := tls.Client(c, client)
	cerr := conn.HandshakeContext(ctx)
	if cerr == nil {
		_, _ = conn.Write([]byte{0})
	}
	c.Close()
	return cerr, <-serr
}

func TestServerVerifiesPeers(t *testing.T) {
	ca := testpki.NewCA(t, "example.org")
	other := testpki.NewCA(t, "other.org")
	server := newSource(t, ca, "spiffe://example.org/gateway", other)
	tds := []spiffeid.TrustDomain{ca.TD}

	tests := []struct {
		name    string
		client  *Source
		wantErr string // in the server's error; "" = accepted
	}{
		{"member of the trust domain", newSource(t, ca, "spiffe://example.org/web"), ""},
		{"ID without a path", newSource(t, ca, "spiffe://example.org"), "has no path"},
		{"other trust domain, bundle known", newSource(t, other, "spiffe://other.org/web", ca), "not accepted by this listener"},
		{"CA that signed nothing we trust", func() *Source {
			rogue := testpki.NewCA(t, "example.org")
			s := newSource(t, rogue, "spiffe://example.org/web")
			s.Set(rogue.Issue(t, "spiffe://example.org/web", time.Hour), x509bundle.NewSet(ca.Bundle()))
			return s
		}(), "certificate signed by unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verified := 0
			srvCfg := server.ServerConfig(AuthorizeMembers(tds), func() { verified++ })
			cliCfg := tt.client.ClientConfig(spiffeid.RequireFromString("spiffe://example.org/gateway"))
			_, serr := handshake(t, srvCfg, cliCfg)
			if tt.wantErr == "" {
				if serr != nil {
					t.Fatalf("server: %v", serr)
				}
				if verified != 1 {
					t.Errorf("onVerified called %d times, want 1", verified)
				}
				return
			}
			if serr == nil || !strings.Contains(serr.Error(), tt.wantErr) {
				t.Fatalf("server error = %v, want one containing %q", serr, tt.wantErr)
			}
			if verified != 0 {
				t.Error("onVerified called for a rejected peer")
			}
		})
	}
}

func TestServerConfigHardening(t *testing.T) {
	ca := testpki.NewCA(t, "example.org")
	cfg := newSource(t, ca, "spiffe://example.org/gw").ServerConfig(AuthorizeMembers([]spiffeid.TrustDomain{ca.TD}), nil)
	if cfg.MinVersion != tls.VersionTLS13 {
		t.Errorf("MinVersion = %x, want TLS 1.3", cfg.MinVersion)
	}
	if !cfg.SessionTicketsDisabled {
		t.Error("session tickets enabled: resumption would skip peer verification")
	}
	if cfg.ClientAuth != tls.RequireAnyClientCert {
		t.Errorf("ClientAuth = %v, want RequireAnyClientCert", cfg.ClientAuth)
	}
}

func TestClientRequiresUpstreamID(t *testing.T) {
	ca := testpki.NewCA(t, "example.org")
	upstream := newSource(t, ca, "spiffe://example.org/impostor")
	client := newSource(t, ca, "spiffe://example.org/web")
	srvCfg := upstream.ServerConfig(AuthorizeMembers([]spiffeid.TrustDomain{ca.TD}), nil)
	cerr, _ := handshake(t, srvCfg, client.ClientConfig(spiffeid.RequireFromString("spiffe://example.org/orders")))
	if cerr == nil || !strings.Contains(cerr.Error(), `want "spiffe://example.org/orders"`) {
		t.Fatalf("client error = %v, want a SPIFFE ID mismatch", cerr)
	}
}

// A rotated SVID is served on the next handshake, without a new config.
func TestRotationNeedsNoNewConfig(t *testing.T) {
	ca := testpki.NewCA(t, "example.org")
	server := newSource(t, ca, "spiffe://example.org/gw")
	client := newSource(t, ca, "spiffe://example.org/web")
	srvCfg := server.ServerConfig(AuthorizeMembers([]spiffeid.TrustDomain{ca.TD}), nil)
	want := spiffeid.RequireFromString("spiffe://example.org/gw")
	first, _ := server.GetX509SVID()
	server.Set(ca.Issue(t, want.String(), time.Hour), x509bundle.NewSet(ca.Bundle()))
	second, _ := server.GetX509SVID()
	if first.Certificates[0].SerialNumber.Cmp(second.Certificates[0].SerialNumber) == 0 {
		t.Fatal("test setup: same serial")
	}
	var seen string
	cliCfg := client.ClientConfig(want)
	cliCfg.VerifyConnection = func(cs tls.ConnectionState) error {
		seen = cs.PeerCertificates[0].SerialNumber.Text(16)
		return nil
	}
	if cerr, serr := handshake(t, srvCfg, cliCfg); cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	if seen != second.Certificates[0].SerialNumber.Text(16) {
		t.Errorf("server presented serial %s, want the rotated %s", seen, second.Certificates[0].SerialNumber.Text(16))
	}
}

func TestReady(t *testing.T) {
	ca := testpki.NewCA(t, "example.org")
	var empty Source
	if ok, _ := empty.Ready(time.Now(), time.Minute); ok {
		t.Error("ready without an SVID")
	}
	s := &Source{}
	s.Set(ca.Issue(t, "spiffe://example.org/gw", 30*time.Second), x509bundle.NewSet(ca.Bundle()))
	// Issued valid from 1 minute ago for 30 s more: lifetime 90 s, so the
	// margin is capped at 22.5 s.
	if ok, why := s.Ready(time.Now(), time.Hour); !ok {
		t.Errorf("fresh SVID not ready: %s", why)
	}
	if ok, _ := s.Ready(time.Now().Add(10*time.Second), time.Hour); ok {
		t.Error("ready 20 s before expiry, inside the capped margin")
	}
	if ok, why := s.Ready(time.Now().Add(time.Minute), 0); ok || !strings.Contains(why, "expired") {
		t.Errorf("after expiry: ready=%v %q", ok, why)
	}
}

// Past our SVID's NotAfter no handshake completes with it, as server or as
// client; a fresh SVID serves again with the same configs.
func TestExpiredOwnSVIDFailsClosed(t *testing.T) {
	ca := testpki.NewCA(t, "example.org")
	server := newSource(t, ca, "spiffe://example.org/gw")
	client := newSource(t, ca, "spiffe://example.org/web")
	gw := spiffeid.RequireFromString("spiffe://example.org/gw")
	srvCfg := server.ServerConfig(AuthorizeMembers([]spiffeid.TrustDomain{ca.TD}), nil)
	cliCfg := client.ClientConfig(gw)
	bundles := x509bundle.NewSet(ca.Bundle())

	for _, side := range []*Source{server, client} {
		side.Set(ca.Issue(t, side.ID().String(), -time.Second), bundles)
		if !side.Expired(time.Now()) {
			t.Fatalf("%s: Expired = false for an SVID past NotAfter", side.ID())
		}
		if _, err := side.GetX509SVID(); err == nil || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("%s: GetX509SVID of an expired SVID: %v", side.ID(), err)
		}
		if cerr, serr := handshake(t, srvCfg, cliCfg); cerr == nil && serr == nil {
			t.Fatalf("a handshake completed while %s held an expired SVID", side.ID())
		}
		side.Set(ca.Issue(t, side.ID().String(), time.Hour), bundles)
		if side.Expired(time.Now()) {
			t.Fatalf("%s: Expired = true for a fresh SVID", side.ID())
		}
		if cerr, serr := handshake(t, srvCfg, cliCfg); cerr != nil || serr != nil {
			t.Fatalf("after a fresh SVID for %s: client %v, server %v", side.ID(), cerr, serr)
		}
	}
}

// Expired (read per request without the lock) and GetX509SVID (read per
// handshake) agree for any NotAfter, far future and Unix epoch included,
// and forget the SVID when it is cleared.
func TestExpiredAgreesWithGetX509SVID(t *testing.T) {
	ca := testpki.NewCA(t, "example.org")
	bundles := x509bundle.NewSet(ca.Bundle())
	var s Source
	if s.Expired(time.Now()) {
		t.Fatal("a Source without an SVID reports it expired")
	}
	for _, notAfter := range []time.Time{
		time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), // past int64 nanoseconds
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Unix(0, 0),
		time.Now().Add(-time.Second),
		time.Now().Add(time.Hour),
	} {
		svid := ca.Issue(t, "spiffe://example.org/gw", time.Hour)
		svid.Certificates[0].NotAfter = notAfter
		s.Set(svid, bundles)
		_, err := s.GetX509SVID()
		if expired := s.Expired(time.Now()); expired != (err != nil) {
			t.Errorf("NotAfter %s: Expired = %v, GetX509SVID error %v", notAfter, expired, err)
		}
	}
	s.Set(nil, nil)
	if _, err := s.GetX509SVID(); err == nil || s.Expired(time.Now()) {
		t.Errorf("after Set(nil): GetX509SVID error %v, Expired %v; want an error and false", err, s.Expired(time.Now()))
	}
}
