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
	return &splitTransport{h1: h1, h2c: h2c}
}

// splitTransport sends gRPC over h2c and everything else over HTTP/1.1.
type splitTransport struct{ h1, h2c *http.Transport }

func (t *splitTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if isGRPC(r) {
		return t.h2c.RoundTrip(r)
	}
	return t.h1.RoundTrip(r)
}
