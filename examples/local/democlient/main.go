// Command democlient drives the local svidgate demo (make demo). It plays two
// client workloads that call through their outbound svidgate sidecars: "web",
// which the policies allow, and "batch", which they do not. It prints a short
// transcript and exits 1 if any call did not end as the demo expects.
//
// The client itself holds no SVID: identity is the sidecar's business.
//
// With the flags of compose.go (-edge, -burst, -audit) it also runs the
// further steps of the docker compose demo (make demo-compose): a north-south
// caller with and without a JWT-SVID at the edge gateway, a burst that the
// shared Redis limit cuts off, and the audit trail's checks and graph. There
// it runs as a registered workload of its own, the partner, which fetches its
// JWT-SVID from the Workload API.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type demo struct {
	out    io.Writer
	failed int
}

func (d *demo) step(n int, title, detail string) {
	fmt.Fprintf(d.out, "\n%d. %s\n   %s\n", n, title, detail)
}

func (d *demo) result(ok bool, format string, args ...any) {
	mark := "✓"
	if !ok {
		mark = "✗ UNEXPECTED:"
		d.failed++
	}
	fmt.Fprintf(d.out, "   %s %s\n", mark, fmt.Sprintf(format, args...))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("democlient", flag.ContinueOnError)
	fs.SetOutput(stderr)
	web := fs.String("web-http", "http://127.0.0.1:28001", "web's outbound sidecar listener for httpecho")
	webGRPC := fs.String("web-grpc", "127.0.0.1:28002", "web's outbound sidecar listener for grpcecho (h2c)")
	batch := fs.String("batch-http", "http://127.0.0.1:28011", "batch's outbound sidecar listener for httpecho")
	logs := fs.String("logs", ".demo/logs/", "where to look when a result differs (printed)")
	var cs composeSteps
	cs.flags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	d := &demo{out: stdout}
	hc := &http.Client{Timeout: 10 * time.Second}
	if cs.auditOnly {
		cs.run(d, hc)
		return d.exit(*logs)
	}

	fmt.Fprintln(stdout, "svidgate demo: every call below leaves the client as plain HTTP/gRPC on loopback;")
	fmt.Fprintln(stdout, "its outbound sidecar adds mTLS with the workload's X509-SVID, the service's inbound")
	fmt.Fprintln(stdout, "sidecar checks the caller's SPIFFE ID against its policy.")

	d.step(1, "allowed call: web → httpecho", "GET "+*web+"/orders/42")
	code, body, err := get(hc, *web+"/orders/42")
	switch {
	case err != nil:
		d.result(false, "%v", err)
	default:
		var e struct {
			XFCC []string `json:"xfcc"`
		}
		_ = json.Unmarshal(body, &e)
		d.result(code == http.StatusOK, "%d %s", code, http.StatusText(code))
		d.result(len(e.XFCC) == 1, "httpecho received X-Forwarded-Client-Cert: %s", strings.Join(e.XFCC, ", "))
	}

	d.step(2, "denied caller: batch → httpecho", "GET "+*batch+"/orders/42  (no enforced rule lets spiffe://example.org/demo/batch in)")
	code, body, err = get(hc, *batch+"/orders/42")
	if err != nil {
		d.result(false, "%v", err)
	} else {
		d.result(code == http.StatusForbidden, "%d %s: %s", code, http.StatusText(code), oneLine(body))
	}

	cc, err := grpc.NewClient("passthrough:///"+*webGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer cc.Close()
	tc := testpb.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	d.step(3, "allowed gRPC call: web → grpcecho", "/grpc.testing.TestService/UnaryCall via "+*webGRPC)
	resp, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 16, FillUsername: true})
	if err != nil {
		d.result(false, "%v", err)
	} else {
		d.result(true, "OK; grpcecho received X-Forwarded-Client-Cert: %s", resp.GetUsername())
	}
	stream, err := tc.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
		ResponseParameters: []*testpb.ResponseParameters{{Size: 8}, {Size: 8}, {Size: 8}, {Size: 8}, {Size: 8}},
	})
	n := 0
	for err == nil {
		if _, err = stream.Recv(); err == nil {
			n++
		}
	}
	d.result(err == io.EOF && n == 5, "/grpc.testing.TestService/StreamingOutputCall: %d messages, %v", n, status.Code(ignoreEOF(err)))

	d.step(4, "denied gRPC method: web → grpcecho", "/grpc.testing.TestService/EmptyCall (not in web's rule)")
	_, err = tc.EmptyCall(ctx, &testpb.Empty{})
	st := status.Convert(err)
	d.result(st.Code().String() == "PermissionDenied", "%v: %s", st.Code(), st.Message())

	if cs.enabled() {
		cs.run(d, hc)
	}

	return d.exit(*logs)
}

func (d *demo) exit(logs string) int {
	if d.failed > 0 {
		fmt.Fprintf(d.out, "\n%d result(s) differ from what the demo expects; see the logs: %s\n", d.failed, logs)
		return 1
	}
	return 0
}

func get(c *http.Client, url string) (int, []byte, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

func oneLine(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func ignoreEOF(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}
