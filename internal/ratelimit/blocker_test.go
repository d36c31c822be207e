package ratelimit

import (
	"slices"
	"strconv"
	"testing"
	"time"
)

func TestBlocker(t *testing.T) {
	const (
		window   = time.Minute
		cooldown = 5 * time.Minute
	)
	type step struct {
		at      time.Duration // since the test's epoch
		fail    bool          // Fail at `at`; otherwise only check
		started bool          // Fail's result
		blocked bool
		until   time.Duration
	}
	tests := []struct {
		name      string
		threshold int
		steps     []step
	}{
		{
			name: "more than threshold within window blocks", threshold: 3,
			steps: []step{
				{at: 0, fail: true},
				{at: time.Second, fail: true},
				{at: 2 * time.Second, fail: true},
				{at: 3 * time.Second, blocked: false},
				{at: 4 * time.Second, fail: true, started: true, blocked: true, until: 4*time.Second + cooldown},
				{at: 4*time.Second + cooldown - 1, blocked: true, until: 4*time.Second + cooldown},
				{at: 4*time.Second + cooldown, blocked: false},
			},
		},
		{
			name: "failures while blocked do not extend it", threshold: 1,
			steps: []step{
				{at: 0, fail: true},
				{at: 1, fail: true, started: true, blocked: true, until: cooldown + 1},
				{at: time.Minute, fail: true, blocked: true, until: cooldown + 1},
				{at: 4 * time.Minute, fail: true, blocked: true, until: cooldown + 1},
				{at: cooldown + 1, blocked: false},
			},
		},
		{
			name: "after the cooldown the count starts again", threshold: 1,
			steps: []step{
				{at: 0, fail: true},
				{at: 1, fail: true, started: true, blocked: true, until: cooldown + 1},
				{at: cooldown + 2, fail: true, blocked: false},
				{at: cooldown + 3, fail: true, started: true, blocked: true, until: 2*cooldown + 3},
			},
		},
		{
			name: "sliding window", threshold: 3,
			steps: []step{
				{at: 0, fail: true},
				{at: 30 * time.Second, fail: true},
				{at: 50 * time.Second, fail: true},
				{at: 60 * time.Second, fail: true}, // the first is exactly a window old: 3 within
				{at: 70 * time.Second, fail: true, started: true, blocked: true, until: 70*time.Second + cooldown}, // 30s, 50s, 60s, 70s: 4 within 40s
				{at: 71 * time.Second, blocked: true, until: 70*time.Second + cooldown},
			},
		},
		{
			name: "slow failures never block", threshold: 2,
			steps: []step{
				{at: 0, fail: true},
				{at: 30 * time.Second, fail: true},
				{at: 60 * time.Second, fail: true},
				{at: 90 * time.Second, fail: true},
				{at: 120 * time.Second, fail: true},
				{at: 120 * time.Second, blocked: false},
			},
		},
		{
			name: "threshold 0 blocks on the first failure", threshold: 0,
			steps: []step{
				{at: 0, blocked: false},
				{at: 0, fail: true, started: true, blocked: true, until: cooldown},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBlocker(tt.threshold, window, cooldown, 100)
			for i, s := range tt.steps {
				now := epoch.Add(s.at)
				if s.fail {
					if started := b.Fail("k", now); started != s.started {
						t.Fatalf("step %d: Fail started = %v, want %v", i, started, s.started)
					}
				}
				until, blocked := b.Blocked("k", now)
				wantUntil := time.Time{}
				if s.blocked {
					wantUntil = epoch.Add(s.until)
				}
				if blocked != s.blocked || !until.Equal(wantUntil) {
					t.Fatalf("step %d: Blocked = %v, %v; want %v, %v", i, until, blocked, wantUntil, s.blocked)
				}
			}
		})
	}
}

func TestBlockerList(t *testing.T) {
	b := NewBlocker(1, time.Minute, time.Hour, 100)
	for _, k := range []string{"c", "a", "b", "a", "c", "c", "c", "d"} {
		b.Fail(k, epoch)
	}
	want := []Block{
		{Key: "a", Until: epoch.Add(time.Hour), Failures: 2},
		{Key: "c", Until: epoch.Add(time.Hour), Failures: 4},
	}
	if got := b.List(epoch); !slices.Equal(got, want) {
		t.Fatalf("List = %+v, want %+v", got, want)
	}
	if got := b.List(epoch.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("List after the cooldown = %+v, want none", got)
	}
	if _, blocked := b.Blocked("b", epoch); blocked {
		t.Fatal("b blocked after one failure")
	}
}

func TestBlockerBounded(t *testing.T) {
	b := NewBlocker(2, time.Minute, time.Hour, 100)
	for i := range 100000 {
		b.Fail("k"+strconv.Itoa(i), epoch)
		if i%10000 == 0 && b.Len() > 100 {
			t.Fatalf("Len = %d > maxKeys 100 after %d keys", b.Len(), i+1)
		}
	}
	if n := b.Len(); n != 100 {
		t.Fatalf("Len = %d, want 100", n)
	}
	// Blocked does not add keys.
	for i := range 1000 {
		b.Blocked("unknown"+strconv.Itoa(i), epoch)
	}
	if n := b.Len(); n != 100 {
		t.Fatalf("Len = %d after lookups, want 100", n)
	}
}

func TestNewBlockerPanics(t *testing.T) {
	tests := []struct {
		threshold        int
		window, cooldown time.Duration
		maxKeys          int
		want             string
	}{
		{-1, time.Minute, time.Minute, 10, "ratelimit: NewBlocker: threshold must be between 0 and 1000, got -1"},
		{1001, time.Minute, time.Minute, 10, "ratelimit: NewBlocker: threshold must be between 0 and 1000, got 1001"},
		{1, 0, time.Minute, 10, "ratelimit: NewBlocker: window must be positive, got 0s"},
		{1, time.Minute, -1, 10, "ratelimit: NewBlocker: cooldown must be positive, got -1ns"},
		{1, time.Minute, time.Minute, 0, "ratelimit: NewBlocker: maxKeys must be at least 1, got 0"},
	}
	for _, tt := range tests {
		func() {
			defer func() {
				if r := recover(); r != tt.want {
					t.Errorf("recover() = %v, want %q", r, tt.want)
				}
			}()
			NewBlocker(tt.threshold, tt.window, tt.cooldown, tt.maxKeys)
		}()
	}
}
