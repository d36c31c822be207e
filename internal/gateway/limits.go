package gateway

import (
	"context"
	"io"
	"time"

	"github.com/svidgate/svidgate/internal/config"
	"github.com/svidgate/svidgate/internal/proxy"
	"github.com/svidgate/svidgate/internal/ratelimit"
)

// newLimits builds the rate limiter (local, or Redis shared by replicas),
// the in-flight table and, when configured, abuse blocking.
func (g *Gateway) newLimits() {
	rl := g.cfg.RateLimit
	var backend ratelimit.Limiter = ratelimit.NewLocal(rl.MaxTracked)
	if rl.Backend == config.Redis {
		backend = ratelimit.NewRedis(ratelimit.RedisOptions{
			Addr: rl.Redis.Address, Password: g.redisPassword,
			DialTimeout: rl.Redis.Timeout.Duration, ReadTimeout: rl.Redis.Timeout.Duration, WriteTimeout: rl.Redis.Timeout.Duration,
			KeyPrefix: rl.Redis.Prefix,
		})
	}
	errLog := newEveryLogger(g.log, 10*time.Second)
	g.limits = &proxy.Limits{
		Limiter: ratelimit.Fallible{Limiter: backend, FailOpen: rl.Redis.OnFailure == "open", OnError: func(err error) {
			g.metrics.RateLimitErrors.Inc()
			errLog.Warn("rate-limit backend failed; applying on_failure", "backend", string(rl.Backend),
				"on_failure", rl.Redis.OnFailure, "error", err.Error())
		}},
		InFlight: ratelimit.NewInFlight(rl.MaxTracked),
		Metrics:  g.metrics,
	}
	if a := rl.Abuse; a.Threshold > 0 {
		g.limits.Blocker = ratelimit.NewBlocker(a.Threshold, a.Window.Duration, a.Cooldown.Duration, rl.MaxTracked)
	}
}

// closeLimiter closes the connection to a Redis backend.
func (g *Gateway) closeLimiter() {
	if g.limits == nil {
		return
	}
	if r, ok := g.limits.Limiter.(ratelimit.Fallible); ok {
		if c, ok := r.Limiter.(io.Closer); ok {
			_ = c.Close()
		}
	}
}

// gauges refreshes the table-size gauges until ctx ends.
func (g *Gateway) gauges(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if f, ok := g.limits.Limiter.(ratelimit.Fallible); ok {
			if l, ok := f.Limiter.(*ratelimit.Local); ok {
				g.metrics.CallersTracked.WithLabelValues("buckets").Set(float64(l.Len()))
			}
		}
		g.metrics.CallersTracked.WithLabelValues("in_flight").Set(float64(g.limits.InFlight.Len()))
		if b := g.limits.Blocker; b != nil {
			g.metrics.CallersTracked.WithLabelValues("abuse").Set(float64(b.Len()))
			g.metrics.CallersBlocked.Set(float64(len(b.List(time.Now()))))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
