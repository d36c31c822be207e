package proxy

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/svidgate/svidgate/internal/config"
	"github.com/svidgate/svidgate/internal/identity"
)

// newTransport returns how a listener reaches its upstream. A plain
// upstream (the local app behind an inbound listener, or an edge's http://
// upstream) gets HTTP/1.1, and h2c with prior knowledge for gRPC (which
// needs HTTP/2). An https:// upstream (outbound, edge) gets mTLS with our
// SVID and must present the configured SPIFFE ID; HTTP/2 by ALPN.
func newTransport(lc config.Listener, src *identity.Source) http.RoundTripper {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	dial := dialer.DialContext
	if lc.Upstream.Scheme == "unix" {
		sock := lc.Upstream.Addr
		dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", sock)
		}
	}
	base := func() *http.Transport {
		return &http.Transport{
			DialContext:           dial,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: lc.UpstreamTimeout.Duration,
			ExpectContinueTimeout: time.Second,
			// A proxy passes Content-Encoding through; it does not
			// ask for gzip on the client's behalf and undo it.
			DisableCompression: true,
		}
	}
	if lc.Upstream.Scheme == "https" {
		t := base()
		t.TLSClientConfig = src.ClientConfig(lc.UpstreamSPIFFEID.ID)
		t.TLSHandshakeTimeout = 5 * time.Second
		t.ForceAttemptHTTP2 = true
		return t
	}
	h1 := base()
	h1.Protocols = new(http.Protocols)
	h1.Protocols.SetHTTP1(true)
	h2c := base()
	h2c.Protocols = new(http.Protocols)
	h2c.Protocols.SetUnencryptedHTTP2(true)
	lean := &h1Transport{
		dial:          func(ctx context.Context) (net.Conn, error) { return dial(ctx, "tcp", lc.Upstream.Addr) },
		headerTimeout: lc.UpstreamTimeout.Duration,
		maxIdle:       h1.MaxIdleConnsPerHost,
		idleTimeout:   h1.IdleConnTimeout,
	}
	return &splitTransport{lean: lean, h1: h1, h2c: h2c}
}

// splitTransport sends gRPC over h2c, body-less requests over the lean
// HTTP/1.1 pool and the rest (bodies, upgrades) over http.Transport.
type splitTransport struct {
	lean    *h1Transport
	h1, h2c *http.Transport
}

func (t *splitTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	switch {
	case isGRPC(r):
		return t.h2c.RoundTrip(r)
	case (r.Body == nil || r.Body == http.NoBody) && r.Header.Get("Upgrade") == "":
		return t.lean.RoundTrip(r)
	}
	return t.h1.RoundTrip(r)
}

// CloseIdleConnections closes every pooled upstream connection.
func (t *splitTransport) CloseIdleConnections() {
	t.lean.CloseIdleConnections()
	t.h1.CloseIdleConnections()
	t.h2c.CloseIdleConnections()
}
