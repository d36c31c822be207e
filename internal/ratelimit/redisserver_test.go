package ratelimit

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// redisServer is a real redis-server process on a loopback port, without
// persistence, for the tests of this package.
type redisServer struct {
	tb   testing.TB
	addr string
	dir  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    *bytes.Buffer
}

// startRedis starts a redis-server on a free loopback port and stops it when
// the test ends. Without redis-server on PATH the test fails: the Redis
// limiter is not tested against anything else.
func startRedis(tb testing.TB) *redisServer {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		tb.Fatal("redis-server not found on PATH; the Redis limiter's tests need a real server: " +
			"apt-get install redis-server (.ci/run installs it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &redisServer{tb: tb, addr: addr, dir: tb.TempDir()}
	s.start()
	tb.Cleanup(s.stop)
	return s
}

// start runs redis-server on s.addr and waits up to 10s for it to answer PING.
func (s *redisServer) start() {
	s.tb.Helper()
	_, port, _ := net.SplitHostPort(s.addr)
	cmd := exec.Command("redis-server",
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--logfile", "")
	out := new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		s.tb.Fatalf("start redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited, s.out = cmd, exited, out
	s.mu.Unlock()

	deadline := time.Now().Add(10 * time.Second)
	for {
		reply, err := s.do("PING")
		if err == nil && reply == "+PONG" {
			return
		}
		select {
		case <-exited:
			s.tb.Fatalf("redis-server on %s exited during start-up:\n%s", s.addr, out)
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			s.tb.Fatalf("redis-server on %s did not answer PING within 10s (last: %q, %v):\n%s", s.addr, reply, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop terminates the server (SIGTERM, then SIGKILL after 5s) and waits for
// it to exit. It is a no-op when the server is not running.
func (s *redisServer) stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// restart stops the server and starts a new one on the same port.
func (s *redisServer) restart() {
	s.tb.Helper()
	s.stop()
	s.start()
}

// do sends one command over a fresh connection and returns the first line of
// the reply, e.g. "+PONG", ":1", "$-1". It is the test's own view of the
// server, independent of the client under test.
func (s *redisServer) do(args ...string) (string, error) {
	lines, err := s.doLines(1, args...)
	if err != nil {
		return "", err
	}
	return lines[0], nil
}

// doLines is do returning the first n lines of the reply.
func (s *redisServer) doLines(n int, args ...string) ([]string, error) {
	c, err := net.DialTimeout("tcp", s.addr, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(encodeCommand(args...)); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	var lines []string
	for range n {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		lines = append(lines, strings.TrimRight(line, "\r\n"))
	}
	return lines, nil
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

// bulk runs a command whose reply is a bulk string; a nil reply is "".
func (s *redisServer) bulk(args ...string) string {
	s.tb.Helper()
	lines, err := s.doLines(1, args...)
	if err != nil {
		s.tb.Fatalf("%v: %v", args, err)
	}
	if lines[0] == "$-1" || lines[0] == "_" {
		return ""
	}
	lines, err = s.doLines(2, args...)
	if err != nil || !strings.HasPrefix(lines[0], "$") {
		s.tb.Fatalf("%v: reply %q, %v", args, lines, err)
	}
	return lines[1]
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

func encodeCommand(args ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.Bytes()
}
