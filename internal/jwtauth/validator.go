package jwtauth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/go-jose/go-jose/v4"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Defaults for the zero values of Options.
const (
	// DefaultLeeway is the clock skew tolerated on exp, nbf and iat. Hosts
	// that keep time with NTP disagree by milliseconds, and SPIRE's
	// JWT-SVIDs live five minutes by default: ten seconds covers skew and
	// transit without stretching a token's life noticeably.
	DefaultLeeway = 10 * time.Second
	// DefaultCacheSize is the number of validated tokens kept.
	DefaultCacheSize = 10000
)

// Options configure a Validator. The zero value gives the defaults.
type Options struct {
	// MaxTokenBytes bounds the token; 0 means DefaultMaxTokenBytes.
	MaxTokenBytes int
	// Leeway is the clock skew tolerated on exp, nbf and iat; 0 means
	// DefaultLeeway, a negative value none at all.
	Leeway time.Duration
	// CacheSize is the number of validated tokens kept; 0 means
	// DefaultCacheSize, a negative value disables the cache.
	CacheSize int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// OnResult, when set, is called once per Validate with the reason
	// (ReasonOK or an Error's Reason) and whether the cache answered. It
	// runs on the request path and must be cheap (a counter increment).
	OnResult func(reason string, cacheHit bool)
}

// Validator validates JWT-SVIDs against a JWT bundle source. It is safe
// for concurrent use.
type Validator struct {
	bundles  jwtbundle.Source
	maxBytes int
	leeway   time.Duration
	now      func() time.Time
	onResult func(string, bool)

	cache *lru.Cache[[32]byte, entry] // nil when disabled
	// gen counts flushes. A miss records it before reading the bundle and
	// caches its result only if no flush happened meanwhile, so a token
	// validated against a bundle that has since changed is never cached.
	gen atomic.Uint64
	mu  sync.Mutex // orders cache additions with Flush
}

type entry struct {
	claims   *Claims
	deadline time.Time // Expiry plus leeway
}

// NewValidator returns a validator of tokens signed by keys of bundles.
// Call Flush whenever the bundle set changes.
func NewValidator(bundles jwtbundle.Source, opts Options) (*Validator, error) {
	if bundles == nil {
		return nil, errors.New("jwtauth: no JWT bundle source")
	}
	v := &Validator{
		bundles:  bundles,
		maxBytes: opts.MaxTokenBytes,
		leeway:   opts.Leeway,
		now:      opts.Now,
		onResult: opts.OnResult,
	}
	switch {
	case v.maxBytes == 0:
		v.maxBytes = DefaultMaxTokenBytes
	case v.maxBytes < 0:
		return nil, fmt.Errorf("jwtauth: MaxTokenBytes %d is negative", v.maxBytes)
	}
	switch {
	case v.leeway == 0:
		v.leeway = DefaultLeeway
	case v.leeway < 0:
		v.leeway = 0
	}
	if v.now == nil {
		v.now = time.Now
	}
	size := opts.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	if size > 0 {
		c, err := lru.New[[32]byte, entry](size)
		if err != nil {
			return nil, fmt.Errorf("jwtauth: cache: %w", err)
		}
		v.cache = c
	}
	return v, nil
}

// Flush drops every cached token. Call it when the bundle set changes, so
// that a key removed from a bundle stops validating at once.
func (v *Validator) Flush() {
	v.mu.Lock()
	v.gen.Add(1)
	if v.cache != nil {
		v.cache.Purge()
	}
	v.mu.Unlock()
}

// Validate checks a JWT-SVID's form, signature and times (see the package
// documentation) and returns its claims. It does not check the audience:
// the caller must, with Claims.HasAudience. Errors wrap one of the Err
// values of this package; Reason names it.
func (v *Validator) Validate(token string) (*Claims, error) {
	if len(token) > v.maxBytes {
		return nil, v.result(detail(ErrTokenTooLarge, "%d bytes, limit %d", len(token), v.maxBytes), false)
	}
	now := v.now()
	hash := hashToken(token)
	if v.cache != nil {
		if e, ok := v.cache.Get(hash); ok {
			if now.Before(e.deadline) {
				v.result(nil, true)
				return e.claims, nil
			}
			v.cache.Remove(hash)
			return nil, v.result(detail(ErrExpired, "exp %s", e.claims.Expiry.UTC().Format(time.RFC3339)), true)
		}
	}
	gen := v.gen.Load()
	c, err := v.verify(token, now)
	if err != nil {
		return nil, v.result(err, false)
	}
	c.TokenHash = hash
	if v.cache != nil {
		v.mu.Lock()
		if v.gen.Load() == gen {
			v.cache.Add(hash, entry{claims: c, deadline: c.Expiry.Add(v.leeway)})
		}
		v.mu.Unlock()
	}
	v.result(nil, false)
	return c, nil
}

// hashToken returns the SHA-256 of s without copying it: []byte(s) would
// allocate a copy of every token on the hit path. Sum256 only reads its
// argument, so sharing the string's bytes is safe.
func hashToken(s string) [32]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(s), len(s)))
}

func (v *Validator) result(err error, hit bool) error {
	if v.onResult != nil {
		v.onResult(Reason(err), hit)
	}
	return err
}

// allowedAlgs are the JWS algorithms the JWT-SVID specification allows.
var allowedAlgs = map[string]jose.SignatureAlgorithm{
	"RS256": jose.RS256, "RS384": jose.RS384, "RS512": jose.RS512,
	"ES256": jose.ES256, "ES384": jose.ES384, "ES512": jose.ES512,
	"PS256": jose.PS256, "PS384": jose.PS384, "PS512": jose.PS512,
}

// b64 is strict: only the canonical encoding of a value is accepted, so a
// token has exactly one spelling (and one hash).
var b64 = base64.RawURLEncoding.Strict()

// verify checks a token the cache did not hold: form, header, claims,
// key, signature and times, in that order, so that a token is refused
// for the first rule it breaks.
func (v *Validator) verify(token string, now time.Time) (*Claims, error) {
	h64, p64, s64, err := splitCompact(token)
	if err != nil {
		return nil, err
	}
	hdr, err := parseHeader(h64)
	if err != nil {
		return nil, err
	}
	if p64 == "" || s64 == "" {
		return nil, detail(ErrMalformed, "empty claims or signature part")
	}
	if _, err := b64.DecodeString(s64); err != nil {
		return nil, detail(ErrMalformed, "signature: %v", err)
	}
	// Claims, before the signature is checked: sub names the bundle.
	payload, err := b64.DecodeString(p64)
	if err != nil {
		return nil, detail(ErrMalformed, "claims: %v", err)
	}
	c, td, nbf, err := parseClaims(payload)
	if err != nil {
		return nil, err
	}
	key, err := v.key(td, hdr)
	if err != nil {
		return nil, err
	}
	if err := checkSignature(token, hdr.alg, key, payload); err != nil {
		return nil, err
	}
	if err := v.checkTimes(c, nbf, now); err != nil {
		return nil, err
	}
	return c, nil
}

// splitCompact checks the form of a compact JWS, three parts of base64url
// characters, and returns the parts. The character check matters: the
// base64 decoder skips CR and LF.
func splitCompact(token string) (h64, p64, s64 string, err error) {
	dots := 0
	for i := 0; i < len(token); i++ {
		switch c := token[i]; {
		case c == '.':
			dots++
		case !charClass[c]:
			return "", "", "", detail(ErrMalformed, "character %q at offset %d is not base64url", c, i)
		}
	}
	if dots != 2 {
		return "", "", "", detail(ErrMalformed, "%d parts, want 3 (compact JWS)", dots+1)
	}
	h64, rest, _ := strings.Cut(token, ".")
	p64, s64, _ = strings.Cut(rest, ".")
	return h64, p64, s64, nil
}

// jwsHeader is what verify takes from a token's header.
type jwsHeader struct {
	alg     jose.SignatureAlgorithm
	algName string
	kid     string
}

// parseHeader reads the header: an allowed alg, typ JWT or JOSE if
// present, no crit, a kid. An unsigned token ("alg":"none") has an empty
// signature part; the header is read first so that it is refused for its
// alg.
func parseHeader(h64 string) (jwsHeader, error) {
	hdrJSON, err := b64.DecodeString(h64)
	if err != nil {
		return jwsHeader{}, detail(ErrMalformed, "header: %v", err)
	}
	var hdr map[string]any
	if err := json.Unmarshal(hdrJSON, &hdr); err != nil || hdr == nil {
		return jwsHeader{}, detail(ErrMalformed, "header is not a JSON object")
	}
	algName, _ := hdr["alg"].(string)
	alg, ok := allowedAlgs[algName]
	if !ok {
		return jwsHeader{}, detail(ErrAlgNotAllowed, "alg %q", truncate(fmt.Sprint(hdr["alg"])))
	}
	if typ, present := hdr["typ"]; present && typ != "JWT" && typ != "JOSE" {
		return jwsHeader{}, detail(ErrBadType, "typ %q", truncate(fmt.Sprint(typ)))
	}
	if _, present := hdr["crit"]; present {
		return jwsHeader{}, detail(ErrMalformed, "crit header: no critical extension is supported")
	}
	kid, _ := hdr["kid"].(string)
	if kid == "" {
		return jwsHeader{}, ErrNoKeyID
	}
	return jwsHeader{alg: alg, algName: algName, kid: kid}, nil
}

// parseClaims reads the claims: a workload's SPIFFE ID as sub, aud, exp,
// and nbf, iat and jti when present. It returns the trust domain of sub,
// whose bundle holds the key, and nbf, which Claims does not keep.
func parseClaims(payload []byte) (*Claims, spiffeid.TrustDomain, time.Time, error) {
	var none spiffeid.TrustDomain
	var raw map[string]any
	if err := json.Unmarshal(payload, &raw); err != nil || raw == nil {
		return nil, none, time.Time{}, detail(ErrMalformed, "claims are not a JSON object")
	}
	c := &Claims{Raw: raw}
	sub, ok := raw["sub"].(string)
	if !ok {
		return nil, none, time.Time{}, detail(ErrBadSubject, "sub is missing or not a string")
	}
	id, err := spiffeid.FromString(sub)
	if err != nil {
		return nil, none, time.Time{}, detail(ErrBadSubject, "sub %q: %v", truncate(sub), err)
	}
	if id.Path() == "" {
		return nil, none, time.Time{}, detail(ErrBadSubject, "sub %q has no path: it names a trust domain, not a workload", truncate(sub))
	}
	c.Subject = id.String()
	if c.Audience, err = audience(raw["aud"]); err != nil {
		return nil, none, time.Time{}, err
	}
	nbf, err := claimTimes(c, raw)
	if err != nil {
		return nil, none, time.Time{}, err
	}
	if jti, present := raw["jti"]; present {
		if c.ID, ok = jti.(string); !ok {
			return nil, none, time.Time{}, detail(ErrMalformed, "jti is not a string")
		}
	}
	return c, id.TrustDomain(), nbf, nil
}

// claimTimes reads exp (required), nbf and iat into c, and returns nbf.
func claimTimes(c *Claims, raw map[string]any) (nbf time.Time, err error) {
	expV, present := raw["exp"]
	if !present {
		return nbf, ErrNoExpiry
	}
	var ok bool
	if c.Expiry, ok = numericDate(expV); !ok {
		return nbf, detail(ErrMalformed, "exp is not a NumericDate")
	}
	if nbfV, present := raw["nbf"]; present {
		if nbf, ok = numericDate(nbfV); !ok {
			return nbf, detail(ErrMalformed, "nbf is not a NumericDate")
		}
	}
	if iatV, present := raw["iat"]; present {
		if c.IssuedAt, ok = numericDate(iatV); !ok {
			return nbf, detail(ErrMalformed, "iat is not a NumericDate")
		}
	}
	return nbf, nil
}

// key finds the header's kid in the bundle of trust domain td, and checks
// that it is of the type the alg implies.
func (v *Validator) key(td spiffeid.TrustDomain, hdr jwsHeader) (crypto.PublicKey, error) {
	bundle, err := v.bundles.GetJWTBundleForTrustDomain(td)
	if err != nil || bundle == nil {
		return nil, detail(ErrNoBundle, "trust domain %q", td.Name())
	}
	key, ok := bundle.FindJWTAuthority(hdr.kid)
	if !ok {
		return nil, detail(ErrUnknownKeyID, "kid %q, trust domain %q", truncate(hdr.kid), td.Name())
	}
	if !keyFits(hdr.algName, key) {
		return nil, detail(ErrKeyMismatch, "alg %s, key %q is %s", hdr.algName, truncate(hdr.kid), keyType(key))
	}
	return key, nil
}

// checkSignature verifies the token's signature with key, by go-jose,
// held to the one algorithm already checked, over the payload already
// read.
func checkSignature(token string, alg jose.SignatureAlgorithm, key crypto.PublicKey, payload []byte) error {
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{alg})
	if err != nil {
		return detail(ErrMalformed, "%v", err)
	}
	verified, err := jws.Verify(key)
	if err != nil {
		return ErrBadSignature
	}
	if !bytes.Equal(verified, payload) {
		return detail(ErrMalformed, "verified payload differs from the decoded one")
	}
	return nil
}

// checkTimes holds exp, nbf and iat to now, with the leeway.
func (v *Validator) checkTimes(c *Claims, nbf, now time.Time) error {
	if !now.Before(c.Expiry.Add(v.leeway)) {
		return detail(ErrExpired, "exp %s", c.Expiry.UTC().Format(time.RFC3339))
	}
	if !nbf.IsZero() && nbf.After(now.Add(v.leeway)) {
		return detail(ErrNotYetValid, "nbf %s", nbf.UTC().Format(time.RFC3339))
	}
	if !c.IssuedAt.IsZero() && c.IssuedAt.After(now.Add(v.leeway)) {
		return detail(ErrIssuedInFuture, "iat %s", c.IssuedAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// audience reads aud: one string or an array of strings, none empty.
func audience(v any) ([]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, ErrNoAudience
	case string:
		if v == "" {
			return nil, detail(ErrNoAudience, "aud is the empty string")
		}
		return []string{v}, nil
	case []any:
		if len(v) == 0 {
			return nil, detail(ErrNoAudience, "aud is an empty array")
		}
		out := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, detail(ErrMalformed, "aud[%d] is not a string", i)
			}
			if s == "" {
				return nil, detail(ErrNoAudience, "aud[%d] is the empty string", i)
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, detail(ErrMalformed, "aud is neither a string nor an array of strings")
}

// maxNumericDate is 9999-12-31T23:59:59Z; later dates are refused rather
// than overflowing time.Duration arithmetic.
const maxNumericDate = 253402300799

// numericDate reads an RFC 7519 NumericDate: seconds since the epoch, with
// an optional fraction, not negative.
func numericDate(v any) (time.Time, bool) {
	f, ok := v.(float64)
	if !ok || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

func keyFits(alg string, key crypto.PublicKey) bool {
	switch alg[:2] {
	case "RS", "PS":
		_, ok := key.(*rsa.PublicKey)
		return ok
	case "ES":
		k, ok := key.(*ecdsa.PublicKey)
		if !ok || k.Curve == nil {
			return false
		}
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	}
	return false
}

func keyType(key crypto.PublicKey) string {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		if k.Curve != nil {
			return "EC " + k.Curve.Params().Name
		}
		return "EC"
	}
	return fmt.Sprintf("%T", key)
}

// truncate keeps attacker-chosen values in error texts short.
func truncate(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
