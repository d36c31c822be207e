package jwtauth

import (
	"net/http"
	"strings"
)

// DefaultMaxTokenBytes bounds a token when Options.MaxTokenBytes is zero.
// SPIRE's JWT-SVIDs are well under 1 KiB; 8 KiB leaves room for custom
// claims and still keeps a hostile header cheap to refuse.
const DefaultMaxTokenBytes = 8192

const bearer = "bearer "

// TokenFromHeader returns the token of the request's only Authorization
// header, which must be "Bearer <token>" (the scheme in any case, one
// space, no second credential) with a token of at most
// DefaultMaxTokenBytes. Sizes are checked
// before anything else is looked at. Validator.TokenFromHeader applies the
// validator's own limit instead.
func TokenFromHeader(h http.Header) (string, error) {
	return tokenFromHeader(h, DefaultMaxTokenBytes)
}

// TokenFromHeader is the package's TokenFromHeader with the validator's
// MaxTokenBytes.
func (v *Validator) TokenFromHeader(h http.Header) (string, error) {
	return tokenFromHeader(h, v.maxBytes)
}

func tokenFromHeader(h http.Header, maxBytes int) (string, error) {
	vals := h["Authorization"]
	for _, s := range vals {
		if len(s) > len(bearer)+maxBytes {
			return "", ErrTokenTooLarge
		}
	}
	switch {
	case len(vals) == 0:
		return "", ErrNoToken
	case len(vals) > 1:
		return "", ErrMultipleAuthorization
	}
	s := vals[0]
	if len(s) <= len(bearer) || !strings.EqualFold(s[:len(bearer)], bearer) {
		return "", ErrNotBearer
	}
	tok := s[len(bearer):]
	// A second credential or a second space is refused here; the rest of
	// the alphabet is Validate's to check (a cache hit is a token that
	// passed it before), which keeps this off the per-byte budget.
	if strings.IndexByte(tok, ' ') >= 0 || strings.IndexByte(tok, ',') >= 0 {
		return "", ErrNotBearer
	}
	return tok, nil
}

// charClass marks the base64url alphabet (A-Z a-z 0-9 - _), by table: the
// check runs over every byte of every token that misses the cache.
var charClass = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
	}
	return t
}()
