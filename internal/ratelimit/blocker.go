package ratelimit

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// MaxThreshold bounds a Blocker's threshold: a key keeps the times of its
// last threshold+1 failures.
const MaxThreshold = 1000

// Blocker blocks keys that fail authorization too often: after more than
// threshold failures within window (a sliding window: the failures counted
// are those less than window before the latest), the key is blocked for
// cooldown. Failures while blocked are counted but do not extend the block;
// when the block ends, the key starts again with no failures.
//
// Keys are tracked in a table of at most maxKeys keys, evicting the least
// recently used (a lookup with Blocked counts as a use, so a blocked key that
// keeps knocking stays tracked). Each key costs at most threshold+1
// timestamps.
type Blocker struct {
	threshold int
	window    time.Duration
	cooldown  time.Duration
	t         *table[blockEntry]
}

type blockEntry struct {
	fails    []int64 // Unix nanoseconds of the last failures, a ring once full
	next     int     // where the next failure goes once fails is full
	until    time.Time
	failures int // failures that caused the current block, and since
}

// Block is a blocked key, as listed for a status page.
type Block struct {
	Key      string
	Until    time.Time
	Failures int // the failures that caused the block and those since
}

// NewBlocker returns a Blocker. It panics if threshold is negative or above
// 1000, window or cooldown is not positive, or maxKeys is less than 1.
func NewBlocker(threshold int, window, cooldown time.Duration, maxKeys int) *Blocker {
	switch {
	case threshold < 0 || threshold > MaxThreshold:
		panic(fmt.Sprintf("ratelimit: NewBlocker: threshold must be between 0 and %d, got %d", MaxThreshold, threshold))
	case window <= 0:
		panic(fmt.Sprintf("ratelimit: NewBlocker: window must be positive, got %s", window))
	case cooldown <= 0:
		panic(fmt.Sprintf("ratelimit: NewBlocker: cooldown must be positive, got %s", cooldown))
	}
	return &Blocker{threshold: threshold, window: window, cooldown: cooldown, t: newTable[blockEntry]("NewBlocker", maxKeys)}
}

// Fail counts one authorization failure (a 401 or 403) of key at now. It
// reports whether this failure started a block, so that the caller can log
// the block once.
func (b *Blocker) Fail(key string, now time.Time) (started bool) {
	s := b.t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.lru.Get(key)
	if !ok {
		e = &blockEntry{}
		s.lru.Add(key, e)
	}
	if !e.until.IsZero() {
		if now.Before(e.until) {
			e.failures++
			return false
		}
		*e = blockEntry{fails: e.fails[:0]}
	}

	t := now.UnixNano()
	if len(e.fails) <= b.threshold {
		e.fails = append(e.fails, t)
	} else {
		e.fails[e.next] = t
		e.next = (e.next + 1) % len(e.fails)
	}
	if len(e.fails) <= b.threshold {
		return false
	}
	oldest := e.fails[e.next] // the threshold+1'th most recent failure
	if t-oldest >= int64(b.window) {
		return false
	}
	e.until = now.Add(b.cooldown)
	e.failures = len(e.fails)
	return true
}

// Blocked reports whether key is blocked at now, and until when.
func (b *Blocker) Blocked(key string, now time.Time) (until time.Time, blocked bool) {
	s := b.t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.lru.Get(key)
	if !ok || !now.Before(e.until) {
		return time.Time{}, false
	}
	return e.until, true
}

// List returns the keys blocked at now, ordered by key.
func (b *Blocker) List(now time.Time) []Block {
	var out []Block
	for i := range b.t.shards {
		s := &b.t.shards[i]
		s.mu.Lock()
		for _, k := range s.lru.Keys() {
			if e, ok := s.lru.Peek(k); ok && now.Before(e.until) {
				out = append(out, Block{Key: k, Until: e.until, Failures: e.failures})
			}
		}
		s.mu.Unlock()
	}
	slices.SortFunc(out, func(x, y Block) int { return strings.Compare(x.Key, y.Key) })
	return out
}

// Len returns the number of keys tracked, blocked or not.
func (b *Blocker) Len() int { return b.t.len() }
