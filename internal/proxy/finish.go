package proxy

import (
	"net/http"
	"time"
)

// finish is the audit finisher: it runs after the last stage that ran,
// whatever the outcome, releases what throttle held, completes and
// enqueues the audit record and counts the request. It runs deferred, so a
// response aborted mid-stream is audited too.
func (h *handler) finish(x *exchange) {
	x.ticket.Release()
	rec, rw := &x.rec, x.rw
	status := rw.status
	if status == 0 {
		status = http.StatusOK
	}
	rec.Status = status
	rec.BytesIn = rw.body.n
	rec.BytesOut = rw.written
	elapsed := time.Since(x.start)
	rec.DurationMS = ms(elapsed)
	if h.deps.Audit != nil {
		rec.ID = h.deps.Audit.NextID()
		_ = h.deps.Audit.Enqueue(rec) // a failure is counted by the writer
	}
	h.codes[min(max(status/100, 1), 5)-1].Inc()
	h.duration.Observe(elapsed.Seconds())
}
