package ratelimit

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newTestRedis(t testing.TB, s *redisServer, opts ...func(*RedisOptions)) *Redis {
	o := RedisOptions{Addr: s.addr}
	for _, f := range opts {
		f(&o)
	}
	r := NewRedis(o)
	t.Cleanup(func() { r.Close() })
	return r
}

// within reports whether got is in (want-slack, want]: durations measured
// on the server's running clock shrink by the time between calls.
func within(got, want, slack time.Duration) bool {
	return got <= want && got > want-slack
}

func TestRedisSequence(t *testing.T) {
	s := startRedis(t)
	r := newTestRedis(t, s)
	ctx := context.Background()
	lim := Limit{Count: 3, Period: time.Hour, Burst: 3} // T = 20m
	T := 20 * time.Minute
	const slack = 5 * time.Second
	for i, want := range []struct {
		allowed   bool
		remaining int
		retry     time.Duration
		reset     time.Duration
	}{
		{true, 2, 0, T},
		{true, 1, 0, 2 * T},
		{true, 0, 0, 3 * T},
		{false, 0, T, 3 * T},
	} {
		got, err := r.Allow(ctx, "k", lim)
		if err != nil {
			t.Fatal(err)
		}
		if got.Allowed != want.allowed || got.Remaining != want.remaining || got.Limit != lim ||
			!within(got.Reset, want.reset, slack) || (want.retry == 0) != (got.RetryAfter == 0) ||
			(want.retry != 0 && !within(got.RetryAfter, want.retry, slack)) {
			t.Fatalf("call %d: %+v, want %+v", i, got, want)
		}
	}
}

// TestRedisSharedAcrossReplicas sends a burst of concurrent requests through
// two Redis limiters ("replicas") on one server. The script is atomic, so the
// total allowed is exactly Burst plus what refills during the burst; with
// T = 6 minutes nothing refills.
func TestRedisSharedAcrossReplicas(t *testing.T) {
	s := startRedis(t)
	replicas := []*Redis{newTestRedis(t, s), newTestRedis(t, s)}
	tests := []struct {
		name     string
		limit    Limit
		requests int
	}{
		{"burst 10", Limit{Count: 10, Period: time.Hour, Burst: 10}, 200},
		{"burst 1", Limit{Count: 10, Period: time.Hour}, 100},
		{"quota", Limit{Count: 100, Period: 24 * time.Hour, Burst: 100}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "shared\x00" + tt.name
			var allowed atomic.Int64
			var wg sync.WaitGroup
			for i := range tt.requests {
				wg.Go(func() {
					res, err := replicas[i%2].Allow(context.Background(), key, tt.limit)
					if err != nil {
						t.Error(err)
						return
					}
					if res.Allowed {
						allowed.Add(1)
					}
				})
			}
			wg.Wait()
			if n := allowed.Load(); n != int64(tt.limit.burst()) {
				t.Fatalf("%d of %d requests allowed across two replicas, want exactly the burst %d", n, tt.requests, tt.limit.burst())
			}
		})
	}
}

// TestRedisUsesServerClock checks that the gateway sends no time to Redis and
// that the script reads the server's clock: MONITOR shows the script calling
// TIME, and a bucket planted relative to the server's TIME is honoured.
func TestRedisUsesServerClock(t *testing.T) {
	s := startRedis(t)
	r := newTestRedis(t, s)
	ctx := context.Background()
	lim := Limit{Count: 1, Period: time.Minute} // T = capacity = 60,000,000µs
	if _, err := r.Allow(ctx, "warm-up", lim); err != nil {
		t.Fatal(err)
	}

	mon, err := net.DialTimeout("tcp", s.addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	mon.SetDeadline(time.Now().Add(10 * time.Second))
	mon.Write(encodeCommand("MONITOR"))
	rd := bufio.NewReader(mon)
	if line, err := rd.ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("MONITOR: %q, %v", line, err)
	}

	if _, err := r.Allow(ctx, "monitored", lim); err != nil {
		t.Fatal(err)
	}
	var evalsha string
	for sawTime := false; !sawTime; {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("reading MONITOR: %v (evalsha %q)", err, evalsha)
		}
		switch {
		case strings.Contains(line, `"evalsha"`):
			evalsha = line
		case strings.Contains(line, " lua] ") && strings.Contains(line, `"TIME"`):
			sawTime = true
		}
	}
	want := `"evalsha" "` + gcraSHA + `" "1" "svidgate:rl:monitored" "60000000" "60000000"`
	if !strings.Contains(evalsha, want) {
		t.Fatalf("the gateway sent %q, want exactly interval and capacity: %s", evalsha, want)
	}

	// A bucket whose TAT is 10 minutes ahead of the server's clock is 10
	// minutes from admitting a request (TAT + T - capacity - now).
	tat := s.timeMicros() + (10 * time.Minute).Microseconds()
	if reply, err := s.do("SET", "svidgate:rl:planted", strconv.FormatInt(tat, 10)); err != nil || reply != "+OK" {
		t.Fatalf("SET: %q, %v", reply, err)
	}
	res, err := r.Allow(ctx, "planted", lim)
	if err != nil {
		t.Fatal(err)
	}
	if res.Allowed || !within(res.RetryAfter, 10*time.Minute, 5*time.Second) {
		t.Fatalf("planted bucket: %+v, want refused for 10m", res)
	}
}

// TestRedisNoScript checks the EVAL fallback when the server does not have
// the script cached, and that EVAL leaves it cached for EVALSHA.
func TestRedisNoScript(t *testing.T) {
	s := startRedis(t)
	r := newTestRedis(t, s)
	lim := Limit{Count: 10, Period: time.Second, Burst: 10}
	for i := range 3 {
		if reply, err := s.do("SCRIPT", "FLUSH"); err != nil || reply != "+OK" {
			t.Fatalf("SCRIPT FLUSH: %q, %v", reply, err)
		}
		res, err := r.Allow(context.Background(), "k", lim)
		if err != nil || !res.Allowed || res.Remaining != 9-i {
			t.Fatalf("call %d after SCRIPT FLUSH: %+v, %v", i, res, err)
		}
		lines, err := s.doLines(2, "SCRIPT", "EXISTS", gcraSHA)
		if err != nil || lines[1] != ":1" {
			t.Fatalf("SCRIPT EXISTS after the fallback: %q, %v", lines, err)
		}
	}
}

// TestRedisDownAndBack stops Redis: Allow returns an error and Fallible
// decides per its mode; Redis restarted on the same port: the same limiter
// works again with no intervention (new connections, script reloaded). After
// a few errors the very next request succeeds; after an outage long enough to
// open the client's dial circuit breaker (PoolSize failed dials), the client
// recovers through its background probe, once a second.
func TestRedisDownAndBack(t *testing.T) {
	tests := []struct {
		name      string
		poolSize  int
		failures  int           // failed Allow calls while Redis is down
		recovered time.Duration // the limiter must work again within this
	}{
		{name: "short outage", poolSize: 20, failures: 1, recovered: 0},
		{name: "long outage", poolSize: 4, failures: 50, recovered: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startRedis(t)
			r := newTestRedis(t, s, func(o *RedisOptions) { o.PoolSize = tt.poolSize })
			ctx := context.Background()
			lim := Limit{Count: 10, Period: time.Second, Burst: 10}
			if _, err := r.Allow(ctx, "k", lim); err != nil {
				t.Fatal(err)
			}

			s.stop()
			for range tt.failures {
				_, err := r.Allow(ctx, "k", lim)
				if err == nil || !strings.HasPrefix(err.Error(), "ratelimit: redis "+s.addr+": ") {
					t.Fatalf("Allow with Redis down: %v; want an error naming the server", err)
				}
			}
			for _, failOpen := range []bool{true, false} {
				var reported []error
				f := Fallible{Limiter: r, FailOpen: failOpen, OnError: func(err error) { reported = append(reported, err) }}
				res, err := f.Allow(ctx, "k", lim)
				if err != nil || res.Allowed != failOpen {
					t.Fatalf("Fallible{FailOpen: %v} with Redis down: %+v, %v", failOpen, res, err)
				}
				if len(reported) != 1 || !strings.HasPrefix(reported[0].Error(), "ratelimit: redis ") {
					t.Fatalf("Fallible{FailOpen: %v} reported %v, want the Redis error once", failOpen, reported)
				}
			}

			s.start()
			deadline := time.Now().Add(tt.recovered)
			for {
				res, err := r.Allow(ctx, "k", lim)
				if err == nil && res.Allowed {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("Allow after Redis came back: %+v, %v; want allowed within %v", res, err, tt.recovered)
				}
				time.Sleep(50 * time.Millisecond)
			}
			for i := range 20 {
				if _, err := r.Allow(ctx, "k"+strconv.Itoa(i), lim); err != nil {
					t.Fatalf("Allow %d after Redis came back: %v", i, err)
				}
			}
		})
	}
}

// TestRedisQuotaSurvivesGatewayRestart spends a daily quota, then asks a new
// Redis limiter (a restarted gateway): the quota is still spent.
func TestRedisQuotaSurvivesGatewayRestart(t *testing.T) {
	s := startRedis(t)
	ctx := context.Background()
	quota := Limit{Count: 5, Period: 24 * time.Hour, Burst: 5} // T = 4h48m
	T := 24 * time.Hour / 5

	first := NewRedis(RedisOptions{Addr: s.addr})
	for i := range 5 {
		res, err := first.Allow(ctx, "quota", quota)
		if err != nil || !res.Allowed || res.Remaining != 4-i {
			t.Fatalf("request %d: %+v, %v", i, res, err)
		}
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second := newTestRedis(t, s)
	res, err := second.Allow(ctx, "quota", quota)
	if err != nil || res.Allowed || res.Remaining != 0 ||
		!within(res.RetryAfter, T, 5*time.Second) || !within(res.Reset, 24*time.Hour, 5*time.Second) {
		t.Fatalf("after restart: %+v, %v; want refused, retry in %v, reset in 24h", res, err, T)
	}
	ttl := time.Duration(s.integer("PTTL", "svidgate:rl:quota")) * time.Millisecond
	if !within(ttl, 24*time.Hour+time.Millisecond, 5*time.Second) {
		t.Fatalf("quota key TTL %v, want about 24h", ttl)
	}
}

// TestRedisIdleKeysExpire checks the TTL: a key lives until its bucket is
// full again, under the configured prefix.
func TestRedisIdleKeysExpire(t *testing.T) {
	s := startRedis(t)
	r := newTestRedis(t, s, func(o *RedisOptions) { o.KeyPrefix = "test:" })
	lim := Limit{Count: 20, Period: time.Second, Burst: 2} // T = 50ms
	for range 2 {
		if _, err := r.Allow(context.Background(), "idle", lim); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.integer("EXISTS", "svidgate:rl:idle"); n != 0 {
		t.Fatal("key stored under the default prefix despite KeyPrefix")
	}
	if ttl := s.integer("PTTL", "test:idle"); ttl <= 0 || ttl > 100 {
		t.Fatalf("PTTL = %dms, want (0, 100]", ttl)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.integer("EXISTS", "test:idle") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle key did not expire within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRedisInvalidLimit(t *testing.T) {
	// No server: an invalid limit is refused before any round trip.
	r := NewRedis(RedisOptions{Addr: "127.0.0.1:1"})
	defer r.Close()
	_, err := r.Allow(context.Background(), "k", Limit{Count: 1, Period: time.Second, Burst: -1})
	if err == nil || !strings.Contains(err.Error(), "burst must not be negative") {
		t.Fatalf("Allow(invalid) = %v", err)
	}
}

func TestRedisPing(t *testing.T) {
	s := startRedis(t)
	r := newTestRedis(t, s)
	if err := r.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if lines, err := s.doLines(2, "SCRIPT", "EXISTS", gcraSHA); err != nil || lines[1] != ":1" {
		t.Fatalf("Ping did not load the script: %q, %v", lines, err)
	}
	down := NewRedis(RedisOptions{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer down.Close()
	err := down.Ping(context.Background())
	var op *net.OpError
	if err == nil || !strings.HasPrefix(err.Error(), "ratelimit: redis 127.0.0.1:1: ") || !errors.As(err, &op) {
		t.Fatalf("Ping of nothing: %v; want a wrapped dial error", err)
	}
}
