package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a child process in its own process group, with stdout and stderr in
// a log file.
type proc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // the result of Wait, valid after done is closed
}

// procs tracks every process the harness starts, so that cleanup kills them all.
var procs struct {
	sync.Mutex
	all []*proc
}

// startProc starts bin with args; output is appended to logPath.
func startProc(name, logPath string, extraEnv []string, bin string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.Env = append(os.Environ(), extraEnv...)
	// Own process group, so that kill reaches the whole tree; SIGKILL when the
	// test binary dies (timeout panic, Ctrl-C), so that nothing outlives it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	procs.Lock()
	procs.all = append(procs.all, p)
	procs.Unlock()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitCode returns the exit code of an ended process, or -1 if a signal ended it.
func (p *proc) exitCode() int {
	var ee *exec.ExitError
	if p.err == nil {
		return 0
	}
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// signal sends sig to the process group.
func (p *proc) signal(sig syscall.Signal) {
	_ = syscall.Kill(-p.pid(), sig)
}

// kill sends SIGKILL to the process group and waits for the process to end.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// stop sends sig and waits up to timeout; then it kills. It reports whether
// the process ended within timeout.
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) bool {
	if p.exited() {
		return true
	}
	p.signal(sig)
	select {
	case <-p.done:
		// The group may still hold children.
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		return true
	case <-time.After(timeout):
		p.kill()
		return false
	}
}

// wait waits up to timeout for the process to end by itself.
func (p *proc) wait(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string { return tailFile(p.log, n) }

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// killAll kills every process still running, in reverse start order.
func killAll() {
	procs.Lock()
	all := append([]*proc(nil), procs.all...)
	procs.Unlock()
	for i := len(all) - 1; i >= 0; i-- {
		if !all[i].exited() {
			all[i].kill()
		} else {
			_ = syscall.Kill(-all[i].pid(), syscall.SIGKILL)
		}
	}
}

// ports hands out free loopback TCP ports, never the same one twice.
var ports struct {
	sync.Mutex
	used map[int]bool
}

func freePort() (int, error) {
	ports.Lock()
	defer ports.Unlock()
	if ports.used == nil {
		ports.used = map[int]bool{}
	}
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !ports.used[port] {
			ports.used[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no free loopback port")
}

func freeAddr() (string, error) {
	p, err := freePort()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", p), nil
}

// permanentError stops poll at once.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// permanent marks an error that further polling cannot fix.
func permanent(err error) error { return permanentError{err} }

// poll calls f every interval until it returns nil, a permanent error, or
// timeout passes; it returns the last error.
func poll(timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		var perm permanentError
		if errors.As(err, &perm) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
	}
}

// indent prefixes every line of s, for readable multi-line failure messages.
func indent(s string) string {
	return "    | " + strings.ReplaceAll(s, "\n", "\n    | ")
}

// runSvidgate runs the svidgate binary under test as a command (validate,
// audit verify, policy suggest…) with a bounded time and returns its exit
// code and outputs. A race report in its output fails the test: the binary
// is built with -race when the tests are, and a command run leaves no log
// for teardown to check.
func runSvidgate(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, env.svidgate, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	if strings.Contains(errb.String(), "WARNING: DATA RACE") {
		t.Errorf("svidgate %s: the race detector reported:\n%s", strings.Join(args, " "), indent(errb.String()))
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode(), out.String(), errb.String()
	default:
		t.Fatalf("svidgate %s: %v\n%s", strings.Join(args, " "), err, indent(errb.String()))
		return -1, "", ""
	}
}
