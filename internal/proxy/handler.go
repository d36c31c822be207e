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
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/svidgate/svidgate/internal/audit"
	"github.com/svidgate/svidgate/internal/config"
	"github.com/svidgate/svidgate/internal/identity"
	"github.com/svidgate/svidgate/internal/jwtauth"
	"github.com/svidgate/svidgate/internal/normalize"
	"github.com/svidgate/svidgate/internal/ratelimit"
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
	// JWT validates JWT-SVIDs; nil when no listener needs it.
	JWT *jwtauth.Validator
	// Tokens fetches JWT-SVIDs for egress; nil when no listener needs it.
	Tokens *identity.JWTSVIDs
	// Limits applies [rule.rate] and abuse blocking; nil turns both off.
	Limits *Limits
}

// HeaderXFCC carries the verified caller identity to the upstream.
const HeaderXFCC = "X-Forwarded-Client-Cert"

// ownedPrefix marks headers svidgate sets itself; clients never get to.
const ownedPrefix = "X-Svidgate-"

// handler is the request pipeline of one listener.
type handler struct {
	name   string
	mode   config.Mode
	policy *reload.Holder // inbound and edge
	proxy  *httputil.ReverseProxy
	deps   Deps

	upstream    config.Upstream
	upstreamID  string // the SPIFFE ID an mTLS upstream must present
	jwtAudience string // edge: required of every token; outbound: minted for egress

	codes    [5]prometheus.Counter // by status class, 1xx..5xx
	duration prometheus.Observer
}

func newHandler(lc config.Listener, holder *reload.Holder, deps Deps) *handler {
	h := &handler{
		name:        lc.Name,
		mode:        lc.Mode,
		policy:      holder,
		deps:        deps,
		upstream:    lc.Upstream,
		jwtAudience: lc.JWTAudience,
	}
	if !lc.UpstreamSPIFFEID.IsZero() {
		h.upstreamID = lc.UpstreamSPIFFEID.String()
	}
	for i, class := range []string{"1xx", "2xx", "3xx", "4xx", "5xx"} {
		h.codes[i] = deps.Metrics.Requests.WithLabelValues(lc.Name, class)
	}
	h.duration = deps.Metrics.RequestDuration.WithLabelValues(lc.Name)
	h.proxy = &httputil.ReverseProxy{
		Rewrite:   h.rewrite,
		Transport: newTransport(lc, deps.Identity),
		// FlushInterval 0: ReverseProxy still flushes at once whatever has
		// no Content-Length (gRPC, streams) or is an event stream; bodies
		// of known length go out in as few writes as possible.
		BufferPool:   copyBuffers,
		ErrorHandler: h.proxyError,
		ErrorLog:     slog.NewLogLogger(deps.Log.Handler(), slog.LevelDebug),
	}
	return h
}

// exchange is one request on its way through the pipeline.
type exchange struct {
	r      *http.Request
	rw     *recorder
	rec    audit.Record
	grpc   bool
	path   string // normalized
	peer   string // mTLS caller ("" at the edge and on outbound)
	caller string // whom the policy decides about: peer, or the token's subject at the edge
	claims *jwtauth.Claims
	// keepAuthorization forwards the Authorization header; it is dropped
	// when svidgate consumed a JWT-SVID from it.
	keepAuthorization bool
	ticket            ratelimit.Ticket
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	x := &exchange{r: r, rw: &recorder{ResponseWriter: w}, grpc: isGRPC(r), keepAuthorization: true}
	x.rec = audit.Record{
		Time:     start.UTC(),
		Listener: h.name,
		Mode:     string(h.mode),
		Source:   audit.Source{Addr: r.RemoteAddr},
		Request:  audit.Request{Method: r.Method, Host: normalize.Host(r.Host), Proto: r.Proto},
	}
	// Who calls whom, for the service graph: on an outbound listener
	// we are the caller and the upstream the destination.
	if h.mode == config.Outbound {
		x.rec.Source.SPIFFEID = h.deps.Identity.ID().String()
		x.rec.Destination.SPIFFEID = h.upstreamID
	} else {
		x.rec.Destination.SPIFFEID = h.deps.Identity.ID().String()
	}
	defer func() {
		x.ticket.Release()
		h.finish(x, start)
	}()
	if h.authenticatePeer(x, start) && h.normalize(x) && h.authorize(x, start) && h.auditReady(x) && h.egressToken(x) {
		h.forward(x)
	}
}

// authenticatePeer reads the verified mTLS caller. A connection can
// outlive the SVID it was verified with: then each request is refused.
func (h *handler) authenticatePeer(x *exchange, now time.Time) bool {
	tls := x.r.TLS
	if tls == nil || len(tls.PeerCertificates) == 0 {
		return true
	}
	leaf := tls.PeerCertificates[0]
	if id, err := identity.PeerID(tls.PeerCertificates); err == nil {
		x.peer = id.String()
		x.rec.Source.SPIFFEID = x.peer
		x.rec.Source.TrustDomain = id.TrustDomain().Name()
	}
	x.caller = x.peer
	x.rec.Source.CertSerial = leaf.SerialNumber.Text(16)
	x.rec.Source.CertNotAfter = leaf.NotAfter.UTC()
	switch freshness(leaf, now) {
	case expired:
		x.rw.Header().Set("Connection", "close")
		x.rec.Request.Path = requestPath(x.r)
		h.refuse(x, http.StatusUnauthorized, audit.ResultDeny, "client X509-SVID expired at "+
			leaf.NotAfter.UTC().Format(time.RFC3339)+"; the connection outlived it",
			"unauthenticated: client certificate expired; reconnect with a current SVID")
		return false
	case aging:
		// Past three quarters of its life the peer holds a newer SVID
		// (SPIRE rotates at half-life): ask it to reconnect with that
		// one. On HTTP/2 this sends GOAWAY once in-flight streams end.
		x.rw.Header().Set("Connection", "close")
	}
	return true
}

func (h *handler) normalize(x *exchange) bool {
	raw := requestPath(x.r)
	path, err := normalize.Path(raw)
	if err != nil {
		x.rec.Request.Path = raw
		h.refuse(x, http.StatusBadRequest, audit.ResultDeny, "bad request: "+err.Error(), err.Error())
		return false
	}
	x.path = path
	x.rec.Request.Path = path
	if x.grpc {
		x.rec.Request.GRPCMethod = path
	}
	return true
}

// authorize runs the policy: at the edge the caller is first proven by a
// JWT-SVID; then the decision, the deciding rule's [rule.jwt] and its
// [rule.rate]. Outbound listeners take no policy.
func (h *handler) authorize(x *exchange, now time.Time) bool {
	if h.policy == nil {
		x.rec.Decision = audit.Decision{Result: audit.ResultAllow, Reason: "outbound: authorized by the upstream's SPIFFE ID"}
		x.rec.Upstream.SPIFFEID = h.upstreamID
		return true
	}
	if h.mode == config.Edge {
		if !h.validateToken(x, h.jwtAudience) {
			return false
		}
		x.caller = x.claims.Subject
		x.rec.Source.SPIFFEID = x.caller
		if id, err := spiffeid.FromString(x.caller); err == nil {
			x.rec.Source.TrustDomain = id.TrustDomain().Name()
		}
	}
	if lim := h.deps.Limits; lim != nil && lim.Blocker != nil {
		if until, blocked := lim.Blocker.Blocked(x.caller, now); blocked {
			x.rw.Header().Set("Retry-After", strconv.Itoa(int(time.Until(until).Seconds())+1))
			h.refuse(x, http.StatusTooManyRequests, audit.ResultLimited,
				"caller blocked until "+until.UTC().Format(time.RFC3339)+" after repeated denials",
				"too many requests: caller blocked after repeated denials")
			return false
		}
	}
	p := h.policy.Policy()
	x.rec.PolicySHA256 = p.SHA256()
	d := p.Decide(policy.Input{Caller: x.caller, Host: x.rec.Request.Host, Method: x.r.Method, Path: x.path, GRPC: x.grpc})
	x.rec.Decision = audit.Decision{Result: d.Result.String(), Rule: d.Rule, Reason: d.Reason}
	for _, o := range d.DryRun {
		x.rec.Decision.DryRun = append(x.rec.Decision.DryRun, audit.DryRun{Rule: o.Rule, Result: o.Outcome()})
	}
	h.deps.Metrics.AuthzDecisions.WithLabelValues(h.name, d.Rule, x.rec.Decision.Result).Inc()
	if d.Result != policy.Allow {
		h.denied(x, now)
		h.refuse(x, http.StatusForbidden, audit.ResultDeny, d.Reason, "forbidden: "+d.Reason)
		return false
	}
	if d.JWT != nil {
		if x.claims == nil && !h.validateToken(x, "") {
			h.denied(x, now)
			return false
		}
		if reason := d.JWT.Check(x.peer, x.claims.Subject, x.claims.Audience, x.claims.Raw); reason != "" {
			h.denied(x, now)
			x.rw.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			h.refuse(x, http.StatusUnauthorized, audit.ResultDeny, reason+" (rule "+d.Rule+")", "unauthenticated: "+reason)
			return false
		}
		x.keepAuthorization = d.JWT.Forward
	}
	if d.Rate != nil && h.deps.Limits != nil {
		return h.throttle(x, d.Rule, d.Rate)
	}
	return true
}

// validateToken reads and validates the request's JWT-SVID; audience, when
// set, must be one of its audiences. On failure it answers 401.
func (h *handler) validateToken(x *exchange, audience string) bool {
	x.keepAuthorization = false
	fail := func(reason string) bool {
		x.rw.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		h.refuse(x, http.StatusUnauthorized, audit.ResultDeny, "jwt: "+reason, "unauthenticated: a valid JWT-SVID is required ("+reason+")")
		return false
	}
	if h.deps.JWT == nil {
		return fail("no JWT bundles available")
	}
	tok, err := h.deps.JWT.TokenFromHeader(x.r.Header)
	if err != nil {
		return fail(jwtauth.Reason(err))
	}
	claims, err := h.deps.JWT.Validate(tok)
	if err != nil {
		return fail(jwtauth.Reason(err))
	}
	x.claims = claims
	x.rec.JWT = audit.JWT{Sub: claims.Subject, Aud: claims.Audience, JTI: claims.ID, Exp: claims.Expiry.UTC(),
		TokenSHA256Prefix: jwtauth.ShortHash(claims)}
	if audience != "" && !claims.HasAudience(audience) {
		return fail("audience: token is not for " + audience)
	}
	return true
}

// denied counts an authorization failure towards abuse blocking.
func (h *handler) denied(x *exchange, now time.Time) {
	if lim := h.deps.Limits; lim != nil && lim.Blocker != nil && x.caller != "" {
		if lim.Blocker.Fail(x.caller, now) {
			h.deps.Log.Warn("caller blocked after repeated denials", "listener", h.name, "caller", x.caller)
		}
	}
}

// auditReady refuses the request when the audit trail cannot take its
// record and on_failure is "block": nothing is served unaudited. An
// admitted record holds its place in the queue until finish enqueues it.
func (h *handler) auditReady(x *exchange) bool {
	if h.deps.Audit == nil || h.deps.Audit.Admit(&x.rec) {
		return true
	}
	h.refuse(x, http.StatusServiceUnavailable, audit.ResultError, "audit trail cannot keep records (on_failure = block)",
		"service unavailable: the audit trail cannot keep records")
	return false
}

// egressToken attaches a JWT-SVID for the upstream's audience on an
// outbound listener that asks for one.
func (h *handler) egressToken(x *exchange) bool {
	if h.mode != config.Outbound || h.jwtAudience == "" {
		return true
	}
	if h.deps.Tokens == nil {
		h.refuse(x, http.StatusServiceUnavailable, audit.ResultError, "no JWT-SVID source", "service unavailable: no JWT-SVID for the upstream")
		return false
	}
	tok, err := h.deps.Tokens.Get(x.r.Context(), h.jwtAudience)
	if err != nil {
		h.refuse(x, http.StatusServiceUnavailable, audit.ResultError, "egress JWT-SVID: "+err.Error(), "service unavailable: no JWT-SVID for the upstream")
		return false
	}
	x.r.Header.Set("Authorization", "Bearer "+tok)
	return true
}

// forward sends the request upstream with exactly the path decided on.
func (h *handler) forward(x *exchange) {
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
}

// refuse answers without forwarding and records why: result and reason in
// the audit record, msg to the caller.
func (h *handler) refuse(x *exchange, status int, result, reason, msg string) {
	x.rec.Decision.Result = result
	x.rec.Decision.Reason = reason
	x.rec.Request.GRPCStatus = refuse(x.rw, x.r, status, msg)
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
func (h *handler) finish(x *exchange, start time.Time) {
	rec, rw := &x.rec, x.rw
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
