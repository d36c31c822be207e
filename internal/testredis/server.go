package testredis

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is a redis-server process on a loopback port.
type Server struct {
	addr string
	dir  string
	log  string // the server's log file

	mu     sync.Mutex
	cmd    *exec.Cmd // nil while stopped
	exited chan struct{}
}

// Available reports, as an error that says how to fix it, whether
// redis-server can be run.
func Available() error {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return errors.New("redis-server not found on PATH; these tests need a real Redis server: " +
			"install it (Debian/Ubuntu: apt-get install redis-server; .ci/run installs it), then run the tests again")
	}
	return nil
}

// Start starts a redis-server on a free loopback port, with its files in a
// temporary directory of tb, and stops it when the test ends. It fails tb
// when redis-server is not installed or does not come up.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := StartProcess(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// StartProcess starts a redis-server on a free loopback port, with its
// working directory and log file in dir, and waits until it answers PING.
// The caller must Stop it.
func StartProcess(dir string) (*Server, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	s := &Server{addr: addr, dir: dir, log: filepath.Join(dir, "redis-"+port+".log")}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// Addr is the server's host:port; it stays the same across restarts.
func (s *Server) Addr() string { return s.addr }

// Running reports whether the server process is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// start runs redis-server on s.addr and waits up to 10s for it to answer
// PING. The server keeps nothing on disk: a restart starts empty.
func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.addr)
	cmd := exec.Command("redis-server",
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--logfile", s.log)
	cmd.SysProcAttr = procAttr()
	// Output before the log file is open (a bad argument) goes here too.
	out, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	deadline := time.Now().Add(10 * time.Second)
	for {
		reply, err := s.Do("PING")
		if err == nil && reply == "+PONG" {
			return nil
		}
		select {
		case <-exited:
			s.Stop()
			return fmt.Errorf("redis-server on %s exited during start-up; log %s:\n%s", s.addr, s.log, s.tail(20))
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("redis-server on %s did not answer PING within 10s (last: %q, %v); log %s:\n%s",
				s.addr, reply, err, s.log, s.tail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop terminates the server (SIGTERM, then SIGKILL after 5s) and waits for
// it to exit. It is a no-op when the server is not running.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Restart stops the server if it is running and starts a new one on the
// same port, empty. It returns once the new server answers PING.
func (s *Server) Restart() error {
	s.Stop()
	return s.start()
}

// tail returns the last n lines of the server's log.
func (s *Server) tail(n int) string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Do sends one command over a fresh connection and returns the first line of
// the reply, e.g. "+PONG", ":1", "$-1".
func (s *Server) Do(args ...string) (string, error) {
	lines, err := s.DoLines(1, args...)
	if err != nil {
		return "", err
	}
	return lines[0], nil
}

// DoLines is Do returning the first n lines of the reply.
func (s *Server) DoLines(n int, args ...string) ([]string, error) {
	c, err := net.DialTimeout("tcp", s.addr, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(EncodeCommand(args...)); err != nil {
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

// EncodeCommand encodes a command as a RESP array of bulk strings.
func EncodeCommand(args ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.Bytes()
}
