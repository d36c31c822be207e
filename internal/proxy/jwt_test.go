package proxy

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/svidgate/svidgate/internal/fakeworkload"
	"github.com/svidgate/svidgate/internal/jwtauth"
)

const jwtPolicy = `version = 1

[[rule]]
id      = "web-reads"
effect  = "allow"
callers = ["spiffe://example.org/web"]
paths   = ["/orders/**"]
[rule.jwt]
audience = "spiffe://example.org/orders"
`

// A rule with [rule.jwt] needs a valid token for its audience whose
// subject is the mTLS caller; the token is not forwarded.
func TestRuleRequiresJWT(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	auth := fakeworkload.NewAuthority(t, "example.org", "k1", jose.ES256)
	v, err := jwtauth.NewValidator(jwtbundle.NewSet(fakeworkload.Bundle(td, auth)), jwtauth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := startWithDeps(t, jwtPolicy, func(d *Deps) { d.JWT = v })
	web := f.client(t, "spiffe://example.org/web", true)
	webID := spiffeid.RequireFromString("spiffe://example.org/web")
	good := auth.Mint(t, webID, []string{"spiffe://example.org/orders"}, time.Minute)
	tests := []struct {
		name   string
		auth   []string
		status int
		reason string
	}{
		{"valid token", []string{"Bearer " + good}, 200, ""},
		{"no token", nil, 401, "jwt: no_token"},
		{"wrong audience", []string{"Bearer " + auth.Mint(t, webID, []string{"spiffe://example.org/billing"}, time.Minute)}, 401, "jwt audience mismatch"},
		{"another workload's token", []string{"Bearer " + auth.Mint(t, spiffeid.RequireFromString("spiffe://example.org/batch"), []string{"spiffe://example.org/orders"}, time.Minute)}, 401, "jwt subject not allowed"},
		{"two Authorization headers", []string{"Bearer " + good, "Bearer " + good}, 401, "jwt: multiple_authorization"},
		{"alg none", []string{"Bearer eyJhbGciOiJub25lIiwia2lkIjoiazEifQ.eyJzdWIiOiJzcGlmZmU6Ly9leGFtcGxlLm9yZy93ZWIifQ."}, 401, "jwt: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "https://"+f.addr+"/orders/1", nil)
			for _, a := range tt.auth {
				req.Header.Add("Authorization", a)
			}
			resp, err := web.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == 200 {
				got := <-f.seen
				if a := got.Header.Get("Authorization"); a != "" {
					t.Errorf("the token reached the upstream: %q", a)
				}
			}
		})
	}
	recs := f.sink.records(t, f.writer, len(tests))
	for i, r := range recs {
		if tt := tests[i]; tt.reason != "" && !strings.Contains(r.Decision.Reason, tt.reason) {
			t.Errorf("%s: audit reason %q, want %q", tt.name, r.Decision.Reason, tt.reason)
		}
		if strings.Contains(r.Decision.Reason, good) || strings.Contains(r.JWT.TokenSHA256Prefix, good) {
			t.Error("the token is in the audit record")
		}
	}
	if recs[0].JWT.Sub != "spiffe://example.org/web" || recs[0].JWT.Aud[0] != "spiffe://example.org/orders" || recs[0].JWT.TokenSHA256Prefix == "" {
		t.Errorf("jwt section %+v", recs[0].JWT)
	}
}
