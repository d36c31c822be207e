package integration

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// ---- tokens used, and the check that none of them leaked ----

// usedTokens holds every token the JWT tests sent or saw, valid or not;
// after the run no gateway log or audit file may contain any of them.
var usedTokens struct {
	sync.Mutex
	list []string
}

func useToken(tok string) string {
	usedTokens.Lock()
	usedTokens.list = append(usedTokens.list, tok)
	usedTokens.Unlock()
	return tok
}

func init() {
	afterTeardown = append(afterTeardown, checkNoTokenLeaked)
}

// checkNoTokenLeaked scans every file of the gateways' directories (audit
// trails, rotated ones, configs) and every log of the run for the tokens
// used, whole or by their claims or signature part.
func checkNoTokenLeaked(h *harness) error {
	usedTokens.Lock()
	tokens := slices.Clone(usedTokens.list)
	usedTokens.Unlock()
	if len(tokens) == 0 {
		return nil
	}
	type needle struct{ what, s string }
	var needles []needle
	seen := map[string]bool{}
	add := func(what, s string) {
		if len(s) >= 16 && !seen[s] {
			seen[s] = true
			needles = append(needles, needle{what, s})
		}
	}
	for i, tok := range tokens {
		// A whole token contains its claims part: searching for the parts
		// finds the token too, and pieces of it logged on their own.
		parts := strings.Split(tok, ".")
		if len(parts) != 3 || len(parts[1]) < 16 {
			add(fmt.Sprintf("token %d (%d bytes)", i, len(tok)), tok)
			continue
		}
		add(fmt.Sprintf("claims part of token %d (%.24s…)", i, parts[1]), parts[1])
		add(fmt.Sprintf("signature part of token %d", i), parts[2])
	}
	start := time.Now()
	var leaks []string
	files, audits := 0, 0
	for _, root := range []string{filepath.Join(h.dir, "gw"), filepath.Join(h.dir, "logs")} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if fi.Mode()&0o111 != 0 { // the gateways' binary copies
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files++
			if strings.HasPrefix(d.Name(), "audit") {
				audits++
			}
			text := string(b)
			for _, n := range needles {
				if strings.Contains(text, n.s) {
					leaks = append(leaks, fmt.Sprintf("%s contains %s", path, n.what))
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("token leak check: %w", err)
		}
	}
	if len(leaks) > 0 {
		return fmt.Errorf("token leak check: %d token(s) used, leaked:\n%s", len(tokens), indent(strings.Join(leaks, "\n")))
	}
	if _, err := os.Stat(filepath.Join(h.dir, "gw", "gw-jwt-in", "audit.jsonl")); err != nil || audits == 0 {
		return fmt.Errorf("token leak check: the audit trail of gw-jwt-in was not scanned (%v); the check proves nothing", err)
	}
	fmt.Fprintf(os.Stderr, "integration: token leak check: %d tokens, %d files (%d audit trails) scanned in %v, none found\n",
		len(tokens), files, audits, time.Since(start).Round(time.Millisecond))
	return nil
}

// ---- JWT-SVIDs from the real SPIRE ----

var agentTokens struct {
	sync.Mutex
	m map[string]string
}

// fetchJWTSVID fetches a JWT-SVID for id and audience from agent-a over
// the Workload API, as a workload: id's own copy of spire-agent.
func fetchJWTSVID(t testing.TB, id spiffeid.ID, audience string) string {
	t.Helper()
	key := id.String() + " " + audience
	agentTokens.Lock()
	tok, ok := agentTokens.m[key]
	agentTokens.Unlock()
	if ok {
		return tok
	}
	jwtAgentCLIs.Lock()
	cli, ok := jwtAgentCLIs.m[id]
	jwtAgentCLIs.Unlock()
	if !ok {
		t.Fatalf("no spire-agent copy registered for %s", id)
	}
	var out []byte
	err := poll(30*time.Second, 250*time.Millisecond, func() error {
		var err error
		out, err = env.spire.run(cli, "api", "fetch", "jwt", "-audience", audience, "-socketPath", env.agentA.sock, "-output", "json")
		return err // "no identity issued" until the agent has synced the entry
	})
	if err != nil {
		t.Fatalf("fetch JWT-SVID for %s: %v", id, err)
	}
	var resp []struct {
		SVIDs []struct {
			SPIFFEID string `json:"spiffe_id"`
			SVID     string `json:"svid"`
		} `json:"svids"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("spire-agent api fetch jwt: output is not the expected JSON: %v: %.300q", err, out)
	}
	for _, r := range resp {
		for _, s := range r.SVIDs {
			if s.SPIFFEID == id.String() && s.SVID != "" {
				tok = s.SVID
			}
		}
	}
	if tok == "" {
		t.Fatalf("spire-agent api fetch jwt: no JWT-SVID for %s in %.300q", id, out)
	}
	useToken(tok)
	agentTokens.Lock()
	if agentTokens.m == nil {
		agentTokens.m = map[string]string{}
	}
	agentTokens.m[key] = tok
	agentTokens.Unlock()
	return tok
}

// mintJWTSVID has the server sign a JWT-SVID for id with the given TTL.
func mintJWTSVID(t testing.TB, id spiffeid.ID, audience string, ttl time.Duration) string {
	t.Helper()
	out, err := env.spire.serverCLI([]string{"jwt", "mint"}, "-spiffeID", id.String(), "-audience", audience, "-ttl", ttl.String())
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(out))
	if strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \n") {
		t.Fatalf("spire-server jwt mint: unexpected output %.300q", out)
	}
	return useToken(tok)
}

// jwtAuthorities returns the JWT signing keys of the trust domain's bundle,
// as the server shows it in SPIFFE (JWKS) form.
func jwtAuthorities(t testing.TB) map[string]crypto.PublicKey {
	t.Helper()
	out, err := env.spire.serverCLI([]string{"bundle", "show"}, "-format", "spiffe")
	if err != nil {
		t.Fatal(err)
	}
	b, err := spiffebundle.Parse(td, out)
	if err != nil {
		t.Fatalf("bundle show -format spiffe: %v", err)
	}
	keys := b.JWTAuthorities()
	if len(keys) == 0 {
		t.Fatal("the trust bundle has no JWT authority")
	}
	return keys
}

// ---- crafting tokens ----

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func b64json(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b64url(b)
}

// jwtParts decodes a compact JWS's header and claims.
func jwtParts(t testing.TB, tok string) (hdr, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	for i, into := range []*map[string]any{&hdr, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("token part %d: %v", i, err)
		}
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("token part %d: %v", i, err)
		}
	}
	return hdr, claims
}

func jwtExpiry(t testing.TB, tok string) time.Time {
	t.Helper()
	_, c := jwtParts(t, tok)
	exp, ok := c["exp"].(float64)
	if !ok {
		t.Fatalf("token has no numeric exp: %v", c)
	}
	return time.Unix(int64(exp), 0)
}

// signES256 returns header.claims.signature, signed with key.
func signES256(t testing.TB, key *ecdsa.PrivateKey, hdr, claims any) string {
	t.Helper()
	input := b64json(t, hdr) + "." + b64json(t, claims)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return useToken(input + "." + b64url(sig))
}

// ---- audit records and clients ----

// checkJWTAudit checks what a record says of a token that passed validation.
func checkJWTAudit(t testing.TB, rec *auditRecord, tok string, sub spiffeid.ID, aud string) {
	t.Helper()
	if rec.JWT.Sub != sub.String() {
		t.Errorf("audit jwt.sub = %q, want %q; record %s", rec.JWT.Sub, sub, rec)
	}
	if !slices.Equal(rec.JWT.Aud, []string{aud}) {
		t.Errorf("audit jwt.aud = %q, want [%q]; record %s", rec.JWT.Aud, aud, rec)
	}
	if exp, err := time.Parse(time.RFC3339, rec.JWT.Exp); err != nil || !exp.Equal(jwtExpiry(t, tok)) {
		t.Errorf("audit jwt.exp = %q (%v), want %s", rec.JWT.Exp, err, jwtExpiry(t, tok).UTC().Format(time.RFC3339))
	}
	full := sha256Hex([]byte(tok))
	p := rec.JWT.TokenSHA256Prefix
	if len(p) < 12 || len(p) >= len(full) || !strings.HasPrefix(full, p) {
		t.Errorf("audit jwt.token_sha256_prefix = %q, want a short prefix of the token's SHA-256 %s", p, full)
	}
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func protoName(h2 bool) string {
	if h2 {
		return "h2"
	}
	return "h1"
}

// expectNoAuthorization fails when the upstream received an Authorization header.
func expectNoAuthorization(t testing.TB, what string, e *echo) {
	t.Helper()
	for k, v := range e.Headers {
		if strings.EqualFold(k, "Authorization") {
			t.Errorf("%s: the upstream received %d Authorization header(s) (%d bytes); the token must be removed before forwarding", what, len(v), len(strings.Join(v, "")))
		}
	}
}

// ---- tests ----

func TestJWTInboundValidToken(t *testing.T) {
	tp := env.topology(t, "jwt")
	t.Parallel()
	gw := tp.gateway(t, "gw-jwt-in")
	in := "https://" + gw.addr("jwt-in")
	tok := fetchJWTSVID(t, idAllowed, audJWTIn)

	for _, h2 := range []bool{false, true} {
		t.Run(protoName(h2), func(t *testing.T) {
			path := "/jwt/echo/valid-" + protoName(h2)
			r := mustDo(t, gw.client(t, idAllowed, h2), http.MethodGet, in+path, bearer(tok))
			expectEcho(t, "valid JWT-SVID", r, xfcc(idJWTIn, idAllowed))
			expectNoAuthorization(t, "valid JWT-SVID", r.echo)
			rec := gw.recordAt(t, "jwt-in", path)
			if rec.Decision.Result != "allow" || rec.Decision.Rule != "jwt-echo" || rec.Status != 200 || rec.Upstream.Status != 200 {
				t.Errorf("audit record: want allow by jwt-echo, 200 from upstream; got %s", rec)
			}
			if rec.Source.SPIFFEID != idAllowed.String() {
				t.Errorf("audit source.spiffe_id = %q, want %q", rec.Source.SPIFFEID, idAllowed)
			}
			checkJWTAudit(t, rec, tok, idAllowed, audJWTIn)
		})
	}

	// A token validated (and cached) for one rule is still checked against
	// the audience of every other rule it is presented to.
	t.Run("cached token, rule with another audience", func(t *testing.T) {
		path := "/jwt-b/echo/cached"
		r := mustDo(t, gw.client(t, idAllowed, false), http.MethodGet, in+path, bearer(tok))
		if r.code != http.StatusUnauthorized || r.echo != nil {
			t.Fatalf("token for %s on a rule requiring %s: status %d, want 401; body %.300q", audJWTIn, audJWTB, r.code, r.body)
		}
		rec := gw.recordAt(t, "jwt-in", path)
		if want := "jwt audience mismatch (rule jwt-other-audience)"; rec.Decision.Reason != want || rec.Status != 401 {
			t.Errorf("audit: want 401 with reason %q, got %s", want, rec)
		}
	})

	// The other workload's token is valid when it is that workload that
	// presents it: the control for TestJWTSubjectPeer.
	t.Run("another workload with its own token", func(t *testing.T) {
		path := "/jwt/echo/stranger-own-token"
		own := fetchJWTSVID(t, idStranger, audJWTIn)
		r := mustDo(t, gw.client(t, idStranger, false), http.MethodGet, in+path, bearer(own))
		expectEcho(t, "stranger with its own token", r, xfcc(idJWTIn, idStranger))
		checkJWTAudit(t, gw.recordAt(t, "jwt-in", path), own, idStranger, audJWTIn)
	})
}

func TestJWTSubjectPeer(t *testing.T) {
	tp := env.topology(t, "jwt")
	t.Parallel()
	gw := tp.gateway(t, "gw-jwt-in")
	in := "https://" + gw.addr("jwt-in")
	other := fetchJWTSVID(t, idStranger, audJWTIn) // valid, right audience, but not the caller's

	for _, h2 := range []bool{false, true} {
		t.Run(protoName(h2), func(t *testing.T) {
			path := "/jwt/echo/subject-peer-" + protoName(h2)
			r := mustDo(t, gw.client(t, idAllowed, h2), http.MethodGet, in+path, bearer(other))
			if r.code != http.StatusUnauthorized || r.echo != nil {
				t.Fatalf("%s presenting %s's token: status %d, want 401; body %.300q", idAllowed, idStranger, r.code, r.body)
			}
			rec := gw.recordAt(t, "jwt-in", path)
			if want := "jwt subject not allowed (rule jwt-echo)"; rec.Decision.Reason != want || rec.Decision.Result != "deny" || rec.Status != 401 {
				t.Errorf("audit: want deny, 401, reason %q; got %s", want, rec)
			}
			if rec.Source.SPIFFEID != idAllowed.String() || rec.JWT.Sub != idStranger.String() {
				t.Errorf("audit: want source %s and jwt.sub %s; got %s", idAllowed, idStranger, rec)
			}
		})
	}
}

// jwtRejection is a request gw-jwt-in must refuse with 401, and the reason
// its audit record must give.
type jwtRejection struct {
	name   string
	hdr    http.Header
	reason string
	jwt    bool // the record carries the token's claims (it passed validation)
	h1only bool
}

// jwtRejections crafts, from a valid JWT-SVID of test/allowed and the
// trust bundle's key, every kind of token svidgate must refuse.
func jwtRejections(t testing.TB) []jwtRejection {
	t.Helper()
	valid := fetchJWTSVID(t, idAllowed, audJWTIn)
	vparts := strings.Split(valid, ".")
	vhdr, vclaims := jwtParts(t, valid)
	kid, _ := vhdr["kid"].(string)
	keys := jwtAuthorities(t)
	bundleKey, ok := keys[kid]
	if !ok {
		t.Fatalf("the valid token's kid %q is not in the bundle (kids %v)", kid, slices.Collect(maps.Keys(keys)))
	}
	if _, isEC := bundleKey.(*ecdsa.PublicKey); !isEC {
		t.Fatalf("bundle key %q is %T; the RS256-over-EC case needs an EC key", kid, bundleKey)
	}
	der, err := x509.MarshalPKIXPublicKey(bundleKey)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})

	// A key of our own, not in any bundle.
	rogue, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := func(sub string, exp bool) map[string]any {
		c := map[string]any{"sub": sub, "aud": []string{audJWTIn}, "iat": now.Unix()}
		if exp {
			c["exp"] = now.Add(5 * time.Minute).Unix()
		}
		return c
	}
	es256 := map[string]any{"alg": "ES256", "typ": "JWT", "kid": kid}

	// alg none: the valid token's header with alg replaced, its claims, no signature.
	noneHdr := map[string]any{"alg": "none", "typ": "JWT", "kid": kid}
	algNone := useToken(b64json(t, noneHdr) + "." + vparts[1] + ".")
	// HS256 keyed with the bundle key's bytes (the classic alg confusion).
	hsInput := b64json(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + vparts[1]
	mac := hmac.New(sha256.New, pemKey)
	mac.Write([]byte(hsInput))
	hs256 := useToken(hsInput + "." + b64url(mac.Sum(nil)))
	// RS256 header naming the EC key, the valid claims and signature.
	rs256 := useToken(b64json(t, map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid}) + "." + vparts[1] + "." + vparts[2])
	// The valid claims re-signed by a key with a kid no bundle has.
	unknownKid := signES256(t, rogue, map[string]any{"alg": "ES256", "typ": "JWT", "kid": "svidgate-test-unknown-kid"}, vclaims)
	// The valid claims re-signed by a key not in the bundle, under the bundle key's kid.
	badSig := signES256(t, rogue, es256, vclaims)
	// A token without exp. SPIRE never mints one, and only the server holds
	// its keys: this one is signed by the rogue key under the bundle's kid.
	// svidgate checks exp before the signature, so no_exp is what it says.
	noExp := signES256(t, rogue, es256, claims(idAllowed.String(), false))
	// A subject in a trust domain svidgate has no JWT bundle for.
	foreign := signES256(t, rogue, es256, claims("spiffe://elsewhere.test/test/allowed", true))
	// A tampered valid token: a claim changed, the signature kept.
	tcl := maps.Clone(vclaims)
	tcl["aud"] = []string{audJWTIn, audJWTB}
	tampered := useToken(vparts[0] + "." + b64json(t, tcl) + "." + vparts[2])
	// Sizes: the documented 64 KiB, and just over max_token_bytes (8192).
	huge := useToken(strings.Repeat("A", 64<<10))
	over := useToken(vparts[0] + "." + vparts[1] + strings.Repeat("A", 8200) + "." + vparts[2])

	return []jwtRejection{
		{"no token", nil, "jwt: no_token", false, false},
		{"not bearer", http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}, "jwt: not_bearer", false, false},
		{"wrong audience", bearer(fetchJWTSVID(t, idAllowed, audNobody)), "jwt audience mismatch (rule jwt-echo)", true, false},
		{"alg none", bearer(algNone), "jwt: alg_not_allowed", false, false},
		{"HS256 keyed with the bundle key", bearer(hs256), "jwt: alg_not_allowed", false, false},
		{"RS256 header over the EC key", bearer(rs256), "jwt: alg_key_mismatch", false, false},
		{"unknown kid", bearer(unknownKid), "jwt: unknown_kid", false, false},
		{"signed by a key not in the bundle", bearer(badSig), "jwt: bad_signature", false, false},
		{"tampered claims", bearer(tampered), "jwt: bad_signature", false, false},
		{"no exp", bearer(noExp), "jwt: no_exp", false, false},
		{"subject in a trust domain without bundle", bearer(foreign), "jwt: no_bundle", false, false},
		{"two Authorization headers", http.Header{"Authorization": {"Bearer " + valid, "Bearer " + valid}}, "jwt: multiple_authorization", false, false},
		{"64 KiB token", bearer(huge), "jwt: too_large", false, true},
		{"token over max_token_bytes", bearer(over), "jwt: too_large", false, false},
	}
}

func TestJWTInboundRejected(t *testing.T) {
	tp := env.topology(t, "jwt")
	t.Parallel()
	gw := tp.gateway(t, "gw-jwt-in")
	in := "https://" + gw.addr("jwt-in")

	for i, tc := range jwtRejections(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, h2 := range []bool{false, true} {
				if h2 && tc.h1only {
					continue // over HTTP/2 a 64 KiB header exceeds the advertised header list size
				}
				path := fmt.Sprintf("/jwt/echo/rejected-%d-%s", i, protoName(h2))
				r := mustDo(t, gw.client(t, idAllowed, h2), http.MethodGet, in+path, tc.hdr)
				if r.code != http.StatusUnauthorized || r.echo != nil {
					t.Fatalf("%s: status %d, want 401 without reaching the upstream; body %.300q", protoName(h2), r.code, r.body)
				}
				rec := gw.recordAt(t, "jwt-in", path)
				if rec.Decision.Result != "deny" || rec.Decision.Reason != tc.reason || rec.Status != 401 || rec.Upstream.Status != 0 {
					t.Errorf("%s: audit: want deny, 401, reason %q, no upstream; got %s", protoName(h2), tc.reason, rec)
				}
				if hasClaims := rec.JWT.Sub != "" || rec.JWT.TokenSHA256Prefix != ""; hasClaims != tc.jwt {
					t.Errorf("%s: audit jwt = %+v; want claims recorded: %v", protoName(h2), rec.JWT, tc.jwt)
				}
			}
		})
	}
}

func TestJWTExpired(t *testing.T) {
	tp := env.topology(t, "jwt")
	t.Parallel()
	gw := tp.gateway(t, "gw-jwt-in")
	in := "https://" + gw.addr("jwt-in")
	c := gw.client(t, idAllowed, false)
	leeway, _ := time.ParseDuration(jwtInLeeway)

	// seen is presented while valid, so that it is cached; unseen only once
	// expired, so that the full validation path refuses it.
	seen := mintJWTSVID(t, idAllowed, audJWTIn, 4*time.Second)
	exp := jwtExpiry(t, seen)
	r := mustDo(t, c, http.MethodGet, in+"/jwt/echo/expiring-valid", bearer(seen))
	expectEcho(t, fmt.Sprintf("short-lived token before its exp (%s, now %s)", exp.Format(time.TimeOnly), time.Now().Format(time.TimeOnly)), r, xfcc(idJWTIn, idAllowed))
	unseen := mintJWTSVID(t, idAllowed, audJWTIn, 4*time.Second)

	// Minted one after the other, the two may expire a second apart.
	last := exp
	if e := jwtExpiry(t, unseen); e.After(last) {
		last = e
	}
	time.Sleep(time.Until(last.Add(leeway + 500*time.Millisecond)))
	for _, tc := range []struct{ name, tok string }{{"cached", seen}, {"not cached", unseen}} {
		path := "/jwt/echo/expired-" + strings.ReplaceAll(tc.name, " ", "-")
		r := mustDo(t, c, http.MethodGet, in+path, bearer(tc.tok))
		if r.code != http.StatusUnauthorized || r.echo != nil {
			t.Errorf("%s token past exp+leeway: status %d, want 401; body %.300q", tc.name, r.code, r.body)
			continue
		}
		rec := gw.recordAt(t, "jwt-in", path)
		if rec.Decision.Reason != "jwt: expired" || rec.Status != 401 {
			t.Errorf("%s token: audit: want 401 with reason %q; got %s", tc.name, "jwt: expired", rec)
		}
	}
}

func TestJWTGRPCUnauthenticated(t *testing.T) {
	tp := env.topology(t, "jwt")
	t.Parallel()
	gw := tp.gateway(t, "gw-jwt-in")
	client := testpb.NewTestServiceClient(grpcDirect(t, gw.addr("jwt-grpc-in"), idAllowed, idJWTIn))
	valid := fetchJWTSVID(t, idAllowed, audJWTIn)
	wrongAud := fetchJWTSVID(t, idAllowed, audNobody)

	for _, tc := range []struct {
		name   string
		tok    string
		want   codes.Code
		reason string
	}{
		{"valid token", valid, codes.OK, "allowed by rule"},
		{"no token", "", codes.Unauthenticated, "jwt: no_token"},
		{"wrong audience", wrongAud, codes.Unauthenticated, "jwt audience mismatch (rule jwt-grpc)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if tc.tok != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tc.tok)
			}
			_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
			if got := status.Code(err); got != tc.want {
				t.Fatalf("UnaryCall: %v (code %v), want %v", err, got, tc.want)
			}
			wantStatus := fmt.Sprint(int(tc.want))
			rec := gw.waitRecord(t, tc.name, func(r *auditRecord) bool {
				return r.Listener == "jwt-grpc-in" && r.Decision.Reason == tc.reason && r.Request.GRPCStatus == wantStatus
			})
			if rec.Request.GRPCMethod != "/grpc.testing.TestService/UnaryCall" {
				t.Errorf("audit grpc_method = %q", rec.Request.GRPCMethod)
			}
			if tc.want == codes.OK {
				checkJWTAudit(t, rec, tc.tok, idAllowed, audJWTIn)
			}
		})
	}
}

func TestEdgeRequiresJWTSVID(t *testing.T) {
	tp := env.topology(t, "jwt")
	t.Parallel()
	edge := tp.gateway(t, "gw-jwt-edge")
	inner := tp.gateway(t, "gw-jwt-in")
	url := "https://" + edge.addr("jwt-edge")
	m, err := env.spire.mint(idAllowed)
	if err != nil {
		t.Fatal(err)
	}
	// TLS that verifies the edge's X509-SVID and presents no certificate.
	noCert := tlsconfig.TLSClientConfig(m.bundle, tlsconfig.AuthorizeID(idJWTEdge))

	valid := fetchJWTSVID(t, idAllowed, audJWTEdge)
	forInner := fetchJWTSVID(t, idAllowed, audJWTIn) // valid, another audience
	notAllowed := fetchJWTSVID(t, idStranger, audJWTEdge)
	rogue, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	vhdr, vclaims := jwtParts(t, valid)
	forged := signES256(t, rogue, vhdr, vclaims)

	for _, h2 := range []bool{false, true} {
		t.Run(protoName(h2), func(t *testing.T) {
			c := httpsClient(noCert.Clone(), h2, true)
			for _, tc := range []struct {
				name   string
				hdr    http.Header
				want   int
				reason string
			}{
				{"no token", nil, 401, "jwt: no_token"},
				{"wrong audience", bearer(forInner), 401, "jwt: audience: token is not for " + audJWTEdge},
				{"forged signature", bearer(forged), 401, "jwt: bad_signature"},
				{"valid token, subject not allowed by the edge policy", bearer(notAllowed), 403, "no rule matched"},
			} {
				path := "/edge/" + strings.ReplaceAll(tc.name, " ", "-") + "-" + protoName(h2)
				path = strings.ReplaceAll(path, ",", "")
				r := mustDo(t, c, http.MethodGet, url+path, tc.hdr)
				if r.code != tc.want || r.echo != nil {
					t.Errorf("%s: status %d, want %d without reaching the service; body %.300q", tc.name, r.code, tc.want, r.body)
					continue
				}
				rec := edge.recordAt(t, "jwt-edge", path)
				if rec.Decision.Reason != tc.reason || rec.Status != tc.want || rec.Mode != "edge" {
					t.Errorf("%s: edge audit: want %d with reason %q; got %s", tc.name, tc.want, tc.reason, rec)
				}
			}

			path := "/edge/valid-" + protoName(h2)
			r := mustDo(t, c, http.MethodGet, url+path, bearer(valid))
			// The edge reached the service over mTLS as itself.
			expectEcho(t, "edge with a valid JWT-SVID", r, xfcc(idJWTIn, idJWTEdge))
			expectNoAuthorization(t, "edge", r.echo)
			if r.echo.Path != path {
				t.Errorf("the service saw path %q, want %q", r.echo.Path, path)
			}
			rec := edge.recordAt(t, "jwt-edge", path)
			if rec.Decision.Result != "allow" || rec.Decision.Rule != "edge-allowed" || rec.Source.SPIFFEID != idAllowed.String() || rec.Status != 200 {
				t.Errorf("edge audit: want allow by edge-allowed for caller %s (the token's subject), 200; got %s", idAllowed, rec)
			}
			checkJWTAudit(t, rec, valid, idAllowed, audJWTEdge)
			irec := inner.recordAt(t, "jwt-in", path)
			if irec.Decision.Rule != "edge-internal" || irec.Source.SPIFFEID != idJWTEdge.String() || irec.Status != 200 {
				t.Errorf("internal gateway audit: want allow by edge-internal from %s; got %s", idJWTEdge, irec)
			}
		})
	}
}

func TestEgressAttachesJWTSVID(t *testing.T) {
	tp := env.topology(t, "jwt")
	t.Parallel()
	out := tp.gateway(t, "gw-jwt-out")
	in := tp.gateway(t, "gw-jwt-in")
	c := plainClient(false, true)
	egress := "http://" + out.addr("jwt-egress")

	// The upstream's rule requires a JWT-SVID for audJWTIn whose subject is
	// the mTLS caller, gw-jwt-out.
	r := mustDo(t, c, http.MethodGet, egress+"/jwt/echo/egress", nil)
	expectEcho(t, "outbound with jwt_audience", r, xfcc(idJWTIn, idJWTOut))
	expectNoAuthorization(t, "outbound with jwt_audience", r.echo)
	rec := in.recordAt(t, "jwt-in", "/jwt/echo/egress")
	if rec.Decision.Rule != "jwt-echo" || rec.JWT.Sub != idJWTOut.String() || !slices.Equal(rec.JWT.Aud, []string{audJWTIn}) {
		t.Errorf("upstream audit: want allow by jwt-echo of a token for %s from %s; got %s", audJWTIn, idJWTOut, rec)
	}

	// Without jwt_audience the same upstream refuses.
	r = mustDo(t, c, http.MethodGet, "http://"+out.addr("jwt-egress-none")+"/jwt/echo/egress-none", nil)
	if r.code != http.StatusUnauthorized || r.echo != nil {
		t.Fatalf("outbound without jwt_audience: status %d, want 401; body %.300q", r.code, r.body)
	}
	nrec := in.recordAt(t, "jwt-in", "/jwt/echo/egress-none")
	if nrec.Decision.Reason != "jwt: no_token" || nrec.Source.SPIFFEID != idJWTOut.String() {
		t.Errorf("upstream audit: want no_token from %s; got %s", idJWTOut, nrec)
	}

	// A rule with forward = true shows the upstream the token attached: a
	// JWT-SVID of gw-jwt-out, the same one each time (cached), replacing
	// whatever the local app sent.
	var attached []string
	for i, hdr := range []http.Header{nil, bearer(useToken("app-supplied-" + strings.Repeat("x", 40)))} {
		path := fmt.Sprintf("/jwt-fwd/%d", i)
		r := mustDo(t, c, http.MethodGet, egress+path, hdr)
		expectEcho(t, "forwarding rule", r, xfcc(idJWTIn, idJWTOut))
		auth := r.echo.Headers["Authorization"]
		if len(auth) != 1 || !strings.HasPrefix(auth[0], "Bearer ") {
			t.Fatalf("upstream got Authorization %q, want one Bearer token", auth)
		}
		tok := useToken(strings.TrimPrefix(auth[0], "Bearer "))
		_, claims := jwtParts(t, tok)
		if claims["sub"] != idJWTOut.String() {
			t.Errorf("attached token sub = %v, want %s", claims["sub"], idJWTOut)
		}
		if !slices.Contains(anyStrings(claims["aud"]), audJWTIn) {
			t.Errorf("attached token aud = %v, want %s", claims["aud"], audJWTIn)
		}
		checkJWTAudit(t, in.recordAt(t, "jwt-in", path), tok, idJWTOut, audJWTIn)
		attached = append(attached, tok)
	}
	if attached[0] != attached[1] {
		t.Errorf("two requests in a row attached different tokens; a token must be reused until shortly before its expiry")
	}
	if want := sha256Hex([]byte(attached[0])); !strings.HasPrefix(want, rec.JWT.TokenSHA256Prefix) || rec.JWT.TokenSHA256Prefix == "" {
		t.Errorf("the first egress request carried token %s…, not the cached one %s…", rec.JWT.TokenSHA256Prefix, want[:16])
	}
}

// ---- small helpers ----

func anyStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
