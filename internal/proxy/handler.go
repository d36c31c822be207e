package proxy

import (
	"log/slog"
	"net/http"
	"net/http/httputil"
	"time"

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

// handler is the request pipeline of one listener: its stages, in the
// order pipelines gives for its mode, then the audit finisher.
type handler struct {
	name   string
	mode   config.Mode
	stages []stage
	policy *reload.Holder // inbound and edge
	proxy  *httputil.ReverseProxy
	deps   Deps

	upstream   config.Upstream
	upstreamID string // the SPIFFE ID an mTLS upstream must present
	// usesSVID: the listener presents our X509-SVID somewhere (false only
	// for an edge with its own certificate and a plain upstream).
	usesSVID    bool
	jwtAudience string // edge: required of every token; outbound: minted for egress

	codes    [5]prometheus.Counter // by status class, 1xx..5xx
	duration prometheus.Observer
}

func newHandler(lc config.Listener, setup Setup, deps Deps) *handler {
	h := &handler{
		name:        lc.Name,
		mode:        lc.Mode,
		stages:      pipelines[lc.Mode],
		policy:      setup.Policy,
		usesSVID:    lc.Mode != config.Edge || setup.EdgeCertificate == nil || lc.Upstream.Scheme == "https",
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

// exchange is one request on its way through the pipeline: what the stages
// learned so far, and its audit record.
type exchange struct {
	r      *http.Request
	rw     *recorder
	rec    audit.Record
	start  time.Time
	grpc   bool
	path   string // normalized (sanitize)
	peer   string // verified mTLS caller ("" at the edge and on outbound)
	caller string // whom the policy decides about: peer, or the token's subject at the edge
	claims *jwtauth.Claims
	// What decide found: the deciding rule and its tables.
	rule   string
	jwtReq *policy.JWTRequirement
	rate   *policy.RateSpec
	// keepAuthorization forwards the Authorization header; it is dropped
	// when svidgate consumed a JWT-SVID from it.
	keepAuthorization bool
	ticket            ratelimit.Ticket
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := h.newExchange(w, r)
	defer h.finish(x)
	for i := range h.stages {
		if ref := h.stages[i].run(h, x); ref != nil {
			respond(x, ref)
			h.countDenial(x, ref)
			return
		}
	}
}

// newExchange starts the audit record with what is known before any stage
// runs: the connection, the request line and who calls whom.
func (h *handler) newExchange(w http.ResponseWriter, r *http.Request) *exchange {
	start := time.Now()
	x := &exchange{r: r, rw: &recorder{ResponseWriter: w}, start: start, grpc: isGRPC(r), keepAuthorization: true}
	x.rec = audit.Record{
		Time:     start.UTC(),
		Listener: h.name,
		Mode:     string(h.mode),
		Source:   audit.Source{Addr: r.RemoteAddr},
		Request:  audit.Request{Method: r.Method, Host: normalize.Host(r.Host), Proto: r.Proto, Path: requestPath(r)},
	}
	// Who calls whom, for the service graph: on an outbound listener
	// we are the caller and the upstream the destination.
	if h.mode == config.Outbound {
		x.rec.Source.SPIFFEID = h.deps.Identity.ID().String()
		x.rec.Destination.SPIFFEID = h.upstreamID
	} else {
		x.rec.Destination.SPIFFEID = h.deps.Identity.ID().String()
		notePeer(x)
	}
	return x
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
