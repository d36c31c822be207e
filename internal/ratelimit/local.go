package ratelimit

import (
	"context"
	"time"
)

// Local is a Limiter whose buckets live in this process.
//
// Buckets are kept in a table of at most maxKeys keys; when it is full, the
// least recently used key of the new key's shard is forgotten. A forgotten
// bucket starts again full, so maxKeys should comfortably exceed the number of
// callers that are active within one limit's window; Len tells how many are
// tracked. The table is split into independently locked shards, so a noisy
// key contends only with the keys of its own shard.
//
// Allow on a key already in the table does not allocate.
type Local struct {
	now  func() time.Time // nil: the monotonic clock, read with time.Since
	base time.Time
	t    *table[localBucket]
}

type localBucket struct {
	tat int64 // theoretical arrival time, nanoseconds since Local.base
}

// LocalOption configures a Local.
type LocalOption func(*Local)

// WithClock makes a Local read the time from now instead of time.Now. Tests
// pass a fake clock; now must be safe for concurrent use.
func WithClock(now func() time.Time) LocalOption {
	return func(l *Local) { l.now = now }
}

// NewLocal returns a Local that tracks at most maxKeys keys. It panics if
// maxKeys is less than 1.
func NewLocal(maxKeys int, opts ...LocalOption) *Local {
	l := &Local{t: newTable[localBucket]("NewLocal", maxKeys)}
	for _, o := range opts {
		o(l)
	}
	l.base = time.Now()
	if l.now != nil {
		l.base = l.now()
	}
	return l
}

// Allow takes one request from key's bucket under limit lim. It returns an
// error only for an invalid limit; ctx is not used.
func (l *Local) Allow(_ context.Context, key string, lim Limit) (Result, error) {
	interval, capacity, err := lim.gcra()
	if err != nil {
		return Result{}, err
	}
	var now int64
	if l.now == nil {
		now = int64(time.Since(l.base))
	} else {
		now = int64(l.now().Sub(l.base))
	}

	s := l.t.shard(key)
	s.mu.Lock()
	b, ok := s.lru.Get(key)
	if !ok {
		b = &localBucket{tat: now}
		s.lru.Add(key, b)
	}
	tat, allowed := decide(b.tat, now, interval, capacity)
	b.tat = tat
	s.mu.Unlock()

	return result(lim, allowed, tat, now, interval, capacity), nil
}

// Len returns the number of keys tracked, for a "tracked callers" gauge.
func (l *Local) Len() int { return l.t.len() }

var _ Limiter = (*Local)(nil)
