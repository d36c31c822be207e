package ratelimit

import (
	"strconv"
	"strings"
	"testing"

	"github.com/svidgate/svidgate/internal/testredis"
)

// redisServer is a real redis-server process (internal/testredis) with the
// helpers the tests of this package use to look at it directly.
type redisServer struct {
	*testredis.Server
	tb   testing.TB
	addr string
}

// startRedis starts a redis-server on a free loopback port and stops it when
// the test ends. Without redis-server on PATH the test fails: the Redis
// limiter is not tested against anything else.
func startRedis(tb testing.TB) *redisServer {
	tb.Helper()
	s := testredis.Start(tb)
	return &redisServer{Server: s, tb: tb, addr: s.Addr()}
}

// stop terminates the server; start brings it back on the same port.
func (s *redisServer) stop() { s.Stop() }

func (s *redisServer) start() {
	s.tb.Helper()
	if err := s.Restart(); err != nil {
		s.tb.Fatal(err)
	}
}

func (s *redisServer) do(args ...string) (string, error) { return s.Do(args...) }

func (s *redisServer) doLines(n int, args ...string) ([]string, error) {
	return s.DoLines(n, args...)
}

// integer runs a command whose reply is an integer.
func (s *redisServer) integer(args ...string) int64 {
	s.tb.Helper()
	reply, err := s.do(args...)
	if err != nil || !strings.HasPrefix(reply, ":") {
		s.tb.Fatalf("%v: reply %q, %v", args, reply, err)
	}
	n, err := strconv.ParseInt(reply[1:], 10, 64)
	if err != nil {
		s.tb.Fatal(err)
	}
	return n
}

// timeMicros is the server's clock, TIME, in microseconds since the epoch.
func (s *redisServer) timeMicros() int64 {
	s.tb.Helper()
	lines, err := s.doLines(5, "TIME")
	if err != nil {
		s.tb.Fatal(err)
	}
	sec, err1 := strconv.ParseInt(lines[2], 10, 64)
	usec, err2 := strconv.ParseInt(lines[4], 10, 64)
	if err1 != nil || err2 != nil {
		s.tb.Fatalf("TIME: %q", lines)
	}
	return sec*1e6 + usec
}

func encodeCommand(args ...string) []byte { return testredis.EncodeCommand(args...) }
