package jwtauth

import (
	"encoding/hex"
	"slices"
	"time"
)

// Claims is what a validated JWT-SVID says. A Validator returns the same
// *Claims for every presentation of a cached token, so a Claims and
// everything it refers to (Audience, Raw) must be treated as read-only.
type Claims struct {
	// Subject is the sub claim: a SPIFFE ID with a path, in canonical form.
	Subject string
	// Audience is the aud claim, never empty. Validate does not check it;
	// a policy rule does, with HasAudience.
	Audience []string
	// Expiry is the exp claim.
	Expiry time.Time
	// IssuedAt is the iat claim, or the zero time when the token has none.
	IssuedAt time.Time
	// ID is the jti claim, or "" when the token has none.
	ID string
	// Raw holds every claim as decoded by encoding/json (strings, float64
	// numbers, bool, []any, map[string]any), for policy claim conditions.
	Raw map[string]any
	// TokenHash is the SHA-256 of the token: its identity in the cache and,
	// shortened, in audit records. The token itself is never kept.
	TokenHash [32]byte
}

// HasAudience reports whether aud is one of the token's audiences.
// Comparison is exact; an empty aud never matches.
func (c *Claims) HasAudience(aud string) bool {
	return aud != "" && slices.Contains(c.Audience, aud)
}

// ShortHash returns the first 12 hex characters of the token's SHA-256, to
// correlate audit records with a token without recording the token.
func ShortHash(c *Claims) string {
	return hex.EncodeToString(c.TokenHash[:6])
}
