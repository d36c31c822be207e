package ratelimit

import (
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// maxShards is the number of independently locked shards of a table: enough
// that one hot key contends with few others, few enough that a small table
// still spreads its capacity evenly.
const maxShards = 32

// table is a bounded map from key to *V, split by key hash into shards that
// each hold a least-recently-used list of at most their share of maxKeys.
// The shares add up to maxKeys, so the table never holds more.
type table[V any] struct {
	seed   maphash.Seed
	mask   uint64
	shards []shard[V]
}

type shard[V any] struct {
	mu  sync.Mutex
	lru *simplelru.LRU[string, *V]
	_   [48]byte // keep shards' mutexes on separate cache lines
}

func newTable[V any](who string, maxKeys int) *table[V] {
	if maxKeys < 1 {
		panic(fmt.Sprintf("ratelimit: %s: maxKeys must be at least 1, got %d", who, maxKeys))
	}
	n := maxShards
	for n > maxKeys {
		n /= 2
	}
	t := &table[V]{seed: maphash.MakeSeed(), mask: uint64(n - 1), shards: make([]shard[V], n)}
	for i := range t.shards {
		size := maxKeys / n
		if i < maxKeys%n {
			size++
		}
		lru, err := simplelru.NewLRU[string, *V](size, nil)
		if err != nil { // size ≥ 1 by construction
			panic("ratelimit: " + err.Error())
		}
		t.shards[i].lru = lru
	}
	return t
}

// shard returns the shard that holds key.
func (t *table[V]) shard(key string) *shard[V] {
	return &t.shards[maphash.String(t.seed, key)&t.mask]
}

// len counts the keys held, shard by shard.
func (t *table[V]) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += s.lru.Len()
		s.mu.Unlock()
	}
	return n
}
