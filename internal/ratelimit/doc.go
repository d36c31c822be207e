// Package ratelimit throttles callers of the gateway, one bucket per key.
//
// A key is built by the caller, typically a rule id, a NUL byte and the
// caller's verified SPIFFE ID, so each workload has its own bucket under each
// rule that limits it.
//
// Every [Limiter] implements the generic cell rate algorithm (GCRA): a bucket
// is a single "theoretical arrival time" (TAT). A Limit of Count events per
// Period has the emission interval T = Period/Count (rounded up to the clock's
// resolution, so the rate is never exceeded) and lets Burst requests through
// at once; a request at time now is allowed when max(TAT, now) + T - now ≤
// Burst·T, and then TAT becomes max(TAT, now) + T. A bucket whose TAT is in
// the past is indistinguishable from a new one, so state can be forgotten once
// it is idle. A quota such as "100000/day" is the same algorithm with
// Burst = Count: the whole allowance can be spent at once, and it comes back
// at the rate Count/Period.
//
// The pieces:
//
//   - [Local] keeps buckets in memory in a bounded table of least recently
//     used keys, split into independently locked shards.
//   - [Redis] keeps buckets in Redis, shared by every gateway replica, with one
//     atomic Lua script that reads the Redis server's clock.
//   - [Fallible] wraps a Limiter and decides, per a documented setting, what a
//     backend error means: allow (fail open) or refuse (fail closed).
//   - [InFlight] caps the number of concurrent requests per key.
//   - [Blocker] blocks a key for a cooldown after too many authorization
//     failures within a window.
//
// Nothing here logs: errors are returned or reported through hooks, so the
// caller decides what is counted and what is logged, and at what rate.
package ratelimit
