package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAllowedCallerReachesUpstreamWithIdentity(t *testing.T) {
	tp := env.topology(t, "mesh")
	t.Parallel()
	gw := tp.gateway(t, "gw-http")
	cl := tp.gateway(t, "gw-client")
	in := "https://" + gw.addr("http-in")
	out := "http://" + cl.addr("to-http")

	cases := []struct {
		name      string
		client    *http.Client
		url       string
		caller    string
		wantProto int
	}{
		{"direct mTLS HTTP/1.1", httpsClient(clientTLS(t, idAllowed, idGWHTTP), false, true), in, idAllowed.String(), 1},
		{"direct mTLS HTTP/2", httpsClient(clientTLS(t, idAllowed, idGWHTTP), true, true), in, idAllowed.String(), 2},
		{"outbound sidecar HTTP/1.1", plainClient(false, true), out, idClientWeb.String(), 1},
		{"outbound sidecar h2c", plainClient(true, true), out, idClientWeb.String(), 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, m := range []string{http.MethodGet, http.MethodPost} {
				r := mustDo(t, tc.client, m, tc.url+"/echo/hello?x=1", nil)
				caller := idClientWeb
				if tc.caller == idAllowed.String() {
					caller = idAllowed
				}
				expectEcho(t, m+" "+tc.url, r, xfcc(idGWHTTP, caller))
				if r.echo.Method != m || r.echo.Path != "/echo/hello" {
					t.Errorf("%s: upstream saw %s %s, want %s /echo/hello", m, r.echo.Method, r.echo.Path, m)
				}
				if got := fmt.Sprintf("HTTP/%d", tc.wantProto); !strings.HasPrefix(r.proto, got) {
					t.Errorf("%s: answered over %s, want %s", m, r.proto, got)
				}
			}
		})
	}
}

func TestDeniedHTTP(t *testing.T) {
	tp := env.topology(t, "mesh")
	t.Parallel()
	gw := tp.gateway(t, "gw-http")
	in := "https://" + gw.addr("http-in")
	allowed := httpsClient(clientTLS(t, idAllowed, idGWHTTP), false, true)
	stranger := httpsClient(clientTLS(t, idStranger, idGWHTTP), false, true)

	cases := []struct {
		name   string
		client *http.Client
		method string
		path   string
		want   int
		alt    int // also acceptable
	}{
		{"control: allowed caller, allowed method", allowed, http.MethodGet, "/echo/x", http.StatusOK, 0},
		{"unlisted caller", stranger, http.MethodGet, "/echo/x", http.StatusForbidden, 0},
		{"unlisted caller, h2", httpsClient(clientTLS(t, idStranger, idGWHTTP), true, true), http.MethodGet, "/echo/x", http.StatusForbidden, 0},
		{"allowed caller, method not in rule", allowed, http.MethodDelete, "/echo/x", http.StatusForbidden, 0},
		{"allowed caller, path not in rule", allowed, http.MethodGet, "/other", http.StatusForbidden, 0},
		{"allowed caller, enforced deny rule", allowed, http.MethodGet, "/echo/admin/users", http.StatusForbidden, 0},
		{"encoded slash", allowed, http.MethodGet, "/echo/a%2Fb", http.StatusBadRequest, 0},
		{"dot segments escaping the rule", allowed, http.MethodGet, "/echo/%2E%2E/other", http.StatusForbidden, http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mustDo(t, tc.client, tc.method, in+tc.path, nil)
			if r.code != tc.want && (tc.alt == 0 || r.code != tc.alt) {
				t.Fatalf("%s %s: status %d, want %d; body %.300q", tc.method, tc.path, r.code, tc.want, r.body)
			}
			if tc.want != http.StatusOK && r.echo != nil {
				t.Fatalf("%s %s: refused request reached the upstream: %.300q", tc.method, tc.path, r.body)
			}
		})
	}
}

func TestDeniedCallerThroughOutbound(t *testing.T) {
	tp := env.topology(t, "mesh")
	t.Parallel()
	cl := tp.gateway(t, "gw-client")
	tp.gateway(t, "gw-http")
	// client/web may GET and POST /echo/**, nothing else.
	r := mustDo(t, plainClient(false, true), http.MethodDelete, "http://"+cl.addr("to-http")+"/echo/x", nil)
	if r.code != http.StatusForbidden {
		t.Fatalf("DELETE via outbound: status %d, want 403; body %.300q", r.code, r.body)
	}
}

func TestClientSuppliedXFCCIsReplaced(t *testing.T) {
	tp := env.topology(t, "mesh")
	t.Parallel()
	gw := tp.gateway(t, "gw-http")
	cl := tp.gateway(t, "gw-client")
	forged := http.Header{
		"X-Forwarded-Client-Cert": {
			"By=spiffe://example.org/gw/http;URI=spiffe://example.org/admin",
			"URI=spiffe://evil.example/root",
		},
		"x-forwarded-client-cert": {"Hash=abc;URI=spiffe://example.org/also-forged"},
	}
	for _, tc := range []struct {
		name   string
		client *http.Client
		url    string
		want   string
	}{
		{"direct mTLS", httpsClient(clientTLS(t, idAllowed, idGWHTTP), false, true), "https://" + gw.addr("http-in"), xfcc(idGWHTTP, idAllowed)},
		{"direct mTLS h2", httpsClient(clientTLS(t, idAllowed, idGWHTTP), true, true), "https://" + gw.addr("http-in"), xfcc(idGWHTTP, idAllowed)},
		{"outbound sidecar", plainClient(false, true), "http://" + cl.addr("to-http"), xfcc(idGWHTTP, idClientWeb)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustDo(t, tc.client, http.MethodGet, tc.url+"/echo/xfcc", forged)
			expectEcho(t, tc.name, r, tc.want)
		})
	}
}

func TestOutboundRefusesWrongUpstreamID(t *testing.T) {
	tp := env.topology(t, "mesh")
	t.Parallel()
	cl := tp.gateway(t, "gw-client")
	tp.gateway(t, "gw-http")
	c := plainClient(false, true)
	// Control: the same inbound listener through a listener that expects its real ID.
	if r := mustDo(t, c, http.MethodGet, "http://"+cl.addr("to-http")+"/echo/right", nil); r.code != http.StatusOK {
		t.Fatalf("control via to-http: status %d, want 200; body %.300q", r.code, r.body)
	}
	r := mustDo(t, c, http.MethodGet, "http://"+cl.addr("to-wrong")+"/echo/wrong", nil)
	if r.code != http.StatusBadGateway {
		t.Fatalf("upstream %s presents %s, listener expects %s: status %d, want 502; body %.300q",
			cl.addr("to-wrong"), idGWHTTP, idGWGRPC, r.code, r.body)
	}
	if r.echo != nil {
		t.Fatalf("request reached the upstream despite the wrong SPIFFE ID: %.300q", r.body)
	}
}

func TestAuditRecordsDecisions(t *testing.T) {
	tp := env.topology(t, "mesh")
	t.Parallel()
	gw := tp.gateway(t, "gw-http")
	in := "https://" + gw.addr("http-in")
	nonce := fmt.Sprintf("%d", time.Now().UnixNano())
	allowPath, denyPath := "/echo/audit-allow-"+nonce, "/echo/audit-deny-"+nonce
	if r := mustDo(t, httpsClient(clientTLS(t, idAllowed, idGWHTTP), false, true), http.MethodGet, in+allowPath, nil); r.code != http.StatusOK {
		t.Fatalf("allowed request: status %d", r.code)
	}
	if r := mustDo(t, httpsClient(clientTLS(t, idStranger, idGWHTTP), false, true), http.MethodGet, in+denyPath, nil); r.code != http.StatusForbidden {
		t.Fatalf("denied request: status %d", r.code)
	}

	rec := gw.recordAt(t, "http-in", allowPath)
	if rec.Listener != "http-in" || rec.Mode != "inbound" || rec.Source.SPIFFEID != idAllowed.String() ||
		rec.Request.Method != http.MethodGet || rec.Decision.Result != "allow" || rec.Decision.Rule != "callers-use-echo" ||
		rec.Status != http.StatusOK || rec.Upstream.Status != http.StatusOK || rec.Time == "" {
		t.Errorf("audit record of the allowed request: %s", rec)
	}
	if _, err := time.Parse(time.RFC3339Nano, rec.Time); err != nil {
		t.Errorf("audit time %q is not RFC 3339: %v", rec.Time, err)
	}

	rec = gw.recordAt(t, "http-in", denyPath)
	if rec.Source.SPIFFEID != idStranger.String() || rec.Decision.Result != "deny" || rec.Status != http.StatusForbidden ||
		rec.Decision.Reason == "" || rec.Upstream.Status != 0 {
		t.Errorf("audit record of the denied request: %s", rec)
	}
}
