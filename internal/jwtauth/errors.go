package jwtauth

import (
	"errors"
	"fmt"
)

// Error is a broken rule. Every error the package returns is, or wraps,
// one of the Err values below; Reason names it in a short, stable form for
// audit records and metric labels.
type Error struct {
	reason string
	text   string
}

func (e *Error) Error() string { return "jwtauth: " + e.text }

// Reason returns the short stable name of the rule, such as "expired".
func (e *Error) Reason() string { return e.reason }

// Errors returned by TokenFromHeader.
var (
	ErrNoToken               = &Error{"no_token", "no Authorization header"}
	ErrMultipleAuthorization = &Error{"multiple_authorization", "more than one Authorization header"}
	ErrTokenTooLarge         = &Error{"too_large", "token is larger than the limit"}
	ErrNotBearer             = &Error{"not_bearer", `Authorization header is not "Bearer <token>"`}
)

// Errors returned by Validate.
var (
	ErrMalformed      = &Error{"malformed", "token is not a well-formed compact JWS with JSON header and claims"}
	ErrAlgNotAllowed  = &Error{"alg_not_allowed", "token alg is not allowed (want RS256/384/512, ES256/384/512 or PS256/384/512)"}
	ErrBadType        = &Error{"bad_typ", `token typ header must be absent, "JWT" or "JOSE"`}
	ErrNoKeyID        = &Error{"no_kid", "token header has no kid"}
	ErrBadSubject     = &Error{"bad_subject", "token sub must be a SPIFFE ID with a path"}
	ErrNoAudience     = &Error{"no_audience", "token has no aud claim or an empty one"}
	ErrNoExpiry       = &Error{"no_exp", "token has no exp claim"}
	ErrNoBundle       = &Error{"no_bundle", "no JWT bundle for the trust domain of the token subject"}
	ErrUnknownKeyID   = &Error{"unknown_kid", "token kid is not in the JWT bundle of the subject's trust domain"}
	ErrKeyMismatch    = &Error{"alg_key_mismatch", "token alg does not match the type of the bundle key named by kid"}
	ErrBadSignature   = &Error{"bad_signature", "token signature does not verify"}
	ErrExpired        = &Error{"expired", "token has expired"}
	ErrNotYetValid    = &Error{"not_yet_valid", "token nbf is in the future"}
	ErrIssuedInFuture = &Error{"iat_in_future", "token iat is in the future"}
)

// ReasonOK is the reason reported to Options.OnResult for a valid token.
const ReasonOK = "ok"

// Reason returns the reason of an error from this package, ReasonOK for
// nil, and "error" for anything else.
func Reason(err error) string {
	if err == nil {
		return ReasonOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.reason
	}
	return "error"
}

// detailed adds the specifics (the offending value, the time) to a rule's
// error; errors.Is still matches the rule.
type detailed struct {
	rule   *Error
	detail string
}

func (d *detailed) Error() string  { return d.rule.Error() + ": " + d.detail }
func (d *detailed) Unwrap() error  { return d.rule }
func (d *detailed) Reason() string { return d.rule.reason }

func detail(rule *Error, format string, args ...any) error {
	return &detailed{rule: rule, detail: fmt.Sprintf(format, args...)}
}
