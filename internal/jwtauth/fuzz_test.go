package jwtauth

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func FuzzTokenFromHeader(f *testing.F) {
	f.Add("Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln", "", false)
	f.Add("bearer abc", "Bearer def", true)
	f.Add("Basic dXNlcjpwYXNz", "", false)
	f.Add("Bearer  a", "", false)
	f.Add("Bearer a, Bearer b", "", false)
	f.Add(strings.Repeat("A", DefaultMaxTokenBytes+8), "", false)
	f.Fuzz(func(t *testing.T, first, second string, two bool) {
		h := http.Header{"Authorization": {first}}
		if two {
			h["Authorization"] = append(h["Authorization"], second)
		}
		tok, err := TokenFromHeader(h)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || tok != "" {
				t.Fatalf("error %v is not a sentinel, or came with a token", err)
			}
			return
		}
		switch {
		case two:
			t.Fatal("two headers accepted")
		case tok == "" || len(tok) > DefaultMaxTokenBytes:
			t.Fatalf("token of %d bytes accepted", len(tok))
		case !strings.EqualFold(first[:7], "bearer ") || first[7:] != tok:
			t.Fatalf("token %q is not what follows the scheme in %q", tok, first)
		case strings.ContainsAny(tok, " ,"):
			t.Fatalf("token %q has a space or comma", tok)
		}
	})
}

func FuzzValidate(f *testing.F) {
	ec, rs := keys(f)
	f.Add(sign(f, hdr("ES256", "ec"), claims(), ec))
	f.Add(sign(f, hdr("RS256", "rsa"), claims(), rs))
	f.Add(sign(f, hdr("none", "ec"), claims(), nil))
	f.Add(sign(f, hdr("HS256", "ec"), claims(), publicKeyBytes(f, ec.Public())))
	f.Add(sign(f, hdr("ES256", "ec"), with(func(c map[string]any) { c["aud"] = []any{1, "x"}; c["exp"] = -1 }), ec))
	f.Add("e30.e30.e30")
	f.Add("..")
	f.Add("eyJhbGciOiJFUzI1NiIsImtpZCI6ImVjIn0.eyJzdWIiOiJzcGlmZmU6Ly9leGFtcGxlLm9yZy94IiwiYXVkIjoieCIsImV4cCI6MX0.AA")
	v := newValidator(f, testBundles(f), Options{CacheSize: 64})
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Validate(token)
		if err != nil {
			if c != nil {
				t.Fatal("claims with an error")
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v carries no reason", err)
			}
			return
		}
		// Only genuinely signed tokens get here (the seeds, or a
		// mutation that kept one intact); their claims must hold the
		// rules.
		id, err := spiffeid.FromString(c.Subject)
		if err != nil || id.Path() == "" || len(c.Audience) == 0 || !c.Expiry.After(t0.Add(-DefaultLeeway)) {
			t.Fatalf("accepted claims break a rule: %+v", c)
		}
		if c.TokenHash != hashToken(token) {
			t.Fatal("TokenHash is not the token's")
		}
	})
}
