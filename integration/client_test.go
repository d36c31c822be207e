package integration

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// clientTLS returns an mTLS client config presenting a minted SVID for caller
// and accepting only a server presenting server.
func clientTLS(t testing.TB, caller, server spiffeid.ID) *tls.Config {
	t.Helper()
	m, err := env.spire.mint(caller)
	if err != nil {
		t.Fatalf("mint SVID for %s: %v", caller, err)
	}
	return tlsconfig.MTLSClientConfig(m.svid, m.bundle, tlsconfig.AuthorizeID(server))
}

// httpsClient is an HTTP client over mTLS: HTTP/2 when h2, else HTTP/1.1;
// a new connection per request unless keepAlive.
func httpsClient(cfg *tls.Config, h2, keepAlive bool) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     cfg,
			ForceAttemptHTTP2:   h2,
			DisableKeepAlives:   !keepAlive,
			TLSHandshakeTimeout: 5 * time.Second,
		},
	}
}

// plainClient is an HTTP client for an outbound listener: HTTP/1.1, or h2c
// with prior knowledge when h2.
func plainClient(h2, keepAlive bool) *http.Client {
	tr := &http.Transport{DisableKeepAlives: !keepAlive}
	if h2 {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

// echo is the answer of examples/services/httpecho.
type echo struct {
	Service string              `json:"service"`
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Proto   string              `json:"proto"`
	Headers map[string][]string `json:"headers"`
	XFCC    []string            `json:"xfcc"`
}

// result is an answer, read whole.
type result struct {
	code  int
	proto string
	hdr   http.Header
	body  []byte
	echo  *echo // set when the body is httpecho's JSON: the request was forwarded
}

// send sends one request with a bounded time and reads the whole answer.
func send(c *http.Client, method, url string, hdr http.Header) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, nil, err
	}
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, nil, fmt.Errorf("%s %s: reading body: %w", method, url, err)
	}
	return resp, b, nil
}

// do sends one request and decodes httpecho's answer.
func do(c *http.Client, method, url string, hdr http.Header) (*result, error) {
	resp, b, err := send(c, method, url, hdr)
	if err != nil {
		return nil, err
	}
	r := &result{code: resp.StatusCode, proto: resp.Proto, hdr: resp.Header, body: b}
	var e echo
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && json.Unmarshal(b, &e) == nil && e.Service != "" {
		r.echo = &e
	}
	return r, nil
}

// doStatus sends one request and returns only the status code: the lean
// form for load loops, which decode no answer.
func doStatus(c *http.Client, method, url string) (int, error) {
	resp, _, err := send(c, method, url, nil)
	if err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// mustDo is do that fails the test on a transport error; call it from the
// test's goroutine only.
func mustDo(t testing.TB, c *http.Client, method, url string, hdr http.Header) *result {
	t.Helper()
	r, err := do(c, method, url, hdr)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

// doOrError is mustDo for other goroutines: a transport error fails the
// test with t.Error and gives an empty result (code 0).
func doOrError(t testing.TB, c *http.Client, method, url string, hdr http.Header) *result {
	r, err := do(c, method, url, hdr)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return &result{}
	}
	return r
}

// expectStatus sends method url with c and fails the test unless g
// answers want; a transport error says what became of g.
func expectStatus(t testing.TB, g *gateway, c *http.Client, method, url string, want int) {
	t.Helper()
	code, err := doStatus(c, method, url)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, g.diagnose(err))
	}
	if code != want {
		t.Fatalf("%s %s: %d, want %d", method, url, code, want)
	}
}

// client is a keep-alive mTLS client of g presenting a minted SVID of
// caller: HTTP/2 when h2, else HTTP/1.1.
func (g *gateway) client(t testing.TB, caller spiffeid.ID, h2 bool) *http.Client {
	return httpsClient(clientTLS(t, caller, g.id), h2, true)
}

// xfcc is the X-Forwarded-Client-Cert value svidgate must send upstream.
func xfcc(by, caller spiffeid.ID) string {
	return "By=" + by.String() + ";URI=" + caller.String()
}

// expectEcho checks a 200 answer of httpecho that saw exactly wantXFCC.
func expectEcho(t testing.TB, what string, r *result, wantXFCC string) {
	t.Helper()
	if r.code != http.StatusOK {
		t.Fatalf("%s: status %d, want 200; body: %.300q", what, r.code, r.body)
	}
	if r.echo == nil {
		t.Fatalf("%s: answer is not from httpecho: %.300q", what, r.body)
	}
	if len(r.echo.XFCC) != 1 || r.echo.XFCC[0] != wantXFCC {
		t.Fatalf("%s: upstream got X-Forwarded-Client-Cert %q, want exactly [%q]", what, r.echo.XFCC, wantXFCC)
	}
}

// grpcDirect dials an inbound listener over mTLS as caller.
func grpcDirect(t testing.TB, addr string, caller, server spiffeid.ID) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(clientTLS(t, caller, server))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// grpcPlain dials an outbound listener: plain gRPC, h2c with prior knowledge.
func grpcPlain(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}
