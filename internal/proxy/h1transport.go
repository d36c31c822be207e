package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"syscall"
	"time"
)

// h1Transport forwards body-less HTTP/1.1 requests to a plain upstream
// over pooled keep-alive connections, in the caller's goroutine.
//
// It exists for speed: http.Transport runs a reader and a writer goroutine
// per connection and hands every request and response between them and the
// handler, which on one core costs more than the forwarding itself (see
// docs/PERFORMANCE.md). Requests with a body, upgrades and gRPC keep using
// http.Transport, which streams a body while the response arrives and
// waits for 100-continue.
type h1Transport struct {
	dial          func(ctx context.Context) (net.Conn, error)
	headerTimeout time.Duration // 0: none
	maxIdle       int
	idleTimeout   time.Duration

	mu     sync.Mutex
	idle   []*h1Conn // most recently used last
	closed bool      // shut down: nothing goes back to the pool
}

// maxResponseHeader bounds what an upstream may send before its body.
const maxResponseHeader = 1 << 20

var (
	errResponseHeaderTooLarge = errors.New("upstream response headers exceed 1 MiB")
	errUnexpectedUpgrade      = errors.New("upstream switched protocols on a request that asked for no upgrade")
)

type h1Conn struct {
	t         *h1Transport
	conn      net.Conn
	lim       limitedConn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time

	// The liveness probe, set up once per connection so that probing
	// before each reuse allocates nothing.
	raw      syscall.RawConn // nil: the connection has no descriptor to peek at
	peek     func(fd uintptr) bool
	peekIdle bool // the last peek found nothing to read and no close
}

// limitedConn lets the response header be bounded without a reader per
// response.
type limitedConn struct {
	net.Conn
	left int64
}

func (c *limitedConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errResponseHeaderTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= int64(n)
	return n, err
}

const unlimited = 1<<63 - 1

// RoundTrip sends req and returns the upstream's response. An idempotent
// request whose reused connection turns out closed before a byte of the
// response arrived is sent again on another, as http.Transport does.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	for {
		c, reused, err := t.get(req.Context())
		if err != nil {
			return nil, err
		}
		resp, answered, err := c.roundTrip(req)
		if err == nil {
			return resp, nil
		}
		c.conn.Close()
		if !reused || answered || !staleConn(err) || !replayable(req) || req.Context().Err() != nil {
			return nil, err
		}
	}
}

// staleConn tells whether err is what a connection closed by the upstream
// gives on first use.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

// get takes the most recently used live connection, or dials. Every pooled
// connection is probed first: one non-blocking syscall finds what
// http.Transport's reader goroutine would have seen, a close by the
// upstream or bytes it sent unasked.
func (t *h1Transport) get(ctx context.Context) (c *h1Conn, reused bool, err error) {
	for {
		t.mu.Lock()
		if len(t.idle) == 0 {
			t.mu.Unlock()
			break
		}
		c = t.idle[len(t.idle)-1]
		t.idle = t.idle[:len(t.idle)-1]
		t.mu.Unlock()
		if time.Since(c.idleSince) < t.idleTimeout && c.alive() {
			return c, true, nil
		}
		c.conn.Close()
	}
	conn, err := t.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	c = &h1Conn{t: t, conn: conn, lim: limitedConn{Conn: conn, left: unlimited}}
	c.br = bufio.NewReaderSize(&c.lim, 4<<10)
	c.bw = bufio.NewWriterSize(conn, 4<<10)
	if sc, ok := conn.(syscall.Conn); ok {
		if c.raw, err = sc.SyscallConn(); err != nil {
			conn.Close()
			return nil, false, err
		}
		c.peek = c.peekFD
	}
	return c, false, nil
}

// put returns a connection whose exchange ended cleanly to the pool, and
// closes the ones that sat idle too long or do not fit.
func (t *h1Transport) put(c *h1Conn) {
	if c.br.Buffered() > 0 { // more than the response: never reuse
		c.conn.Close()
		return
	}
	now := time.Now()
	c.idleSince = now
	var drop []*h1Conn
	t.mu.Lock()
	if t.closed || t.maxIdle <= 0 {
		t.mu.Unlock()
		c.conn.Close()
		return
	}
	n := 0 // the oldest come first
	for n < len(t.idle) && (now.Sub(t.idle[n].idleSince) >= t.idleTimeout || len(t.idle)-n >= t.maxIdle) {
		n++
	}
	if n > 0 {
		drop = append(drop, t.idle[:n]...)
		t.idle = append(t.idle[:0], t.idle[n:]...)
	}
	t.idle = append(t.idle, c)
	t.mu.Unlock()
	for _, old := range drop {
		old.conn.Close()
	}
}

// CloseIdleConnections closes the pooled connections and, on shutdown,
// every one that comes back later.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.closed = true
	t.mu.Unlock()
	for _, c := range idle {
		c.conn.Close()
	}
}

// alive peeks at an idle connection without blocking: a close by the
// upstream, or bytes it should not have sent, make it unusable.
func (c *h1Conn) alive() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	if c.raw == nil {
		return true
	}
	c.peekIdle = false
	return c.raw.Read(c.peek) == nil && c.peekIdle
}

// peekFD looks for a byte or a close without consuming or blocking; done
// in one call, it never waits for readiness.
func (c *h1Conn) peekFD(fd uintptr) bool {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	c.peekIdle = n < 0 && errors.Is(err, syscall.EAGAIN)
	return true
}

// roundTrip is one exchange on c; answered tells whether any of the
// response had arrived when it failed (then it is never sent again).
func (c *h1Conn) roundTrip(req *http.Request) (resp *http.Response, answered bool, err error) {
	ctx := req.Context()
	// A cancelled request (the client went away) interrupts the exchange
	// at once, whatever it is blocked on. ctx.Err() is set before the
	// function runs, so checking it after each deadline change below
	// keeps a cancellation from being overwritten.
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, bool, error) {
		stop()
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		return nil, c.lim.left < maxResponseHeader, err
	}
	if err := req.Write(c.bw); err != nil {
		return fail(err)
	}
	if err := c.bw.Flush(); err != nil {
		return fail(err)
	}
	if c.t.headerTimeout > 0 {
		c.conn.SetReadDeadline(time.Now().Add(c.t.headerTimeout))
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
	}
	c.lim.left = maxResponseHeader
	resp, err = c.readResponse(req)
	if err != nil {
		return fail(err)
	}
	c.lim.left = unlimited
	if c.t.headerTimeout > 0 {
		c.conn.SetReadDeadline(time.Time{})
		if ctx.Err() != nil {
			c.conn.Close() // before the body, which would drain it
			resp.Body.Close()
			return fail(ctx.Err())
		}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return fail(errUnexpectedUpgrade)
	}
	reuse := !resp.Close && !req.Close
	if resp.Body == http.NoBody {
		if stop() && reuse {
			c.t.put(c)
		} else {
			c.conn.Close()
		}
		return resp, true, nil
	}
	resp.Body = &h1Body{rc: resp.Body, c: c, stop: stop, reuse: reuse}
	return resp, true, nil
}

// readResponse reads the final response, passing informational ones
// (103 Early Hints) to the request's trace as http.Transport does.
func (c *h1Conn) readResponse(req *http.Request) (*http.Response, error) {
	trace := httptrace.ContextClientTrace(req.Context())
	for {
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return nil, err
		}
		code := resp.StatusCode
		if code < 100 || code > 199 || code == http.StatusSwitchingProtocols {
			return resp, nil
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(resp.Header)); err != nil {
				return nil, err
			}
		}
	}
}

// h1Body returns its connection to the pool once the body was read to the
// end; a body closed early takes its connection with it.
type h1Body struct {
	rc    io.ReadCloser
	c     *h1Conn
	stop  func() bool
	reuse bool
	eof   bool
	done  bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, errors.New("read on closed response body")
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *h1Body) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	if !b.eof {
		// Closing the connection first keeps rc.Close from reading
		// (draining) the rest of a body nobody wants.
		b.stop()
		b.c.conn.Close()
		b.rc.Close()
		return nil
	}
	b.rc.Close()
	if b.stop() && b.reuse {
		b.c.t.put(b.c)
		return nil
	}
	return b.c.conn.Close()
}
