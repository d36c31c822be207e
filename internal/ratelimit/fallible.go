package ratelimit

import (
	"context"
	"errors"
	"time"
)

// Fallible is a Limiter that turns every error of the Limiter it wraps into a
// decision, so the request path never has to handle one: with FailOpen the
// request is allowed, otherwise (the default, in keeping with failing closed)
// it is refused. Each error is passed to OnError, if set, for a metric and a
// rate-limited log line; Fallible itself logs nothing.
//
// Invalid limits are errors too and get the same treatment; validate limits
// with Limit.Validate when the configuration is loaded.
type Fallible struct {
	Limiter  Limiter
	FailOpen bool
	OnError  func(error) // called once per failed Allow; must be safe for concurrent use
}

var errNoLimiter = errors.New("ratelimit: Fallible has no Limiter")

// Allow asks f.Limiter and never returns an error. When f.Limiter fails, the
// Result has Allowed = f.FailOpen and Remaining 0; a refusal has RetryAfter
// Period/Count, the pace at which the limit lets requests through.
func (f Fallible) Allow(ctx context.Context, key string, l Limit) (Result, error) {
	err := errNoLimiter
	if f.Limiter != nil {
		var r Result
		if r, err = f.Limiter.Allow(ctx, key, l); err == nil {
			return r, nil
		}
	}
	if f.OnError != nil {
		f.OnError(err)
	}
	r := Result{Allowed: f.FailOpen, Limit: l.normalized(), Failed: true}
	if !r.Allowed {
		r.RetryAfter = time.Second
		if l.Count > 0 && l.Period > 0 {
			r.RetryAfter = max(l.Period/time.Duration(l.Count), time.Microsecond)
		}
	}
	return r, nil
}

var _ Limiter = Fallible{}
