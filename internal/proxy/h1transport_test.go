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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
		dial:          func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", u.ln.Addr().String()) },
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

// An upstream that drops a kept-alive connection without saying so: an
// idempotent request is sent again on a new connection, a POST is not.
func TestH1TransportStaleConnection(t *testing.T) {
	u := newRawUpstream(t, answer(okResp, 1)) // closes after one answer
	tr := u.transport(time.Second)
	resp, err := get(t, tr, "GET")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	time.Sleep(50 * time.Millisecond) // the close reaches us; the pooled conn is stale
	resp, err = get(t, tr, "GET")
	if err != nil {
		t.Fatalf("GET on a stale pooled connection: %v (want a retry on a new one)", err)
	}
	readAll(t, resp)
	time.Sleep(50 * time.Millisecond)
	if _, err := get(t, tr, "POST"); err == nil {
		t.Fatal("POST on a stale pooled connection was sent again; it must fail instead")
	}
	if n := u.conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (first, retry; the POST is not retried)", n)
	}
}

// After probeAfter idle, a connection the upstream closed is noticed before
// use, so even a POST goes out on a live one.
func TestH1TransportProbesIdleConnection(t *testing.T) {
	u := newRawUpstream(t, answer(okResp, 1))
	tr := u.transport(time.Second)
	resp, err := get(t, tr, "GET")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	time.Sleep(probeAfter + 100*time.Millisecond)
	resp, err = get(t, tr, "POST")
	if err != nil {
		t.Fatalf("POST after the pooled connection was closed while idle: %v", err)
	}
	readAll(t, resp)
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
