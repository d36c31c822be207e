package gateway

import (
	"log/slog"
	"sync"
	"time"
)

// everyLogger logs at most one line per interval, so that a failing
// dependency on the request path (Redis) cannot flood the log.
type everyLogger struct {
	log      *slog.Logger
	interval time.Duration
	mu       sync.Mutex
	last     time.Time
	skipped  int
}

func newEveryLogger(log *slog.Logger, interval time.Duration) *everyLogger {
	return &everyLogger{log: log, interval: interval}
}

func (e *everyLogger) Warn(msg string, args ...any) {
	e.mu.Lock()
	now := time.Now()
	if now.Sub(e.last) < e.interval {
		e.skipped++
		e.mu.Unlock()
		return
	}
	skipped := e.skipped
	e.last, e.skipped = now, 0
	e.mu.Unlock()
	e.log.Warn(msg, append(args, "suppressed_since_last", skipped)...)
}
