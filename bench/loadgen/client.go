package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
)

// tlsStats counts what the handshakes negotiated.
type tlsStats struct {
	handshakes, resumed atomic.Int64
	curve, suite        atomic.Value // string
}

func (s *tlsStats) record(cs tls.ConnectionState) {
	s.handshakes.Add(1)
	if cs.DidResume {
		s.resumed.Add(1)
	}
	s.curve.Store(cs.CurveID.String())
	s.suite.Store(tls.CipherSuiteName(cs.CipherSuite))
}

func (s *tlsStats) str(v *atomic.Value) string {
	if x, ok := v.Load().(string); ok {
		return x
	}
	return ""
}

// clientTLS builds the client's mTLS configuration: our SVID, TLS 1.3 only,
// one key-exchange group, and the server verified against the bundle by its
// URI SAN (SPIFFE style: no DNS name check).
func clientTLS(o options, alpn []string, st *tlsStats) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(o.Cert, o.Key)
	if err != nil {
		return nil, fmt.Errorf("client SVID: %w", err)
	}
	caPEM, err := os.ReadFile(o.CA)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no certificates", o.CA)
	}
	var curve tls.CurveID
	switch o.Curve {
	case "X25519":
		curve = tls.X25519
	case "P256":
		curve = tls.CurveP256
	default:
		return nil, fmt.Errorf("-curve %q: want X25519 or P256", o.Curve)
	}
	cfg := &tls.Config{
		Certificates:       []tls.Certificate{cert},
		MinVersion:         tls.VersionTLS13,
		CurvePreferences:   []tls.CurveID{curve},
		NextProtos:         alpn,
		InsecureSkipVerify: true, // replaced by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			leaf := cs.PeerCertificates[0]
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return err
			}
			if o.ServerID != "" && (len(leaf.URIs) != 1 || leaf.URIs[0].String() != o.ServerID) {
				return fmt.Errorf("server presented %v, want %s", leaf.URIs, o.ServerID)
			}
			st.record(cs)
			return nil
		},
	}
	if o.Resume {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4096)
	}
	return cfg, nil
}

func maybeTLS(o options, alpn []string, st *tlsStats) (*tls.Config, error) {
	if !o.TLS {
		return nil, nil
	}
	return clientTLS(o, alpn, st)
}

// doer performs one request; a worker owns one doer.
type doer interface {
	do(ctx context.Context) error
	close()
}

// ---- HTTP/1.1 over a raw connection: cheap on the client's core ----

type h1Conn struct {
	o       options
	dial    func(ctx context.Context) (net.Conn, error)
	req     []byte
	conn    net.Conn
	br      *bufio.Reader
	newConn bool
}

func newH1(o options, cfg *tls.Config) *h1Conn {
	d := &net.Dialer{Timeout: o.Timeout}
	c := &h1Conn{o: o, newConn: o.NewConn}
	hdr := "GET " + o.Path + " HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: svidgate-loadgen\r\n"
	if o.NewConn {
		hdr += "Connection: close\r\n"
	}
	for _, h := range o.Headers {
		hdr += h + "\r\n"
	}
	c.req = []byte(hdr + "\r\n")
	c.dial = func(ctx context.Context) (net.Conn, error) {
		nc, err := d.DialContext(ctx, "tcp", o.Target)
		if err != nil || cfg == nil {
			return nc, err
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		return tc, nil
	}
	return c
}

func (c *h1Conn) connect(ctx context.Context) error {
	conn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	c.conn = conn
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 8192)
	} else {
		c.br.Reset(conn)
	}
	return nil
}

func (c *h1Conn) do(ctx context.Context) error {
	if c.conn == nil {
		if err := c.connect(ctx); err != nil {
			return err
		}
	}
	err := c.roundTrip()
	if err != nil || c.newConn {
		c.close()
	}
	return err
}

func (c *h1Conn) roundTrip() error {
	_ = c.conn.SetDeadline(time.Now().Add(c.o.Timeout))
	if _, err := c.conn.Write(c.req); err != nil {
		return err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(line) < 12 || string(line[:5]) != "HTTP/" {
		return fmt.Errorf("bad status line %q", line)
	}
	status := string(line[9:12])
	clen, chunked, closing := -1, false, false
	for {
		l, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(l) <= 2 {
			break
		}
		k, v := splitHeader(l)
		switch {
		case asciiEq(k, "content-length"):
			clen, _ = strconv.Atoi(v)
		case asciiEq(k, "transfer-encoding"):
			chunked = asciiEq(v, "chunked")
		case asciiEq(k, "connection"):
			closing = asciiEq(v, "close")
		}
	}
	n, err := c.readBody(clen, chunked)
	if err != nil {
		return err
	}
	if closing {
		c.close()
	}
	if status != "200" {
		return fmt.Errorf("HTTP %s", status)
	}
	if c.o.BodySize >= 0 && n != c.o.BodySize {
		return fmt.Errorf("body %d bytes, want %d", n, c.o.BodySize)
	}
	return nil
}

func (c *h1Conn) readBody(clen int, chunked bool) (int, error) {
	if !chunked {
		if clen < 0 {
			return 0, errors.New("response without Content-Length")
		}
		n, err := c.br.Discard(clen)
		return n, err
	}
	total := 0
	for {
		l, err := c.br.ReadSlice('\n')
		if err != nil {
			return total, err
		}
		end := 0
		for end < len(l) && isHex(l[end]) {
			end++
		}
		size, err := strconv.ParseInt(string(l[:end]), 16, 32)
		if err != nil {
			return total, fmt.Errorf("bad chunk size %q", l)
		}
		if size == 0 {
			for { // trailers
				t, err := c.br.ReadSlice('\n')
				if err != nil {
					return total, err
				}
				if len(t) <= 2 {
					return total, nil
				}
			}
		}
		if _, err := c.br.Discard(int(size) + 2); err != nil {
			return total, err
		}
		total += int(size)
	}
}

func (c *h1Conn) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

func isHex(b byte) bool {
	return b >= '0' && b <= '9' || b >= 'a' && b <= 'f' || b >= 'A' && b <= 'F'
}

func splitHeader(l []byte) (string, string) {
	for i, b := range l {
		if b == ':' {
			v := l[i+1:]
			for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
				v = v[1:]
			}
			for len(v) > 0 && (v[len(v)-1] == '\r' || v[len(v)-1] == '\n' || v[len(v)-1] == ' ') {
				v = v[:len(v)-1]
			}
			return string(l[:i]), string(v)
		}
	}
	return "", ""
}

func asciiEq(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// ---- HTTP/2: net/http, one transport (one connection) per -conns ----

type h2Client struct {
	o   options
	c   *http.Client
	url string
	t   *http.Transport
}

func newH2Transport(o options, cfg *tls.Config) *http.Transport {
	t := &http.Transport{
		TLSClientConfig:     cfg,
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     time.Minute,
		Protocols:           new(http.Protocols),
		HTTP2: &http.HTTP2Config{
			StrictMaxConcurrentRequests: true,
		},
	}
	if cfg != nil {
		t.Protocols.SetHTTP2(true)
	} else {
		t.Protocols.SetUnencryptedHTTP2(true)
	}
	return t
}

func (h *h2Client) do(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.o.Timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	for _, kv := range h.o.Headers {
		k, v, _ := strings.Cut(kv, ":")
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := h.c.Do(req)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if h.o.BodySize >= 0 && int(n) != h.o.BodySize {
		return fmt.Errorf("body %d bytes, want %d", n, h.o.BodySize)
	}
	return nil
}

func (h *h2Client) close() {}

// ---- gRPC unary: grpc.testing.TestService/UnaryCall ----

type grpcClient struct {
	o   options
	cli testpb.TestServiceClient
}

func newGRPCConn(o options, cfg *tls.Config) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if cfg != nil {
		creds = credentials.NewTLS(cfg)
	}
	cc, err := grpc.NewClient("passthrough:///"+o.Target, grpc.WithTransportCredentials(creds),
		grpc.WithAuthority("bench.example"))
	if err != nil {
		return nil, err
	}
	cc.Connect()
	return cc, nil
}

func (g *grpcClient) do(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, g.o.Timeout)
	defer cancel()
	for _, kv := range g.o.Headers {
		k, v, _ := strings.Cut(kv, ":")
		ctx = metadata.AppendToOutgoingContext(ctx, strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v))
	}
	resp, err := g.cli.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: int32(max(g.o.BodySize, 0))})
	if err != nil {
		return err
	}
	if n := len(resp.GetPayload().GetBody()); g.o.BodySize >= 0 && n != g.o.BodySize {
		return fmt.Errorf("payload %d bytes, want %d", n, g.o.BodySize)
	}
	return nil
}

func (g *grpcClient) close() {}
