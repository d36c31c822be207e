package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Limit is Count events per Period, of which up to Burst may come at once.
//
// Burst 0 means 1: requests are spaced at least Period/Count apart, the
// strictest reading of a bare rate. Set Burst to allow clients some
// parallelism, and set Burst = Count for a quota ("100000/day" spendable at
// any pace within the day).
type Limit struct {
	Count  int           // events per Period, at least 1
	Period time.Duration // at least Count microseconds
	Burst  int           // requests allowed at once; 0 means 1
}

// maxSpan bounds Period and Burst·Period/Count, so that arithmetic on
// timestamps cannot overflow: int64 nanoseconds here, and integers exactly
// representable in a float64 (microseconds since the Unix epoch) in the Redis
// script.
const maxSpan = 100 * 365 * 24 * time.Hour

// Validate reports whether l can be enforced. The error names the rule that
// l breaks; a configuration loader calls it so that a bad limit is rejected at
// start-up rather than at the first request.
func (l Limit) Validate() error {
	_, _, err := l.gcra()
	return err
}

// String formats l as "50/s burst 10"; periods of a whole second, minute,
// hour or day are written as in ParseRate.
func (l Limit) String() string {
	var unit string
	switch l.Period {
	case time.Second:
		unit = "s"
	case time.Minute:
		unit = "m"
	case time.Hour:
		unit = "h"
	case 24 * time.Hour:
		unit = "day"
	default:
		unit = l.Period.String()
	}
	return strconv.Itoa(l.Count) + "/" + unit + " burst " + strconv.Itoa(l.burst())
}

func (l Limit) burst() int {
	if l.Burst == 0 {
		return 1
	}
	return l.Burst
}

// normalized is l as enforced: Burst 0 replaced by 1.
func (l Limit) normalized() Limit {
	l.Burst = l.burst()
	return l
}

// gcra returns the emission interval T and the burst capacity Burst·T, in
// nanoseconds. T is rounded up to a whole microsecond, the resolution of the
// Redis clock, so that Local and Redis enforce the same limit and neither
// lets more than Count events through in a Period.
func (l Limit) gcra() (interval, capacity int64, err error) {
	switch {
	case l.Count < 1:
		return 0, 0, fmt.Errorf("ratelimit: limit %s: count must be at least 1", l)
	case l.Period <= 0:
		return 0, 0, fmt.Errorf("ratelimit: limit %s: period must be positive", l)
	case l.Period > maxSpan:
		return 0, 0, fmt.Errorf("ratelimit: limit %s: period must be at most 100 years", l)
	case l.Burst < 0:
		return 0, 0, fmt.Errorf("ratelimit: limit %s: burst must not be negative", l)
	case int64(l.Period)/int64(time.Microsecond) < int64(l.Count):
		return 0, 0, fmt.Errorf("ratelimit: limit %s: faster than one event per microsecond", l)
	}
	us := int64(time.Microsecond)
	perEvent := (int64(l.Period) + int64(l.Count) - 1) / int64(l.Count)
	interval = (perEvent + us - 1) / us * us
	b := int64(l.burst())
	if b > int64(maxSpan)/interval {
		return 0, 0, fmt.Errorf("ratelimit: limit %s: burst × period/count must be at most 100 years", l)
	}
	return interval, b * interval, nil
}

// ParseRate parses a rate written N/unit: "50/s", "3000/m", "100/h",
// "100000/day". The units are s (sec), m (min), h (hour) and day.
func ParseRate(s string) (count int, period time.Duration, err error) {
	slash := -1
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			slash = i
			break
		}
	}
	if slash < 1 || !allDigits(s[:slash]) {
		return 0, 0, fmt.Errorf("ratelimit: rate %q: expected N/s, N/m, N/h or N/day", s)
	}
	switch s[slash+1:] {
	case "s", "sec":
		period = time.Second
	case "m", "min":
		period = time.Minute
	case "h", "hour":
		period = time.Hour
	case "day":
		period = 24 * time.Hour
	default:
		return 0, 0, fmt.Errorf("ratelimit: rate %q: expected N/s, N/m, N/h or N/day", s)
	}
	count, err = strconv.Atoi(s[:slash])
	if err != nil {
		return 0, 0, fmt.Errorf("ratelimit: rate %q: count is too large", s)
	}
	switch {
	case count < 1:
		return 0, 0, fmt.Errorf("ratelimit: rate %q: count must be at least 1", s)
	case int64(period)/int64(time.Microsecond) < int64(count):
		return 0, 0, fmt.Errorf("ratelimit: rate %q: faster than one event per microsecond", s)
	}
	return count, period, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Result is the outcome of one Allow call, with what a RateLimit or
// Retry-After response header needs.
type Result struct {
	Allowed    bool
	Limit      Limit         // the limit applied, Burst 0 replaced by 1
	Remaining  int           // requests that would still be allowed right now
	RetryAfter time.Duration // when !Allowed: until one request would pass; else 0
	Reset      time.Duration // until the bucket is full again (Remaining = Burst)
	// Failed is set by Fallible when the backend failed: Allowed is then
	// the configured failure mode, not a verdict on the caller.
	Failed bool
}

// Limiter decides whether one more request under a limit is allowed.
type Limiter interface {
	// Allow takes one request from key's bucket under limit l. The key is
	// built by the caller, e.g. rule id + "\x00" + SPIFFE ID. An error means
	// that no decision was made (an invalid Limit, an unreachable backend);
	// the Result is then zero. See Fallible for turning errors into decisions.
	Allow(ctx context.Context, key string, l Limit) (Result, error)
}

// decide applies one GCRA step: tat is the bucket's stored TAT (or now for a
// bucket without state), all times in the same unit as interval and capacity.
// It returns the new TAT and whether the request is allowed.
func decide(tat, now, interval, capacity int64) (newTAT int64, allowed bool) {
	tat = max(tat, now)
	next := tat + interval
	if next-now > capacity {
		return tat, false
	}
	return next, true
}

// result builds the Result of a decision taken at now that left the bucket
// at tat (both in nanoseconds).
func result(l Limit, allowed bool, tat, now, interval, capacity int64) Result {
	reset := max(tat-now, 0)
	r := Result{
		Allowed:   allowed,
		Limit:     l.normalized(),
		Remaining: int(max((capacity-reset)/interval, 0)),
		Reset:     time.Duration(reset),
	}
	if !allowed {
		r.RetryAfter = time.Duration(reset + interval - capacity)
	}
	return r
}
