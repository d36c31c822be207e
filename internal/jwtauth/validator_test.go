package jwtauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// countingSource counts bundle look-ups: a cache hit makes none.
type countingSource struct {
	jwtbundle.Source
	n atomic.Int64
}

func (c *countingSource) GetJWTBundleForTrustDomain(td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	c.n.Add(1)
	return c.Source.GetJWTBundleForTrustDomain(td)
}

func newValidator(t testing.TB, src jwtbundle.Source, opts Options) *Validator {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return t0 }
	}
	v, err := NewValidator(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func with(edit func(map[string]any)) map[string]any {
	c := claims()
	edit(c)
	return c
}

func TestValidate(t *testing.T) {
	ec, rs := keys(t)
	otherEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	valid := sign(t, hdr("ES256", "ec"), claims(), ec)
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"`+subject+`","aud":"orders","exp":1999999999}`)) + "." + parts[2]
	big := with(func(c map[string]any) { c["pad"] = strings.Repeat("x", 64<<10) })

	tests := []struct {
		name  string
		token string
		want  *Error // nil: valid
	}{
		{"valid ES256", valid, nil},
		{"valid RS256", sign(t, hdr("RS256", "rsa"), claims(), rs), nil},
		{"valid RS512", sign(t, hdr("RS512", "rsa"), claims(), rs), nil},
		{"valid PS256", sign(t, hdr("PS256", "rsa"), claims(), rs), nil},
		{"valid without typ", sign(t, map[string]any{"alg": "ES256", "kid": "ec"}, claims(), ec), nil},
		{"valid typ JOSE", sign(t, map[string]any{"alg": "ES256", "kid": "ec", "typ": "JOSE"}, claims(), ec), nil},
		{"valid single string aud", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["aud"] = "orders" }), ec), nil},
		{"valid expired within leeway", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["exp"] = t0.Add(-5 * time.Second).Unix() }), ec), nil},
		{"valid nbf within leeway", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["nbf"] = t0.Add(5 * time.Second).Unix() }), ec), nil},

		{"64 KiB token", sign(t, hdr("ES256", "ec"), big, ec), ErrTokenTooLarge},

		{"alg none unsigned", sign(t, hdr("none", "ec"), claims(), nil), ErrAlgNotAllowed},
		{"alg none with signature", strings.Replace(valid, parts[0], base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"ec"}`)), 1), ErrAlgNotAllowed},
		{"HS256 keyed with the bundle key", sign(t, hdr("HS256", "ec"), claims(), publicKeyBytes(t, ec.Public())), ErrAlgNotAllowed},
		{"HS256 keyed with the RSA bundle key", sign(t, hdr("HS256", "rsa"), claims(), publicKeyBytes(t, rs.Public())), ErrAlgNotAllowed},
		{"EdDSA", sign(t, hdr("EdDSA", "ec"), claims(), nil), ErrAlgNotAllowed},
		{"alg missing", sign(t, map[string]any{"kid": "ec"}, claims(), ec), ErrAlgNotAllowed},
		{"alg upper-case key", sign(t, map[string]any{"ALG": "ES256", "kid": "ec"}, claims(), ec), ErrAlgNotAllowed},
		{"alg lower-case value", sign(t, hdr("es256", "ec"), claims(), ec), ErrAlgNotAllowed},
		{"alg not a string", sign(t, map[string]any{"alg": 256, "kid": "ec"}, claims(), ec), ErrAlgNotAllowed},

		{"RS256 header over an EC key", sign(t, hdr("RS256", "ec"), claims(), rs), ErrKeyMismatch},
		{"PS256 header over an EC key", sign(t, hdr("PS256", "ec"), claims(), rs), ErrKeyMismatch},
		{"ES256 header over an RSA key", sign(t, hdr("ES256", "rsa"), claims(), ec), ErrKeyMismatch},
		{"ES384 header over a P-256 key", sign(t, hdr("ES384", "ec"), claims(), ec), ErrKeyMismatch},

		{"typ JWS", sign(t, map[string]any{"alg": "ES256", "kid": "ec", "typ": "JWS"}, claims(), ec), ErrBadType},
		{"crit header", sign(t, map[string]any{"alg": "ES256", "kid": "ec", "crit": []string{"exp"}}, claims(), ec), ErrMalformed},
		{"no kid", sign(t, hdr("ES256", ""), claims(), ec), ErrNoKeyID},
		{"unknown kid", sign(t, hdr("ES256", "gone"), claims(), ec), ErrUnknownKeyID},

		{"trust domain without bundle", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["sub"] = "spiffe://other.org/web" }), ec), ErrNoBundle},
		{"subject without path", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["sub"] = "spiffe://example.org" }), ec), ErrBadSubject},
		{"subject not a SPIFFE ID", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["sub"] = "https://example.org/web" }), ec), ErrBadSubject},
		{"subject with dot segment", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["sub"] = "spiffe://example.org/a/../b" }), ec), ErrBadSubject},
		{"no subject", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { delete(c, "sub") }), ec), ErrBadSubject},

		{"no aud", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { delete(c, "aud") }), ec), ErrNoAudience},
		{"empty aud string", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["aud"] = "" }), ec), ErrNoAudience},
		{"empty aud array", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["aud"] = []string{} }), ec), ErrNoAudience},
		{"empty string in aud", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["aud"] = []string{"orders", ""} }), ec), ErrNoAudience},
		{"aud of numbers", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["aud"] = []int{1} }), ec), ErrMalformed},

		{"no exp", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { delete(c, "exp") }), ec), ErrNoExpiry},
		{"exp a string", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["exp"] = "tomorrow" }), ec), ErrMalformed},
		{"exp beyond year 9999", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["exp"] = 1e300 }), ec), ErrMalformed},
		{"expired", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["exp"] = t0.Add(-11 * time.Second).Unix() }), ec), ErrExpired},
		{"expires now plus leeway", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["exp"] = t0.Add(-10 * time.Second).Unix() }), ec), ErrExpired},
		{"nbf in the future", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["nbf"] = t0.Add(time.Minute).Unix() }), ec), ErrNotYetValid},
		{"iat in the future", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["iat"] = t0.Add(time.Minute).Unix() }), ec), ErrIssuedInFuture},
		{"jti not a string", sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["jti"] = 7 }), ec), ErrMalformed},

		{"claims changed after signing", tampered, ErrBadSignature},
		{"signed by another key", sign(t, hdr("ES256", "ec"), claims(), otherEC), ErrBadSignature},
		{"signature altered", valid[:len(valid)-4] + "AAAA", ErrBadSignature},

		{"two parts", parts[0] + "." + parts[1], ErrMalformed},
		{"four parts", valid + ".x", ErrMalformed},
		{"empty signature", parts[0] + "." + parts[1] + ".", ErrMalformed},
		{"empty", "", ErrMalformed},
		{"newline inside", parts[0] + "." + parts[1][:4] + "\n" + parts[1][4:] + "." + parts[2], ErrMalformed},
		{"padding", parts[0] + "=." + parts[1] + "." + parts[2], ErrMalformed},
		{"non-canonical base64 signature", parts[0] + "." + parts[1] + "." + flipLastBit(parts[2]), ErrMalformed},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("alg")) + "." + parts[1] + "." + parts[2], ErrMalformed},
		{"header JSON null", base64.RawURLEncoding.EncodeToString([]byte("null")) + "." + parts[1] + "." + parts[2], ErrMalformed},
		{"claims not JSON", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte("[]")) + "." + parts[2], ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotReason string
			var gotHit bool
			v := newValidator(t, testBundles(t), Options{OnResult: func(r string, hit bool) { gotReason, gotHit = r, hit }})
			c, err := v.Validate(tt.token)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if c.Subject != subject || len(c.Audience) == 0 || c.Expiry.IsZero() || c.Raw["sub"] != subject {
					t.Errorf("claims %+v", c)
				}
				if c.TokenHash != sha256.Sum256([]byte(tt.token)) {
					t.Error("TokenHash is not the SHA-256 of the token")
				}
				if gotReason != ReasonOK || gotHit {
					t.Errorf("OnResult(%q, %v), want (ok, false)", gotReason, gotHit)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Validate = %v, want %v", err, tt.want)
			}
			if c != nil {
				t.Error("claims returned with an error")
			}
			if Reason(err) != tt.want.Reason() || gotReason != tt.want.Reason() {
				t.Errorf("Reason %q, OnResult %q, want %q", Reason(err), gotReason, tt.want.Reason())
			}
			if !strings.HasPrefix(err.Error(), "jwtauth: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestValidateClaims(t *testing.T) {
	ec, _ := keys(t)
	v := newValidator(t, testBundles(t), Options{})
	cl := with(func(c map[string]any) { c["scope"] = []string{"read", "write"} })
	c, err := v.Validate(sign(t, hdr("ES256", "ec"), cl, ec))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Expiry.Equal(t0.Add(5*time.Minute)) || !c.IssuedAt.Equal(t0.Add(-time.Second)) || c.ID != "id-1" {
		t.Errorf("times or jti: %+v", c)
	}
	if !c.HasAudience("orders") || !c.HasAudience("billing") {
		t.Error("HasAudience false for an audience of the token")
	}
	for _, aud := range []string{"payments", "", "Orders", "order"} {
		if c.HasAudience(aud) {
			t.Errorf("HasAudience(%q) = true", aud)
		}
	}
	if s, ok := c.Raw["scope"].([]any); !ok || len(s) != 2 || s[0] != "read" {
		t.Errorf("Raw scope = %#v", c.Raw["scope"])
	}
	if got, want := ShortHash(c), hex.EncodeToString(c.TokenHash[:])[:12]; got != want || len(got) != 12 {
		t.Errorf("ShortHash = %q, want %q", got, want)
	}
}

func TestTooLargeIsRefusedBeforeParsing(t *testing.T) {
	ec, _ := keys(t)
	src := &countingSource{Source: testBundles(t)}
	v := newValidator(t, src, Options{MaxTokenBytes: 1024})
	tok := sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["pad"] = strings.Repeat("x", 1024) }), ec)
	if _, err := v.Validate(tok); !errors.Is(err, ErrTokenTooLarge) {
		t.Fatalf("Validate = %v, want too large", err)
	}
	if _, err := v.Validate(strings.Repeat("!", 64<<10)); !errors.Is(err, ErrTokenTooLarge) {
		t.Fatalf("Validate(64 KiB of junk) = %v, want too large, not malformed", err)
	}
	if src.n.Load() != 0 {
		t.Error("an oversized token reached the bundle look-up")
	}
}

func TestCache(t *testing.T) {
	ec, _ := keys(t)
	clk := &clock{now: t0}
	src := &countingSource{Source: testBundles(t)}
	var hits, misses int
	v := newValidator(t, src, Options{Now: clk.Now, OnResult: func(_ string, hit bool) {
		if hit {
			hits++
		} else {
			misses++
		}
	}})
	tok := sign(t, hdr("ES256", "ec"), claims(), ec) // exp t0+5m

	first, err := v.Validate(tok)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(5 * time.Minute) // at exp, within the leeway
	second, err := v.Validate(tok)
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Error("a cache hit returned different claims")
	}
	if src.n.Load() != 1 || hits != 1 || misses != 1 {
		t.Errorf("bundle look-ups %d, hits %d, misses %d; want 1, 1, 1", src.n.Load(), hits, misses)
	}

	clk.Add(DefaultLeeway) // exp + leeway: no longer valid
	if _, err := v.Validate(tok); !errors.Is(err, ErrExpired) || hits != 2 {
		t.Fatalf("Validate after exp+leeway = %v (hits %d), want expired from the cache", err, hits)
	}
	if v.cache.Len() != 0 {
		t.Error("expired entry kept in the cache")
	}
	if _, err := v.Validate(tok); !errors.Is(err, ErrExpired) || misses != 2 {
		t.Fatalf("Validate again = %v (misses %d), want expired on the full path", err, misses)
	}
}

func TestCacheDisabledAndBounded(t *testing.T) {
	ec, _ := keys(t)
	src := &countingSource{Source: testBundles(t)}
	v := newValidator(t, src, Options{CacheSize: -1})
	tok := sign(t, hdr("ES256", "ec"), claims(), ec)
	for range 3 {
		if _, err := v.Validate(tok); err != nil {
			t.Fatal(err)
		}
	}
	if src.n.Load() != 3 {
		t.Errorf("bundle look-ups %d with the cache disabled, want 3", src.n.Load())
	}

	v = newValidator(t, testBundles(t), Options{CacheSize: 2})
	for i := range 5 {
		if _, err := v.Validate(sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["jti"] = string(rune('a' + i)) }), ec)); err != nil {
			t.Fatal(err)
		}
	}
	if v.cache.Len() != 2 {
		t.Errorf("cache holds %d entries, bound is 2", v.cache.Len())
	}
}

func TestFlush(t *testing.T) {
	ec, rs := keys(t)
	set := testBundles(t)
	src := &countingSource{Source: set}
	v := newValidator(t, src, Options{})
	tok := sign(t, hdr("ES256", "ec"), claims(), ec)
	for range 2 {
		if _, err := v.Validate(tok); err != nil {
			t.Fatal(err)
		}
	}
	if src.n.Load() != 1 {
		t.Fatalf("bundle look-ups %d, want 1 (second was a hit)", src.n.Load())
	}

	// The bundle loses key "ec": without a flush the cached token would
	// still pass.
	b, _ := set.Get(td)
	b.RemoveJWTAuthority("ec")
	if _, err := v.Validate(tok); err != nil {
		t.Fatalf("before Flush the cache still answers: %v", err)
	}
	v.Flush()
	if _, err := v.Validate(tok); !errors.Is(err, ErrUnknownKeyID) {
		t.Fatalf("after Flush Validate = %v, want unknown kid", err)
	}
	if _, err := v.Validate(sign(t, hdr("RS256", "rsa"), claims(), rs)); err != nil {
		t.Fatalf("a token of a key still in the bundle: %v", err)
	}
}

// TestConcurrentFlush is for the race detector: validation, flushes and
// bundle changes at once.
func TestConcurrentFlush(t *testing.T) {
	ec, _ := keys(t)
	set := testBundles(t)
	v := newValidator(t, set, Options{})
	tok := sign(t, hdr("ES256", "ec"), claims(), ec)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				_, _ = v.Validate(tok)
			}
		})
	}
	wg.Go(func() {
		b, _ := set.Get(td)
		for range 50 {
			b.SetJWTAuthorities(maps.Clone(b.JWTAuthorities()))
			v.Flush()
		}
	})
	wg.Wait()
}

// flushingSource calls a hook from the bundle look-up: a bundle change in
// the middle of a validation.
type flushingSource struct {
	jwtbundle.Source
	hook func()
}

func (f *flushingSource) GetJWTBundleForTrustDomain(td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	b, err := f.Source.GetJWTBundleForTrustDomain(td)
	if f.hook != nil {
		f.hook()
	}
	return b, err
}

func TestFlushDuringValidationIsNotUndone(t *testing.T) {
	ec, _ := keys(t)
	src := &flushingSource{Source: testBundles(t)}
	v := newValidator(t, src, Options{})
	src.hook = v.Flush
	tok := sign(t, hdr("ES256", "ec"), claims(), ec)
	if _, err := v.Validate(tok); err != nil {
		t.Fatal(err)
	}
	if v.cache.Len() != 0 {
		t.Error("a token validated against the bundle before a Flush was cached after it")
	}
	src.hook = nil
	if _, err := v.Validate(tok); err != nil || v.cache.Len() != 1 {
		t.Errorf("without a Flush the token is cached: err %v, len %d", err, v.cache.Len())
	}
}

// flipLastBit changes an unused low bit of the last base64url character:
// a lenient decoder yields the same bytes.
func flipLastBit(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[i^1])
}

func TestLeewayOptions(t *testing.T) {
	ec, _ := keys(t)
	tok := sign(t, hdr("ES256", "ec"), with(func(c map[string]any) { c["exp"] = t0.Add(-time.Second).Unix() }), ec)
	if _, err := newValidator(t, testBundles(t), Options{}).Validate(tok); err != nil {
		t.Errorf("default leeway: %v", err)
	}
	if _, err := newValidator(t, testBundles(t), Options{Leeway: -1}).Validate(tok); !errors.Is(err, ErrExpired) {
		t.Errorf("no leeway: %v, want expired", err)
	}
	if _, err := NewValidator(nil, Options{}); err == nil {
		t.Error("NewValidator(nil) succeeded")
	}
	if _, err := NewValidator(testBundles(t), Options{MaxTokenBytes: -1}); err == nil {
		t.Error("negative MaxTokenBytes accepted")
	}
}

func TestReason(t *testing.T) {
	if Reason(nil) != "ok" || Reason(errors.New("x")) != "error" || Reason(ErrExpired) != "expired" {
		t.Error("Reason")
	}
	err := detail(ErrBadSignature, "x")
	if Reason(err) != "bad_signature" || !errors.Is(err, ErrBadSignature) {
		t.Error("detailed error loses its rule")
	}
}
