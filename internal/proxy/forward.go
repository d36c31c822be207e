package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/svidgate/svidgate/internal/config"
	"github.com/svidgate/svidgate/internal/identity"
)

// forward sends the request upstream with exactly the path decided on. It
// never refuses: an upstream that fails is answered by proxyError (502,
// 504) and recorded.
func (h *handler) forward(x *exchange) *refusal {
	r := x.r
	if x.path != r.URL.EscapedPath() {
		r.URL.RawPath = x.path
		r.URL.Path, _ = url.PathUnescape(x.path)
	}
	if !x.keepAuthorization {
		r.Header.Del("Authorization")
	}
	if r.Body != nil && r.Body != http.NoBody {
		x.rw.body.ReadCloser = r.Body
		r.Body = &x.rw.body
	}
	x.rec.Upstream.Addr = h.upstream.String()
	upStart := time.Now()
	h.proxy.ServeHTTP(x.rw, r)
	x.rec.Upstream.DurationMS = ms(time.Since(upStart))
	if x.rw.upstream != "" {
		x.rec.Upstream.Error = x.rw.upstream
		x.rec.Decision.Reason += "; upstream failed"
	} else {
		x.rec.Upstream.Status = x.rw.status
	}
	if x.grpc && x.rec.Request.GRPCStatus == "" {
		x.rec.Request.GRPCStatus = grpcStatus(x.rw.Header())
	}
	return nil
}

// rewrite builds the outgoing request. httputil.ReverseProxy has already
// removed hop-by-hop and X-Forwarded-* headers from pr.Out.
func (h *handler) rewrite(pr *httputil.ProxyRequest) {
	out := pr.Out
	switch h.upstream.Scheme {
	case "unix":
		out.URL.Scheme, out.URL.Host = "http", "localhost"
	default:
		out.URL.Scheme, out.URL.Host = h.upstream.Scheme, h.upstream.Addr
	}
	out.Host = pr.In.Host
	pr.SetXForwarded()
	stripOwned(out.Header)
	stripOwned(out.Trailer)
	if h.mode == config.Inbound && pr.In.TLS != nil && len(pr.In.TLS.PeerCertificates) > 0 {
		if id, err := identity.PeerID(pr.In.TLS.PeerCertificates); err == nil {
			out.Header.Set(HeaderXFCC, "By="+h.deps.Identity.ID().String()+";URI="+id.String())
		}
	}
}

// stripOwned removes every header svidgate owns, whatever its case.
func stripOwned(hdr http.Header) {
	for k := range hdr {
		if k == HeaderXFCC || strings.HasPrefix(k, ownedPrefix) {
			delete(hdr, k)
		}
	}
}

// proxyError answers a request that could not be forwarded: 504 when the
// upstream timed out, 502 otherwise (gRPC: DEADLINE_EXCEEDED, UNAVAILABLE).
func (h *handler) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	status, reason := http.StatusBadGateway, "bad gateway: upstream unavailable"
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		status, reason = http.StatusGatewayTimeout, "gateway timeout: upstream did not answer in time"
	}
	kind := "unavailable"
	if status == http.StatusGatewayTimeout {
		kind = "timeout"
	}
	if errors.Is(r.Context().Err(), context.Canceled) {
		kind = "client_canceled"
	}
	h.deps.Metrics.UpstreamErrors.WithLabelValues(h.name, kind).Inc()
	h.deps.Log.Warn("forwarding failed", "listener", h.name, "upstream", h.upstream.String(), "error", err.Error())
	if rw, ok := w.(*recorder); ok {
		rw.upstream = err.Error()
	}
	refuse(w, r, status, reason)
}

// grpcStatus reads grpc-status from the response headers (trailers-only
// responses) or trailers.
func grpcStatus(h http.Header) string {
	if v := h.Get("Grpc-Status"); v != "" {
		return v
	}
	return h.Get(http.TrailerPrefix + "Grpc-Status")
}
