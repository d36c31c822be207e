package ratelimit

import (
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// InFlight caps the number of concurrent requests per key.
//
// Only keys with a request in flight are tracked: a key's entry is removed
// when its last request is released. The table holds at most maxKeys keys;
// when it is full, Acquire refuses requests of keys not already in it. Sized
// at least the server's maximum number of concurrent requests, it can never be
// full.
type InFlight struct {
	seed    maphash.Seed
	mask    uint64
	maxKeys int64
	keys    atomic.Int64
	shards  []inflightShard
}

type inflightShard struct {
	mu sync.Mutex
	n  map[string]int // requests in flight per key; absent means 0
	_  [48]byte
}

// Ticket is one acquired slot. Release it exactly when the request ends,
// typically with defer; the zero Ticket's Release does nothing.
type Ticket struct {
	f    *InFlight
	key  string
	done bool
}

// NewInFlight returns an InFlight that tracks at most maxKeys keys. It panics
// if maxKeys is less than 1.
func NewInFlight(maxKeys int) *InFlight {
	if maxKeys < 1 {
		panic(fmt.Sprintf("ratelimit: NewInFlight: maxKeys must be at least 1, got %d", maxKeys))
	}
	f := &InFlight{seed: maphash.MakeSeed(), mask: maxShards - 1, maxKeys: int64(maxKeys), shards: make([]inflightShard, maxShards)}
	for i := range f.shards {
		f.shards[i].n = make(map[string]int)
	}
	return f
}

func (f *InFlight) shard(key string) *inflightShard {
	return &f.shards[maphash.String(f.seed, key)&f.mask]
}

// Acquire takes a slot for key if fewer than max of its requests are in
// flight. With ok, the returned Ticket must be released; without, there is
// nothing to release. A max below 1 refuses every request. Acquire does not
// allocate for a key that already has a request in flight.
func (f *InFlight) Acquire(key string, max int) (t Ticket, ok bool) {
	s := f.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	n, tracked := s.n[key]
	switch {
	case n >= max:
		return Ticket{}, false
	case !tracked:
		if f.keys.Add(1) > f.maxKeys {
			f.keys.Add(-1)
			return Ticket{}, false
		}
	}
	s.n[key] = n + 1
	return Ticket{f: f, key: key}, true
}

// Release frees the slot. Calling it again on the same Ticket does nothing.
func (t *Ticket) Release() {
	if t.f == nil || t.done {
		return
	}
	t.done = true
	s := t.f.shard(t.key)
	s.mu.Lock()
	switch n := s.n[t.key]; {
	case n > 1:
		s.n[t.key] = n - 1
	case n == 1:
		delete(s.n, t.key)
		t.f.keys.Add(-1)
	}
	s.mu.Unlock()
}

// InUse returns the number of key's requests in flight.
func (f *InFlight) InUse(key string) int {
	s := f.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[key]
}

// Len returns the number of keys with a request in flight.
func (f *InFlight) Len() int { return int(f.keys.Load()) }
