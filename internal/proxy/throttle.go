package proxy

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/svidgate/svidgate/internal/audit"
	"github.com/svidgate/svidgate/internal/ratelimit"
	"github.com/svidgate/svidgate/internal/telemetry"
	"github.com/svidgate/svidgate/policy"
)

// Limits is what [rule.rate] and abuse blocking count with. Limiter and
// Quota share a backend (local or Redis); InFlight and Blocker are local to
// this process.
type Limits struct {
	Limiter  ratelimit.Limiter
	InFlight *ratelimit.InFlight
	Blocker  *ratelimit.Blocker // nil: abuse blocking off
	Metrics  *telemetry.Metrics
}

// throttle applies the deciding rule's [rule.rate]: limit, then quota, then
// the in-flight cap. A dry-run spec records what would have been refused
// and lets the request through.
func (h *handler) throttle(x *exchange) *refusal {
	lim, rule, spec := h.deps.Limits, x.rule, x.rate
	if spec == nil || lim == nil {
		return nil
	}
	eff := spec.For(x.caller)
	key := bucketKey(rule, spec.Key, x.caller)
	ctx := x.r.Context()
	hdr := x.rw.Header()
	tripped := ""
	var retry time.Duration
	// backendDown: the refusal is the backend's failure (failing closed);
	// backendFailed: it failed at all, also when failing open.
	backendDown, backendFailed := false, false
	if !eff.Limit.IsZero() {
		res, _ := lim.Limiter.Allow(ctx, key, toLimit(eff.Limit, eff.Burst))
		x.rec.RateLimit = audit.RateLimit{Rule: rule, Limit: eff.Limit.String(), Remaining: int64(res.Remaining)}
		if !spec.DryRun {
			rateHeaders(hdr, rule, eff.Limit, res)
		}
		backendFailed = res.Failed
		if !res.Allowed {
			tripped, retry, backendDown = "limit "+eff.Limit.String(), res.RetryAfter, res.Failed
		}
	}
	// A backend that just failed is not asked again for the quota: a Redis
	// that stopped answering costs one timeout per request, not two.
	if tripped == "" && !eff.Quota.IsZero() && !backendFailed {
		res, _ := lim.Limiter.Allow(ctx, key+"\x00quota", toLimit(eff.Quota, eff.Quota.Count))
		if x.rec.RateLimit.Rule == "" {
			x.rec.RateLimit = audit.RateLimit{Rule: rule, Limit: eff.Quota.String(), Remaining: int64(res.Remaining)}
		}
		if !spec.DryRun && (eff.Limit.IsZero() || !res.Allowed) {
			rateHeaders(hdr, rule, eff.Quota, res)
		}
		if !res.Allowed {
			tripped, retry, backendDown = "quota "+eff.Quota.String(), res.RetryAfter, res.Failed
			x.rec.RateLimit.Limit, x.rec.RateLimit.Remaining = eff.Quota.String(), 0
		}
	}
	if tripped == "" && eff.MaxInFlight > 0 && lim.InFlight != nil {
		t, ok := lim.InFlight.Acquire(key, eff.MaxInFlight)
		if ok {
			x.ticket = t
		} else {
			tripped, retry = "max_in_flight "+strconv.Itoa(eff.MaxInFlight), time.Second
		}
	}
	if tripped == "" {
		lim.Metrics.RateLimited.WithLabelValues(h.name, rule, "allowed").Inc()
		return nil
	}
	if spec.DryRun {
		lim.Metrics.RateLimited.WithLabelValues(h.name, rule, "would_limit").Inc()
		x.rec.Decision.DryRun = append(x.rec.Decision.DryRun, audit.DryRun{Rule: rule, Result: "would_limit: " + tripped})
		return nil
	}
	if backendDown {
		// Failing closed is svidgate's doing, not the caller's: 503.
		hdr.Del("RateLimit")
		hdr.Del("RateLimit-Policy")
		lim.Metrics.RateLimited.WithLabelValues(h.name, rule, "backend_down").Inc()
		hdr.Set("Retry-After", "1")
		return &refusal{status: http.StatusServiceUnavailable, result: audit.ResultError,
			reason: "rate-limit backend unreachable; failing closed (rule " + rule + ")",
			msg:    "service unavailable: rate limiting is unavailable"}
	}
	lim.Metrics.RateLimited.WithLabelValues(h.name, rule, "limited").Inc()
	hdr.Set("Retry-After", seconds(retry))
	return &refusal{status: http.StatusTooManyRequests, result: audit.ResultLimited,
		reason: "rate limited: " + tripped + " (rule " + rule + ")", msg: "too many requests: " + tripped}
}

// rateHeaders sets the draft-ietf-httpapi-ratelimit-headers fields: the
// policy (q requests per window w, the window being the time the burst
// takes to refill) and what is left of it. A failed backend says nothing.
func rateHeaders(hdr http.Header, rule string, r policy.Rate, res ratelimit.Result) {
	if res.Failed {
		return
	}
	window := time.Duration(res.Limit.Burst) * r.Period / time.Duration(r.Count)
	hdr.Set("RateLimit-Policy", `"`+rule+`";q=`+strconv.Itoa(res.Limit.Burst)+`;w=`+seconds(window))
	hdr.Set("RateLimit", `"`+rule+`";r=`+strconv.Itoa(res.Remaining)+`;t=`+seconds(res.Reset))
}

// bucketKey names the bucket a request counts against: per rule, and per
// caller, per trust domain or shared, as the rule says.
func bucketKey(rule string, k policy.RateKey, caller string) string {
	switch k {
	case policy.KeyTrustDomain:
		td := strings.TrimPrefix(caller, "spiffe://")
		if i := strings.IndexByte(td, '/'); i >= 0 {
			td = td[:i]
		}
		return rule + "\x00td\x00" + td
	case policy.KeyRule:
		return rule
	default:
		return rule + "\x00" + caller
	}
}

func toLimit(r policy.Rate, burst int) ratelimit.Limit {
	return ratelimit.Limit{Count: r.Count, Period: r.Period, Burst: burst}
}

// seconds renders d as whole seconds, rounded up: Retry-After 0 would
// invite an immediate retry that fails again.
func seconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(s, 0), 10)
}
