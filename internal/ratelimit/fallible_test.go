package ratelimit

import (
	"context"
	"errors"
	"testing"
	"time"
)

// stubLimiter returns a fixed Result and error.
type stubLimiter struct {
	res Result
	err error
}

func (s stubLimiter) Allow(context.Context, string, Limit) (Result, error) { return s.res, s.err }

func TestFallible(t *testing.T) {
	lim := Limit{Count: 50, Period: time.Second, Burst: 5}
	ok := Result{Allowed: true, Limit: lim, Remaining: 4, Reset: 20 * time.Millisecond}
	refused := Result{Limit: lim, RetryAfter: 20 * time.Millisecond, Reset: 100 * time.Millisecond}
	boom := errors.New("ratelimit: redis 127.0.0.1:6379: connection refused")
	tests := []struct {
		name     string
		limiter  Limiter
		failOpen bool
		want     Result
		reported error
	}{
		{name: "allowed passes through", limiter: stubLimiter{res: ok}, want: ok},
		{name: "refused passes through fail-open", limiter: stubLimiter{res: refused}, failOpen: true, want: refused},
		{name: "error fail-closed", limiter: stubLimiter{err: boom},
			want: Result{Limit: lim, RetryAfter: 20 * time.Millisecond, Failed: true}, reported: boom},
		{name: "error fail-open", limiter: stubLimiter{err: boom}, failOpen: true,
			want: Result{Allowed: true, Limit: lim, Failed: true}, reported: boom},
		{name: "no limiter fails closed", want: Result{Limit: lim, RetryAfter: 20 * time.Millisecond, Failed: true}, reported: errNoLimiter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reported []error
			f := Fallible{Limiter: tt.limiter, FailOpen: tt.failOpen, OnError: func(err error) { reported = append(reported, err) }}
			got, err := f.Allow(context.Background(), "k", lim)
			if err != nil || got != tt.want {
				t.Fatalf("Allow() = %+v, %v; want %+v", got, err, tt.want)
			}
			switch {
			case tt.reported == nil && len(reported) != 0:
				t.Fatalf("reported %v on success", reported)
			case tt.reported != nil && (len(reported) != 1 || reported[0] != tt.reported):
				t.Fatalf("reported %v, want [%v]", reported, tt.reported)
			}
		})
	}
}

func TestFallibleInvalidLimit(t *testing.T) {
	var reported error
	f := Fallible{Limiter: NewLocal(10), OnError: func(err error) { reported = err }}
	got, err := f.Allow(context.Background(), "k", Limit{Count: 0, Period: time.Second})
	if err != nil || got.Allowed || got.RetryAfter != time.Second || reported == nil {
		t.Fatalf("Allow(invalid) = %+v, %v, reported %v; want refused, retry 1s, reported", got, err, reported)
	}
	// Without OnError, errors are still turned into decisions.
	f = Fallible{Limiter: stubLimiter{err: errors.New("x")}, FailOpen: true}
	if got, err := f.Allow(context.Background(), "k", Limit{Count: 1, Period: time.Second}); err != nil || !got.Allowed {
		t.Fatalf("Allow() without OnError = %+v, %v", got, err)
	}
}
