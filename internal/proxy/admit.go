package proxy

import (
	"net/http"

	"github.com/svidgate/svidgate/internal/audit"
)

// admit refuses the request (503) when the audit trail cannot take its
// record and on_failure is "block": nothing is served unaudited. An
// admitted record holds its place in the queue until finish enqueues it.
func (h *handler) admit(x *exchange) *refusal {
	if h.deps.Audit == nil || h.deps.Audit.Admit(&x.rec) {
		return nil
	}
	return &refusal{status: http.StatusServiceUnavailable, result: audit.ResultError,
		reason: "audit trail cannot keep records (on_failure = block)",
		msg:    "service unavailable: the audit trail cannot keep records"}
}
