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
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawUpstream is a TCP server whose every connection is handled by serve,
// counting the connections it accepted.
type rawUpstream struct {
	ln    net.Listener
	conns atomic.Int32
}

func newRawUpstream(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) *rawUpstream {
	t.Helper()
	return newRawUpstreamOn(t, "tcp", serve)
}

func newRawUpstreamOn(t *testing.T, network string, serve func(c net.Conn, br *bufio.Reader)) *rawUpstream {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "up.sock")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.conns.Add(1)
			go func() {
				defer c.Close()
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return u
}

func (u *rawUpstream) transport(headerTimeout time.Duration) *h1Transport {
	d := &net.Dialer{Timeout: time.Second}
	return &h1Transport{
		dial: func(ctx context.Context) (net.Conn, error) {
			return d.DialContext(ctx, u.ln.Addr().Network(), u.ln.Addr().String())
		},
		headerTimeout: headerTimeout,
		maxIdle:       4,
		idleTimeout:   time.Minute,
	}
}

// answer reads requests and answers each with resp until the client leaves;
// after answering n requests (n > 0) it closes the connection silently.
func answer(resp string, n int) func(net.Conn, *bufio.Reader) {
	return func(c net.Conn, br *bufio.Reader) {
		for i := 0; n <= 0 || i < n; i++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if _, err := io.WriteString(c, resp); err != nil {
				return
			}
		}
	}
}

const okResp = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

func get(t *testing.T, rt http.RoundTripper, method string) (*http.Response, error) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://upstream/x", nil)
	return rt.RoundTrip(req)
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return string(b)
}

func TestH1TransportReusesConnections(t *testing.T) {
	u := newRawUpstream(t, answer(okResp, 0))
	tr := u.transport(time.Second)
	for i := range 20 {
		resp, err := get(t, tr, "GET")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got := readAll(t, resp); got != "hello" {
			t.Fatalf("body %q", got)
		}
	}
	if n := u.conns.Load(); n != 1 {
		t.Fatalf("20 sequential requests used %d upstream connections, want 1", n)
	}
}

func TestH1TransportConnectionClose(t *testing.T) {
	u := newRawUpstream(t, answer("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 1))
	tr := u.transport(time.Second)
	for range 3 {
		resp, err := get(t, tr, "GET")
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
	}
	if n := u.conns.Load(); n != 3 {
		t.Fatalf("Connection: close answers: %d connections for 3 requests, want 3", n)
	}
	if len(tr.idle) != 0 {
		t.Fatalf("%d closed connections kept in the pool", len(tr.idle))
	}
}

// An upstream that closes a kept-alive connection while it is idle: the
// probe before reuse notices, and every request, a POST too, goes out on a
// new connection.
func TestH1TransportIdleCloseByUpstream(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			u := newRawUpstreamOn(t, network, answer(okResp, 1)) // closes after one answer
			tr := u.transport(time.Second)
			for i, method := range []string{"GET", "POST", "GET"} {
				resp, err := get(t, tr, method)
				if err != nil {
					t.Fatalf("%s #%d after the upstream closed the pooled connection: %v", method, i, err)
				}
				readAll(t, resp)
				time.Sleep(50 * time.Millisecond) // the close reaches us
			}
			if n := u.conns.Load(); n != 3 {
				t.Fatalf("%d connections, want 3", n)
			}
		})
	}
}

// An upstream that reads the next request on a kept-alive connection and
// closes it unanswered: an idempotent request is sent again on a new
// connection, a POST is not.
func TestH1TransportRetriesOnlyIdempotent(t *testing.T) {
	var first atomic.Bool
	u := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		if !first.CompareAndSwap(false, true) {
			answer(okResp, 0)(c, br)
			return
		}
		answer(okResp, 1)(c, br)
		http.ReadRequest(br) // then hang up without an answer
	})
	tr := u.transport(time.Second)
	resp, err := get(t, tr, "GET")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	resp, err = get(t, tr, "GET")
	if err != nil {
		t.Fatalf("GET whose reused connection was closed unanswered: %v (want it sent again)", err)
	}
	readAll(t, resp)
	first.Store(false) // the next connection hangs up again
	tr = u.transport(time.Second)
	resp, err = get(t, tr, "GET")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if _, err := get(t, tr, "POST"); err == nil {
		t.Fatal("a POST was sent again after its connection closed unanswered; it must fail instead")
	}
	if n := u.conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3 (the POST is not sent again)", n)
	}
}

// Bytes beyond a response (a HEAD answered with a body) must never be read
// as the answer to the next request.
func TestH1TransportExtraBytesNotReused(t *testing.T) {
	u := newRawUpstream(t, answer(okResp, 0))
	tr := u.transport(time.Second)
	resp, err := get(t, tr, "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	time.Sleep(50 * time.Millisecond)
	resp, err = get(t, tr, "GET")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "hello" || resp.StatusCode != 200 {
		t.Fatalf("GET after a HEAD answered with a body: %d %q", resp.StatusCode, got)
	}
	if n := u.conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (the HEAD's one is spoiled)", n)
	}
}

func TestH1TransportReusesAfterEmptyBodies(t *testing.T) {
	u := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			switch req.Method {
			case "HEAD":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
			case "DELETE":
				io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
			default:
				io.WriteString(c, "HTTP/1.1 304 Not Modified\r\n\r\n")
			}
		}
	})
	tr := u.transport(time.Second)
	for _, m := range []string{"HEAD", "DELETE", "GET", "HEAD"} {
		resp, err := get(t, tr, m)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		readAll(t, resp)
	}
	if n := u.conns.Load(); n != 1 {
		t.Fatalf("%d connections for HEAD, 204 and 304 answers, want 1", n)
	}
}

func TestH1TransportReadUntilCloseNotReused(t *testing.T) {
	u := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		http.ReadRequest(br)
		io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nuntil close")
	})
	tr := u.transport(time.Second)
	for range 2 {
		resp, err := get(t, tr, "GET")
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp); got != "until close" {
			t.Fatalf("body %q", got)
		}
	}
	if n := u.conns.Load(); n != 2 || len(tr.idle) != 0 {
		t.Fatalf("%d connections, %d pooled; a body delimited by the close is never reused", n, len(tr.idle))
	}
}

func TestH1TransportUnaskedUpgrade(t *testing.T) {
	u := newRawUpstream(t, answer("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", 0))
	tr := u.transport(time.Second)
	if _, err := get(t, tr, "GET"); !errors.Is(err, errUnexpectedUpgrade) {
		t.Fatalf("err %v, want %v", err, errUnexpectedUpgrade)
	}
	if len(tr.idle) != 0 {
		t.Fatal("a connection that switched protocols was pooled")
	}
}

// A body closed early does not drain an endless stream first.
func TestH1TransportEarlyCloseOfEndlessBody(t *testing.T) {
	u := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		http.ReadRequest(br)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		chunk := "400\r\n" + strings.Repeat("x", 1024) + "\r\n"
		for {
			if _, err := io.WriteString(c, chunk); err != nil {
				return
			}
		}
	})
	resp, err := get(t, u.transport(time.Second), "GET")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Read(make([]byte, 100))
	done := make(chan struct{})
	go func() { resp.Body.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("closing an endless body early did not return: it is being drained")
	}
}

func TestH1TransportPoolBounds(t *testing.T) {
	u := newRawUpstream(t, answer(okResp, 0))
	tr := u.transport(time.Second)
	tr.maxIdle = 2
	var open []*http.Response
	for range 3 { // three at once: three connections
		resp, err := get(t, tr, "GET")
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, resp)
	}
	for _, resp := range open {
		readAll(t, resp)
	}
	if len(tr.idle) != 2 {
		t.Fatalf("%d pooled, want maxIdle = 2", len(tr.idle))
	}
	tr.idleTimeout = 50 * time.Millisecond
	time.Sleep(100 * time.Millisecond)
	tr.idleTimeout = time.Minute
	resp, err := get(t, tr, "GET") // takes one of the two
	if err != nil {
		t.Fatal(err)
	}
	tr.idleTimeout = 50 * time.Millisecond
	readAll(t, resp) // goes back; the other one is past the idle timeout
	if len(tr.idle) != 1 {
		t.Fatalf("%d pooled, want 1: a connection past the idle timeout stays pooled", len(tr.idle))
	}
	tr.CloseIdleConnections()
	resp, err = get(t, tr, "GET")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if len(tr.idle) != 0 {
		t.Fatal("a connection went back to the pool after CloseIdleConnections")
	}
}

func TestH1TransportHeaderTimeout(t *testing.T) {
	u := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) { io.Copy(io.Discard, br) })
	tr := u.transport(100 * time.Millisecond)
	_, err := get(t, tr, "GET")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("silent upstream: err %v, want a timeout", err)
	}
}

func TestH1TransportCancel(t *testing.T) {
	u := newRawUpstream(t, func(c net.Conn, br *bufio.Reader) { io.Copy(io.Discard, br) })
	tr := u.transport(time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://upstream/x", nil)
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %v", d)
	}
}

func TestH1TransportHeaderLimit(t *testing.T) {
	big := "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", maxResponseHeader) + "\r\nContent-Length: 0\r\n\r\n"
	u := newRawUpstream(t, answer(big, 0))
	_, err := get(t, u.transport(time.Second), "GET")
	if !errors.Is(err, errResponseHeaderTooLarge) {
		t.Fatalf("err %v, want %v", err, errResponseHeaderTooLarge)
	}
}

func TestH1TransportBodyClosedEarly(t *testing.T) {
	u := newRawUpstream(t, answer("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", 0))
	tr := u.transport(time.Second)
	resp, err := get(t, tr, "GET")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Read(make([]byte, 3))
	resp.Body.Close()
	if len(tr.idle) != 0 {
		t.Fatal("a connection with unread body bytes went back to the pool")
	}
	resp, err = get(t, tr, "GET")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "0123456789" {
		t.Fatalf("body %q", got)
	}
	if n := u.conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestH1TransportEarlyHints(t *testing.T) {
	u := newRawUpstream(t, answer("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"+okResp, 0))
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, h.Get("Link"))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "http://upstream/x", nil)
	resp, err := u.transport(time.Second).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || readAll(t, resp) != "hello" {
		t.Fatalf("final response %d", resp.StatusCode)
	}
	if len(hints) != 1 || hints[0] != "</a.css>; rel=preload" {
		t.Fatalf("hints %q", hints)
	}
}
