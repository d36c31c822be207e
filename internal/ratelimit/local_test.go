package ratelimit

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told to.
type fakeClock struct{ ns atomic.Int64 }

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *fakeClock) now() time.Time          { return epoch.Add(time.Duration(c.ns.Load())) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// step is one Allow call, after advancing the clock by advance, repeated
// times (default once); the want fields are checked on the last call and
// every call must have the same Allowed.
type step struct {
	advance   time.Duration
	times     int
	allowed   bool
	remaining int
	retry     time.Duration
	reset     time.Duration
}

var sequenceTests = []struct {
	name  string
	limit Limit
	steps []step
}{
	{
		name:  "burst then refusal then refill",
		limit: Limit{Count: 10, Period: time.Second, Burst: 3}, // T = 100ms
		steps: []step{
			{allowed: true, remaining: 2, reset: 100 * time.Millisecond},
			{allowed: true, remaining: 1, reset: 200 * time.Millisecond},
			{allowed: true, remaining: 0, reset: 300 * time.Millisecond},
			{allowed: false, remaining: 0, retry: 100 * time.Millisecond, reset: 300 * time.Millisecond},
			{advance: 40 * time.Millisecond, allowed: false, remaining: 0, retry: 60 * time.Millisecond, reset: 260 * time.Millisecond},
			{advance: 60 * time.Millisecond, allowed: true, remaining: 0, reset: 300 * time.Millisecond},
			{allowed: false, remaining: 0, retry: 100 * time.Millisecond, reset: 300 * time.Millisecond},
			{advance: 250 * time.Millisecond, allowed: true, remaining: 1, reset: 150 * time.Millisecond},
			{advance: time.Second, allowed: true, remaining: 2, reset: 100 * time.Millisecond},
		},
	},
	{
		name:  "burst 0 means 1",
		limit: Limit{Count: 2, Period: time.Second},
		steps: []step{
			{allowed: true, remaining: 0, reset: 500 * time.Millisecond},
			{allowed: false, remaining: 0, retry: 500 * time.Millisecond, reset: 500 * time.Millisecond},
			{advance: 499 * time.Millisecond, allowed: false, remaining: 0, retry: time.Millisecond, reset: time.Millisecond},
			{advance: time.Millisecond, allowed: true, remaining: 0, reset: 500 * time.Millisecond},
		},
	},
	{
		name:  "daily quota",
		limit: Limit{Count: 100000, Period: 24 * time.Hour, Burst: 100000}, // T = 864ms
		steps: []step{
			{allowed: true, remaining: 99999, reset: 864 * time.Millisecond},
			{times: 99999, allowed: true, remaining: 0, reset: 24 * time.Hour},
			{allowed: false, remaining: 0, retry: 864 * time.Millisecond, reset: 24 * time.Hour},
			{advance: 12 * time.Hour, allowed: true, remaining: 49999, reset: 12*time.Hour + 864*time.Millisecond},
			{times: 49999, allowed: true, remaining: 0, reset: 24 * time.Hour},
			{advance: 863 * time.Millisecond, allowed: false, remaining: 0, retry: time.Millisecond, reset: 24*time.Hour - 863*time.Millisecond},
			{advance: 25 * time.Hour, allowed: true, remaining: 99999, reset: 864 * time.Millisecond},
		},
	},
	{
		name:  "interval rounded up",
		limit: Limit{Count: 3, Period: time.Second, Burst: 3}, // T = 333.334ms
		steps: []step{
			{times: 3, allowed: true, remaining: 0, reset: 1000002 * time.Microsecond},
			{allowed: false, remaining: 0, retry: 333334 * time.Microsecond, reset: 1000002 * time.Microsecond},
			{advance: 333333 * time.Microsecond, allowed: false, remaining: 0, retry: time.Microsecond, reset: 666669 * time.Microsecond},
		},
	},
}

func runSteps(t *testing.T, allow func(Limit) (Result, error), advance func(time.Duration), l Limit, steps []step) {
	t.Helper()
	for i, s := range steps {
		advance(s.advance)
		var r Result
		for n := range max(s.times, 1) {
			var err error
			if r, err = allow(l); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if r.Allowed != s.allowed {
				t.Fatalf("step %d, call %d: Allowed = %v, want %v (%+v)", i, n, r.Allowed, s.allowed, r)
			}
		}
		want := Result{Allowed: s.allowed, Limit: l.normalized(), Remaining: s.remaining, RetryAfter: s.retry, Reset: s.reset}
		if r != want {
			t.Fatalf("step %d:\n got %+v\nwant %+v", i, r, want)
		}
	}
}

func TestLocalSequence(t *testing.T) {
	for _, tt := range sequenceTests {
		t.Run(tt.name, func(t *testing.T) {
			var c fakeClock
			l := NewLocal(10, WithClock(c.now))
			allow := func(lim Limit) (Result, error) { return l.Allow(context.Background(), "k", lim) }
			runSteps(t, allow, c.advance, tt.limit, tt.steps)
		})
	}
}

func TestLocalKeysIndependent(t *testing.T) {
	var c fakeClock
	l := NewLocal(100, WithClock(c.now))
	lim := Limit{Count: 1, Period: time.Hour, Burst: 2}
	ctx := context.Background()
	for _, key := range []string{"rule\x00spiffe://a/x", "rule\x00spiffe://a/y", "other\x00spiffe://a/x"} {
		for i, want := range []bool{true, true, false} {
			r, err := l.Allow(ctx, key, lim)
			if err != nil || r.Allowed != want {
				t.Fatalf("%q call %d: %+v, %v; want Allowed %v", key, i, r, err, want)
			}
		}
	}
	if got := l.Len(); got != 3 {
		t.Fatalf("Len() = %d, want 3", got)
	}
}

func TestLocalBounded(t *testing.T) {
	tests := []struct {
		maxKeys, keys int
	}{
		{maxKeys: 1, keys: 1000},
		{maxKeys: 5, keys: 1000},
		{maxKeys: 33, keys: 10000},
		{maxKeys: 1000, keys: 1000000},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.maxKeys), func(t *testing.T) {
			var c fakeClock
			l := NewLocal(tt.maxKeys, WithClock(c.now))
			lim := Limit{Count: 1, Period: time.Hour}
			ctx := context.Background()
			for i := range tt.keys {
				if _, err := l.Allow(ctx, "k"+strconv.Itoa(i), lim); err != nil {
					t.Fatal(err)
				}
				if i%100000 == 0 {
					if n := l.Len(); n > tt.maxKeys {
						t.Fatalf("after %d keys Len() = %d > maxKeys %d", i+1, n, tt.maxKeys)
					}
				}
			}
			if n := l.Len(); n != tt.maxKeys {
				t.Fatalf("Len() = %d after %d keys, want maxKeys %d", n, tt.keys, tt.maxKeys)
			}
			// The most recent key is still tracked: its bucket is empty.
			r, err := l.Allow(ctx, "k"+strconv.Itoa(tt.keys-1), lim)
			if err != nil || r.Allowed {
				t.Fatalf("most recent key: %+v, %v; want refused", r, err)
			}
		})
	}
}

// TestLocalConcurrent hammers a few shared keys from many goroutines with the
// clock stopped: exactly Burst requests per key must be allowed.
func TestLocalConcurrent(t *testing.T) {
	var c fakeClock
	l := NewLocal(1000, WithClock(c.now))
	lim := Limit{Count: 1, Period: time.Hour, Burst: 100}
	const keys, goroutines, calls = 8, 32, 500
	var allowed [keys]atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			ctx := context.Background()
			for i := range calls {
				k := (g + i) % keys
				r, err := l.Allow(ctx, "key"+strconv.Itoa(k), lim)
				if err != nil {
					t.Error(err)
					return
				}
				if r.Allowed {
					allowed[k].Add(1)
				}
				// Distinct keys too, to exercise eviction under contention.
				l.Allow(ctx, "noise"+strconv.Itoa(g*calls+i), lim)
			}
		})
	}
	wg.Wait()
	for k := range allowed {
		if n := allowed[k].Load(); n != int64(lim.Burst) {
			t.Errorf("key%d: %d allowed, want %d", k, n, lim.Burst)
		}
	}
	if n := l.Len(); n > 1000 {
		t.Errorf("Len() = %d > 1000", n)
	}
}

func TestLocalAllowDoesNotAllocate(t *testing.T) {
	l := NewLocal(100)
	ctx := context.Background()
	lim := Limit{Count: 1000000, Period: time.Second, Burst: 10}
	key := "rule\x00spiffe://example.org/ns/default/sa/client"
	l.Allow(ctx, key, lim)
	if n := testing.AllocsPerRun(1000, func() { l.Allow(ctx, key, lim) }); n != 0 {
		t.Fatalf("Allow on an existing key: %v allocations, want 0", n)
	}
}

func TestLocalInvalidLimit(t *testing.T) {
	l := NewLocal(10)
	r, err := l.Allow(context.Background(), "k", Limit{Count: 0, Period: time.Second})
	if err == nil || r != (Result{}) {
		t.Fatalf("Allow(invalid) = %+v, %v; want zero Result and an error", r, err)
	}
	if l.Len() != 0 {
		t.Fatalf("an invalid limit created state: Len() = %d", l.Len())
	}
}

func TestNewLocalPanics(t *testing.T) {
	defer func() {
		if r := recover(); r != "ratelimit: NewLocal: maxKeys must be at least 1, got 0" {
			t.Fatalf("recover() = %v", r)
		}
	}()
	NewLocal(0)
}
