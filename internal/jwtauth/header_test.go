package jwtauth

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestTokenFromHeader(t *testing.T) {
	tok := "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
	tests := []struct {
		name string
		vals []string // nil: no header
		want error
	}{
		{"bearer", []string{"Bearer " + tok}, nil},
		{"scheme in lower case", []string{"bearer " + tok}, nil},
		{"scheme in upper case", []string{"BEARER " + tok}, nil},
		{"none", nil, ErrNoToken},
		{"two headers", []string{"Bearer " + tok, "Bearer " + tok}, ErrMultipleAuthorization},
		{"two headers, one empty", []string{"Bearer " + tok, ""}, ErrMultipleAuthorization},
		{"64 KiB", []string{"Bearer " + strings.Repeat("a", 64<<10)}, ErrTokenTooLarge},
		{"64 KiB not even bearer", []string{strings.Repeat("Basic ", 11<<10)}, ErrTokenTooLarge},
		{"64 KiB second header", []string{"Bearer " + tok, strings.Repeat("a", 64<<10)}, ErrTokenTooLarge},
		{"at the limit", []string{"Bearer " + strings.Repeat("a", DefaultMaxTokenBytes)}, nil},
		{"one past the limit", []string{"Bearer " + strings.Repeat("a", DefaultMaxTokenBytes+1)}, ErrTokenTooLarge},
		{"basic", []string{"Basic dXNlcjpwYXNz"}, ErrNotBearer},
		{"scheme only", []string{"Bearer"}, ErrNotBearer},
		{"scheme and space", []string{"Bearer "}, ErrNotBearer},
		{"two spaces", []string{"Bearer  " + tok}, ErrNotBearer},
		{"tab", []string{"Bearer\t" + tok}, ErrNotBearer},
		{"two credentials", []string{"Bearer " + tok + ", Bearer " + tok}, ErrNotBearer},
		{"trailing space", []string{"Bearer " + tok + " "}, ErrNotBearer},
		{"bearerx", []string{"Bearerx" + tok}, ErrNotBearer},
		{"empty", []string{""}, ErrNotBearer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.vals {
				h.Add("Authorization", v)
			}
			got, err := TokenFromHeader(h)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err == nil {
				if want := tt.vals[0][len("Bearer "):]; got != want {
					t.Errorf("token = %q, want %q", got, want)
				}
			} else if got != "" {
				t.Error("token returned with an error")
			}
		})
	}
}

func TestValidatorTokenFromHeaderLimit(t *testing.T) {
	v := newValidator(t, testBundles(t), Options{MaxTokenBytes: 16})
	h := http.Header{"Authorization": {"Bearer " + strings.Repeat("a", 17)}}
	if _, err := v.TokenFromHeader(h); !errors.Is(err, ErrTokenTooLarge) {
		t.Errorf("err = %v, want too large", err)
	}
	h = http.Header{"Authorization": {"Bearer " + strings.Repeat("a", 16)}}
	if _, err := v.TokenFromHeader(h); err != nil {
		t.Errorf("err = %v at the limit", err)
	}
}
