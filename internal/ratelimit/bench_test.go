package ratelimit

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"time"
)

var benchLimit = Limit{Count: 1000000, Period: time.Second, Burst: 1000}

const benchKey = "rule-7\x00spiffe://example.org/ns/payments/sa/checkout"

// BenchmarkLocalAllow is Allow on a key already tracked.
func BenchmarkLocalAllow(b *testing.B) {
	l := NewLocal(100000)
	ctx := context.Background()
	l.Allow(ctx, benchKey, benchLimit)
	b.ReportAllocs()
	for b.Loop() {
		l.Allow(ctx, benchKey, benchLimit)
	}
}

// BenchmarkLocalAllowParallel is Allow from all CPUs, each goroutine on its
// own tracked key, so shards contend only by hash collisions.
func BenchmarkLocalAllowParallel(b *testing.B) {
	l := NewLocal(100000)
	ctx := context.Background()
	b.ReportAllocs()
	var id int64
	var mu = make(chan struct{}, 1)
	b.RunParallel(func(pb *testing.PB) {
		mu <- struct{}{}
		id++
		key := benchKey + strconv.FormatInt(id, 10)
		<-mu
		for pb.Next() {
			l.Allow(ctx, key, benchLimit)
		}
	})
}

// BenchmarkLocalDistinctKeys cycles through 1,000,000 distinct keys with
// maxKeys 100,000, so nearly every call evicts; it reports the heap the full
// table holds per tracked key (key bytes excluded: the keys are shared with
// the benchmark's own slice).
func BenchmarkLocalDistinctKeys(b *testing.B) {
	const distinct, maxKeys = 1000000, 100000
	keys := make([]string, distinct)
	for i := range keys {
		keys[i] = "rule-7\x00spiffe://example.org/ns/tenant-" + strconv.Itoa(i) + "/sa/client"
	}
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l := NewLocal(maxKeys)
	for _, k := range keys { // fill the table before timing
		l.Allow(ctx, k, benchLimit)
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		l.Allow(ctx, keys[i], benchLimit)
		if i++; i == distinct {
			i = 0
		}
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	n := l.Len()
	b.ReportMetric(float64(n), "keys")
	b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/float64(n), "heap-B/key")
	runtime.KeepAlive(keys)
	runtime.KeepAlive(l)
}

// BenchmarkRedisAllow is one Allow round trip to a real local redis-server.
func BenchmarkRedisAllow(b *testing.B) {
	s := startRedis(b)
	r := newTestRedis(b, s)
	ctx := context.Background()
	if _, err := r.Allow(ctx, benchKey, benchLimit); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Allow(ctx, benchKey, benchLimit); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedisAllowParallel is Allow from all CPUs on distinct keys, over
// the client's connection pool.
func BenchmarkRedisAllowParallel(b *testing.B) {
	s := startRedis(b)
	r := newTestRedis(b, s)
	ctx := context.Background()
	b.ReportAllocs()
	var id int64
	var mu = make(chan struct{}, 1)
	b.RunParallel(func(pb *testing.PB) {
		mu <- struct{}{}
		id++
		key := benchKey + strconv.FormatInt(id, 10)
		<-mu
		for pb.Next() {
			if _, err := r.Allow(ctx, key, benchLimit); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkInFlight is Acquire and Release on a key with a request in flight.
func BenchmarkInFlight(b *testing.B) {
	f := NewInFlight(100000)
	hold, _ := f.Acquire(benchKey, 1<<30)
	defer hold.Release()
	b.ReportAllocs()
	for b.Loop() {
		tk, _ := f.Acquire(benchKey, 1<<30)
		tk.Release()
	}
}

// BenchmarkBlocked is the per-request check of a key that is not blocked.
func BenchmarkBlocked(b *testing.B) {
	bl := NewBlocker(10, time.Minute, time.Hour, 100000)
	now := time.Now()
	bl.Fail(benchKey, now)
	b.ReportAllocs()
	for b.Loop() {
		bl.Blocked(benchKey, now)
	}
}
