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

	mu   sync.Mutex
	idle []*h1Conn // most recently used last
}

// maxResponseHeader bounds what an upstream may send before its body.
const maxResponseHeader = 1 << 20

// probeAfter is how long a connection may sit idle before it is checked
// for a close by the upstream (an idle timeout) before reuse.
const probeAfter = time.Second

var errResponseHeaderTooLarge = errors.New("upstream response headers exceed 1 MiB")

type h1Conn struct {
	t         *h1Transport
	conn      net.Conn
	lim       limitedConn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
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
// request that finds its reused connection closed by the upstream is sent
// again on another, as http.Transport does.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	for {
		c, reused, err := t.get(req.Context())
		if err != nil {
			return nil, err
		}
		resp, err := c.roundTrip(req)
		if err == nil {
			return resp, nil
		}
		c.conn.Close()
		if !reused || !staleConn(err) || !replayable(req) || req.Context().Err() != nil {
			return nil, err
		}
	}
}

// staleConn tells whether err is what a connection closed by the upstream
// while idle gives on first use.
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

func (t *h1Transport) get(ctx context.Context) (c *h1Conn, reused bool, err error) {
	now := time.Now()
	t.mu.Lock()
	for len(t.idle) > 0 {
		c = t.idle[len(t.idle)-1]
		t.idle = t.idle[:len(t.idle)-1]
		if now.Sub(c.idleSince) < probeAfter {
			t.mu.Unlock()
			return c, true, nil
		}
		t.mu.Unlock()
		if now.Sub(c.idleSince) < t.idleTimeout && c.alive() {
			return c, true, nil
		}
		c.conn.Close()
		t.mu.Lock()
	}
	t.mu.Unlock()
	conn, err := t.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	c = &h1Conn{t: t, conn: conn, lim: limitedConn{Conn: conn, left: unlimited}}
	c.br = bufio.NewReaderSize(&c.lim, 4<<10)
	c.bw = bufio.NewWriterSize(conn, 4<<10)
	return c, false, nil
}

// put returns a connection whose exchange ended cleanly to the pool.
func (t *h1Transport) put(c *h1Conn) {
	c.idleSince = time.Now()
	t.mu.Lock()
	if len(t.idle) >= t.maxIdle {
		old := t.idle[0]
		copy(t.idle, t.idle[1:])
		t.idle[len(t.idle)-1] = c
		t.mu.Unlock()
		old.conn.Close()
		return
	}
	t.idle = append(t.idle, c)
	t.mu.Unlock()
}

// CloseIdleConnections closes the pooled connections (on shutdown).
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, c := range idle {
		c.conn.Close()
	}
}

// alive peeks at an idle connection without blocking: a close by the
// upstream (or bytes it should not have sent) makes it unusable.
func (c *h1Conn) alive() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	sc, ok := c.conn.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = n < 0 && errors.Is(err, syscall.EAGAIN)
		return true
	})
	return err == nil && ok
}

func (c *h1Conn) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	// A cancelled request (the client went away) interrupts the exchange
	// at once, whatever it is blocked on.
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	if err := req.Write(c.bw); err != nil {
		return fail(err)
	}
	if err := c.bw.Flush(); err != nil {
		return fail(err)
	}
	if c.t.headerTimeout > 0 {
		c.conn.SetReadDeadline(time.Now().Add(c.t.headerTimeout))
	}
	c.lim.left = maxResponseHeader
	resp, err := c.readResponse(req)
	c.lim.left = unlimited
	if err != nil {
		return fail(err)
	}
	if c.t.headerTimeout > 0 {
		c.conn.SetReadDeadline(time.Time{})
	}
	reuse := !resp.Close && !req.Close
	if resp.Body == http.NoBody {
		stop()
		if reuse {
			c.t.put(c)
		} else {
			c.conn.Close()
		}
		return resp, nil
	}
	resp.Body = &h1Body{rc: resp.Body, c: c, stop: stop, reuse: reuse}
	return resp, nil
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
	b.rc.Close()
	if b.stop() && b.eof && b.reuse {
		b.c.t.put(b.c)
		return nil
	}
	return b.c.conn.Close()
}
