package proxy

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/svidgate/svidgate/internal/audit"
	"github.com/svidgate/svidgate/internal/config"
	"github.com/svidgate/svidgate/internal/identity"
	"github.com/svidgate/svidgate/internal/normalize"
	"github.com/svidgate/svidgate/internal/reload"
	"github.com/svidgate/svidgate/internal/telemetry"
	"github.com/svidgate/svidgate/policy"
)

// Deps are what every listener shares.
type Deps struct {
	Identity *identity.Source
	Audit    *audit.Writer
	Metrics  *telemetry.Metrics
	Log      *slog.Logger
}

// HeaderXFCC carries the verified caller identity to the upstream.
const HeaderXFCC = "X-Forwarded-Client-Cert"

// ownedPrefix marks headers svidgate sets itself; clients never get to.
const ownedPrefix = "X-Svidgate-"

// handler is the request pipeline of one listener.
type handler struct {
	name   string
	mode   config.Mode
	policy *reload.Holder // inbound only
	proxy  *httputil.ReverseProxy
	deps   Deps

	upstream   config.Upstream
	upstreamID string // outbound: the SPIFFE ID the upstream must present

	codes    [5]prometheus.Counter // by status class, 1xx..5xx
	duration prometheus.Observer
}

func newHandler(lc config.Listener, holder *reload.Holder, deps Deps) *handler {
	h := &handler{
		name:     lc.Name,
		mode:     lc.Mode,
		policy:   holder,
		deps:     deps,
		upstream: lc.Upstream,
	}
	if !lc.UpstreamSPIFFEID.IsZero() {
		h.upstreamID = lc.UpstreamSPIFFEID.String()
	}
	for i, class := range []string{"1xx", "2xx", "3xx", "4xx", "5xx"} {
		h.codes[i] = deps.Metrics.Requests.WithLabelValues(lc.Name, class)
	}
	h.duration = deps.Metrics.RequestDuration.WithLabelValues(lc.Name)
	h.proxy = &httputil.ReverseProxy{
		Rewrite:       h.rewrite,
		Transport:     newTransport(lc, deps.Identity),
		FlushInterval: -1, // stream: gRPC and server-sent events must not wait on a buffer
		ErrorHandler:  h.proxyError,
		ErrorLog:      slog.NewLogLogger(deps.Log.Handler(), slog.LevelDebug),
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &recorder{ResponseWriter: w}
	rec := audit.Record{
		Time:     start.UTC(),
		Listener: h.name,
		Mode:     string(h.mode),
		Source:   audit.Source{Addr: r.RemoteAddr},
		Request:  audit.Request{Method: r.Method, Host: normalize.Host(r.Host), Proto: r.Proto},
	}
	grpc := isGRPC(r)
	defer func() {
		h.finish(&rec, rw, r, start)
	}()

	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		leaf := r.TLS.PeerCertificates[0]
		if id, err := identity.PeerID(r.TLS.PeerCertificates); err == nil {
			rec.Source.SPIFFEID = id.String()
			rec.Source.TrustDomain = id.TrustDomain().Name()
		}
		rec.Source.CertSerial = leaf.SerialNumber.Text(16)
		rec.Source.CertNotAfter = leaf.NotAfter.UTC()
		// A connection can outlive the SVID it was verified with.
		switch freshness(leaf, start) {
		case expired:
			rec.Decision = audit.Decision{Result: "deny", Reason: "client X509-SVID expired at " +
				leaf.NotAfter.UTC().Format(time.RFC3339) + "; the connection outlived it"}
			w.Header().Set("Connection", "close")
			rec.Request.Path = requestPath(r)
			rec.Request.GRPCStatus = refuse(rw, r, http.StatusUnauthorized, "unauthenticated: client certificate expired; reconnect with a current SVID")
			return
		case aging:
			// Past three quarters of its life the peer holds a newer SVID
			// (SPIRE rotates at half-life): ask it to reconnect with that
			// one. On HTTP/2 this sends GOAWAY once in-flight streams end.
			w.Header().Set("Connection", "close")
		}
	}

	raw := requestPath(r)
	path, err := normalize.Path(raw)
	rec.Request.Path = path
	if grpc {
		rec.Request.GRPCMethod = path
	}
	if err != nil {
		rec.Request.Path = raw
		rec.Decision = audit.Decision{Result: "deny", Reason: "bad request: " + err.Error()}
		rec.Request.GRPCStatus = refuse(rw, r, http.StatusBadRequest, err.Error())
		return
	}

	if h.policy != nil {
		p := h.policy.Policy()
		rec.PolicySHA256 = p.SHA256()
		d := p.Decide(policy.Input{
			Caller: rec.Source.SPIFFEID,
			Host:   rec.Request.Host,
			Method: r.Method,
			Path:   path,
			GRPC:   grpc,
		})
		rec.Decision = audit.Decision{Result: d.Result.String(), Rule: d.Rule, Reason: d.Reason}
		for _, o := range d.DryRun {
			rec.Decision.DryRun = append(rec.Decision.DryRun, audit.DryRun{Rule: o.Rule, Result: "would_" + o.Result.String()})
		}
		h.deps.Metrics.AuthzDecisions.WithLabelValues(h.name, d.Rule, rec.Decision.Result).Inc()
		if d.Result != policy.Allow {
			rec.Request.GRPCStatus = refuse(rw, r, http.StatusForbidden, "forbidden: "+d.Reason)
			return
		}
	} else {
		rec.Decision = audit.Decision{Result: "allow", Reason: "outbound: authorized by the upstream's SPIFFE ID"}
		rec.Upstream.SPIFFEID = h.upstreamID
	}

	// Forward exactly the path that was decided on.
	if path != r.URL.EscapedPath() {
		r.URL.RawPath = path
		r.URL.Path, _ = url.PathUnescape(path)
	}
	if r.Body != nil && r.Body != http.NoBody {
		rw.body.ReadCloser = r.Body
		r.Body = &rw.body
	}
	rec.Upstream.Addr = h.upstream.String()
	upStart := time.Now()
	h.proxy.ServeHTTP(rw, r)
	rec.Upstream.DurationMS = ms(time.Since(upStart))
	if rw.upstream != "" {
		rec.Upstream.Error = rw.upstream
		rec.Decision.Reason += "; upstream failed"
	} else {
		rec.Upstream.Status = rw.status
	}
	if grpc && rec.Request.GRPCStatus == "" {
		rec.Request.GRPCStatus = grpcStatus(rw.Header())
	}
}

type validity uint8

const (
	fresh validity = iota
	aging
	expired
)

// freshness tells how far into its lifetime a peer certificate is at now.
func freshness(leaf *x509.Certificate, now time.Time) validity {
	if now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return expired
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	if now.After(leaf.NotBefore.Add(life / 4 * 3)) {
		return aging
	}
	return fresh
}

// requestPath is the path as the client sent it. net/http parses an
// origin-form target that starts with "//" as an authority, so the raw
// request URI is used wherever it is a path.
func requestPath(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		p, _, _ := strings.Cut(r.RequestURI, "?")
		return p
	}
	return r.URL.EscapedPath()
}

// finish completes and enqueues the audit record and counts the request. It
// runs deferred, so a response aborted mid-stream is audited too.
func (h *handler) finish(rec *audit.Record, rw *recorder, r *http.Request, start time.Time) {
	status := rw.status
	if status == 0 {
		status = http.StatusOK
	}
	rec.Status = status
	rec.BytesIn = rw.body.n
	rec.BytesOut = rw.written
	elapsed := time.Since(start)
	rec.DurationMS = ms(elapsed)
	if h.deps.Audit != nil {
		rec.ID = h.deps.Audit.NextID()
		_ = h.deps.Audit.Enqueue(rec) // a failure is counted by the writer
	}
	h.codes[min(max(status/100, 1), 5)-1].Inc()
	h.duration.Observe(elapsed.Seconds())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

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
