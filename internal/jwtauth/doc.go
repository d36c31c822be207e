// Package jwtauth validates JWT-SVIDs presented in an HTTP Authorization
// header ("Bearer <token>").
//
// A Validator checks what the JWT-SVID specification requires and what an
// enforcement point adds on top of it, each rule with its own error and a
// short stable reason for audit records and metric labels:
//
//   - the token is bounded in size, checked before anything is parsed;
//   - it is a compact JWS of exactly three canonical base64url parts;
//   - alg is one of RS256/384/512, ES256/384/512, PS256/384/512 (never
//     "none", never HMAC), typ is absent, "JWT" or "JOSE", and no "crit";
//   - kid is present and names a key in the JWT bundle of the trust domain
//     of sub, which must be a SPIFFE ID with a path; the key's type (and
//     curve) must be the one alg implies;
//   - aud is present and not empty, exp is present and not past, nbf and
//     iat are not in the future, all within a small leeway.
//
// The audience is not checked by Validate: the policy rule that matched
// the request names the audience it requires, and checks it against the
// returned Claims (Claims.HasAudience). Validate must therefore never be
// taken to mean "this token was meant for us" on its own.
//
// Validated tokens are cached in a bounded LRU keyed by the SHA-256 of the
// token, until they expire. A hit costs one hash and one lookup and does not
// allocate. When the bundle set changes, Flush drops the cache, so a key
// removed from a bundle stops validating tokens at once.
package jwtauth
