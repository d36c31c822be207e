package ratelimit

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

func TestInFlightCap(t *testing.T) {
	tests := []struct {
		name  string
		max   int
		steps []string // "+" acquire expecting ok, "x" acquire expecting refusal, "-" release the oldest ticket, "=" release it again
		inUse int
	}{
		{name: "cap 2", max: 2, steps: []string{"+", "+", "x", "x"}, inUse: 2},
		{name: "release frees", max: 2, steps: []string{"+", "+", "x", "-", "+", "x"}, inUse: 2},
		{name: "release is idempotent", max: 2, steps: []string{"+", "+", "-", "=", "=", "+", "x"}, inUse: 2},
		{name: "all released", max: 1, steps: []string{"+", "-", "+", "-"}, inUse: 0},
		{name: "max 0 refuses", max: 0, steps: []string{"x", "x"}, inUse: 0},
		{name: "negative max refuses", max: -1, steps: []string{"x"}, inUse: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewInFlight(10)
			var held []*Ticket
			var released *Ticket
			for i, s := range tt.steps {
				switch s {
				case "+", "x":
					tk, ok := f.Acquire("k", tt.max)
					if ok != (s == "+") {
						t.Fatalf("step %d: Acquire ok = %v, want %v (in use %d)", i, ok, s == "+", f.InUse("k"))
					}
					if ok {
						held = append(held, &tk)
					}
				case "-":
					released, held = held[0], held[1:]
					released.Release()
				case "=":
					released.Release()
				}
			}
			if n := f.InUse("k"); n != tt.inUse {
				t.Fatalf("InUse = %d, want %d", n, tt.inUse)
			}
			for _, tk := range held {
				tk.Release()
			}
			if f.Len() != 0 || f.InUse("k") != 0 {
				t.Fatalf("after releasing all: Len %d, InUse %d; want 0, 0", f.Len(), f.InUse("k"))
			}
		})
	}
}

func TestInFlightZeroTicket(t *testing.T) {
	var tk Ticket
	tk.Release() // must not panic
	f := NewInFlight(1)
	if _, ok := f.Acquire("k", 0); ok {
		t.Fatal("max 0 allowed a request")
	}
	if f.Len() != 0 {
		t.Fatalf("a refusal left a key tracked: Len %d", f.Len())
	}
}

func TestInFlightBounded(t *testing.T) {
	f := NewInFlight(3)
	var held []Ticket
	for i := range 3 {
		tk, ok := f.Acquire("k"+strconv.Itoa(i), 5)
		if !ok {
			t.Fatalf("key %d refused with room in the table", i)
		}
		held = append(held, tk)
	}
	if _, ok := f.Acquire("new", 5); ok {
		t.Fatal("a new key was admitted to a full table")
	}
	more, ok := f.Acquire("k0", 5) // a tracked key still gets its slots
	if !ok {
		t.Fatal("a tracked key was refused because the table is full")
	}
	more.Release()
	held[0].Release()
	if _, ok := f.Acquire("new", 5); !ok {
		t.Fatal("a new key was refused after a key left the table")
	}
	if n := f.Len(); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
	for i := range 100000 { // a flood of distinct keys, each refused
		if _, ok := f.Acquire("flood"+strconv.Itoa(i), 5); ok {
			t.Fatal("flood key admitted")
		}
	}
	if n := f.Len(); n != 3 {
		t.Fatalf("Len = %d after a flood, want 3", n)
	}
}

// TestInFlightConcurrent checks under -race that no more than max requests
// of a key are ever in flight at once.
func TestInFlightConcurrent(t *testing.T) {
	f := NewInFlight(100)
	const max, goroutines, rounds = 3, 32, 300
	var cur, peak, admitted atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range rounds {
				tk, ok := f.Acquire("hot", max)
				if !ok {
					continue
				}
				admitted.Add(1)
				n := cur.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				cur.Add(-1)
				tk.Release()
				tk.Release()
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > max {
		t.Fatalf("%d requests in flight at once, max %d", p, max)
	}
	if admitted.Load() == 0 || f.Len() != 0 || f.InUse("hot") != 0 {
		t.Fatalf("admitted %d, Len %d, InUse %d; want some admitted and nothing left", admitted.Load(), f.Len(), f.InUse("hot"))
	}
}

func TestInFlightDoesNotAllocate(t *testing.T) {
	f := NewInFlight(10)
	key := "rule\x00spiffe://example.org/ns/default/sa/client"
	hold, _ := f.Acquire(key, 100)
	defer hold.Release()
	n := testing.AllocsPerRun(1000, func() {
		tk, ok := f.Acquire(key, 100)
		if ok {
			tk.Release()
		}
	})
	if n != 0 {
		t.Fatalf("Acquire and Release on a tracked key: %v allocations, want 0", n)
	}
}
