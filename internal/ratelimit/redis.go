package ratelimit

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultKeyPrefix is prepended to every key Redis stores.
const DefaultKeyPrefix = "svidgate:rl:"

// gcraScript is one GCRA step, atomic in Redis. Times are microseconds since
// the Unix epoch read from the Redis server's clock (TIME), never from a
// gateway's, so replicas with skewed clocks share one timeline. Every number
// stays below 2^53 and is therefore exact in Lua's doubles.
//
//	KEYS[1]  the bucket
//	ARGV[1]  emission interval T, µs
//	ARGV[2]  burst capacity Burst·T, µs
//	returns  {allowed (1|0), TAT - now in µs after the decision}
//
// An allowed request stores the new TAT with a time-to-live that ends when the
// TAT is reached: from then on the bucket is full, the same as no key at all.
const gcraScript = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next = tat + interval
if next - now > capacity then
  return {0, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.ceil((next - now) / 1000))
return {1, next - now}
`

var gcraSHA = func() string {
	h := sha1.Sum([]byte(gcraScript))
	return hex.EncodeToString(h[:])
}()

// RedisOptions configures a Redis limiter. Zero values take the defaults
// given per field.
type RedisOptions struct {
	Addr      string // host:port of the Redis server; default "localhost:6379"
	Username  string // ACL user; empty for the default user
	Password  string
	DB        int
	TLSConfig *tls.Config // nil for plain TCP

	DialTimeout  time.Duration // default 1s
	ReadTimeout  time.Duration // default 500ms
	WriteTimeout time.Duration // default 500ms
	PoolSize     int           // connections; default 10 per GOMAXPROCS
	// MaxRetries is how often a failed command is retried on another
	// connection; default 1, which is what lets the first request after a
	// Redis restart succeed on a fresh connection; -1 disables retries.
	MaxRetries int

	KeyPrefix string // default DefaultKeyPrefix
}

// Redis is a Limiter whose buckets live in a Redis server shared by every
// gateway replica. Each Allow is one round trip running one Lua script
// (EVALSHA, falling back to EVAL when the server does not have the script
// cached, e.g. after a restart), so the limit is enforced exactly across
// replicas. State lives only in Redis: a restarted gateway continues a quota
// where it was. Keys expire once their bucket is full again, so idle callers
// cost nothing.
//
// When Redis is unreachable Allow returns an error. The client reconnects on
// its own when Redis is back: connections broken by a restart are replaced on
// the next command, and once PoolSize dials in a row have failed the client
// stops dialing per request (Allow fails at once) and probes the server every
// second until it answers. Wrap a Redis in Fallible to choose between
// failing open and failing closed.
type Redis struct {
	c      *redis.Client
	addr   string
	prefix string
}

// NewRedis returns a Redis limiter. It does not connect; the first Allow or
// Ping does.
func NewRedis(opts RedisOptions) *Redis {
	o := &redis.Options{
		Addr:                  opts.Addr,
		Username:              opts.Username,
		Password:              opts.Password,
		DB:                    opts.DB,
		TLSConfig:             opts.TLSConfig,
		DialTimeout:           or(opts.DialTimeout, time.Second),
		DialerRetries:         1, // a failed dial fails the attempt; MaxRetries decides on another
		ReadTimeout:           or(opts.ReadTimeout, 500*time.Millisecond),
		WriteTimeout:          or(opts.WriteTimeout, 500*time.Millisecond),
		ContextTimeoutEnabled: true,
		PoolSize:              opts.PoolSize,
		MaxRetries:            or(opts.MaxRetries, 1),
		DisableIdentity:       true,
	}
	if o.Addr == "" {
		o.Addr = "localhost:6379"
	}
	return &Redis{c: redis.NewClient(o), addr: o.Addr, prefix: or(opts.KeyPrefix, DefaultKeyPrefix)}
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Allow takes one request from key's bucket under limit l, by the Redis
// server's clock.
func (r *Redis) Allow(ctx context.Context, key string, l Limit) (Result, error) {
	interval, capacity, err := l.gcra()
	if err != nil {
		return Result{}, err
	}
	us := int64(time.Microsecond)
	keys := []string{r.prefix + key}
	args := []any{strconv.FormatInt(interval/us, 10), strconv.FormatInt(capacity/us, 10)}

	cmd := r.c.EvalSha(ctx, gcraSHA, keys, args...)
	if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		cmd = r.c.Eval(ctx, gcraScript, keys, args...)
	}
	v, err := cmd.Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("ratelimit: redis %s: %w", r.addr, err)
	}
	if len(v) != 2 {
		return Result{}, fmt.Errorf("ratelimit: redis %s: script returned %d values, want 2", r.addr, len(v))
	}
	// The script's clock is the server's; Result needs only durations, so
	// now is 0 and the TAT is relative to it.
	return result(l, v[0] == 1, v[1]*us, 0, interval, capacity), nil
}

// Ping checks that the server is reachable and loads the script, for a
// start-up or readiness check.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.c.ScriptLoad(ctx, gcraScript).Err(); err != nil {
		return fmt.Errorf("ratelimit: redis %s: %w", r.addr, err)
	}
	return nil
}

// Close closes the connections to Redis.
func (r *Redis) Close() error {
	if err := r.c.Close(); err != nil {
		return fmt.Errorf("ratelimit: redis %s: %w", r.addr, err)
	}
	return nil
}

var _ Limiter = (*Redis)(nil)
