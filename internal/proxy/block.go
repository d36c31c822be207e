package proxy

import (
	"net/http"
	"strconv"
	"time"

	"github.com/svidgate/svidgate/internal/audit"
)

// block refuses a caller that was denied too often, for the cool-down of
// [ratelimit.abuse] (429). It runs before decide, so a blocked caller costs
// no policy evaluation, and its refusals do not extend the block.
func (h *handler) block(x *exchange) *refusal {
	lim := h.deps.Limits
	if lim == nil || lim.Blocker == nil {
		return nil
	}
	until, blocked := lim.Blocker.Blocked(x.caller, x.start)
	if !blocked {
		return nil
	}
	x.rw.Header().Set("Retry-After", strconv.Itoa(int(time.Until(until).Seconds())+1))
	return &refusal{status: http.StatusTooManyRequests, result: audit.ResultLimited,
		reason: "caller blocked until " + until.UTC().Format(time.RFC3339) + " after repeated denials",
		msg:    "too many requests: caller blocked after repeated denials"}
}

// countDenial counts a refused request towards abuse blocking when it was
// an authorization failure (401, 403) of a known caller.
func (h *handler) countDenial(x *exchange, r *refusal) {
	lim := h.deps.Limits
	if lim == nil || lim.Blocker == nil || x.caller == "" ||
		(r.status != http.StatusUnauthorized && r.status != http.StatusForbidden) {
		return
	}
	if lim.Blocker.Fail(x.caller, x.start) {
		h.deps.Log.Warn("caller blocked after repeated denials", "listener", h.name, "caller", x.caller)
	}
}
