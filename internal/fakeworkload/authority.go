package fakeworkload

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Authority is a JWT signing key of one trust domain.
type Authority struct {
	TD    spiffeid.TrustDomain
	KeyID string
	Alg   jose.SignatureAlgorithm
	Key   crypto.Signer
}

// NewAuthority generates a key for alg (jose.ES256 or jose.RS256).
func NewAuthority(t testing.TB, td, kid string, alg jose.SignatureAlgorithm) *Authority {
	t.Helper()
	var key crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("fakeworkload: unsupported alg %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &Authority{TD: spiffeid.RequireTrustDomainFromString(td), KeyID: kid, Alg: alg, Key: key}
}

// Bundle returns a JWT bundle holding this authority's public key.
func Bundle(td spiffeid.TrustDomain, auths ...*Authority) *jwtbundle.Bundle {
	keys := make(map[string]crypto.PublicKey, len(auths))
	for _, a := range auths {
		keys[a.KeyID] = a.Key.Public()
	}
	return jwtbundle.FromJWTAuthorities(td, keys)
}

// Mint signs a JWT-SVID for sub and aud, issued now and living ttl.
func (a *Authority) Mint(t testing.TB, sub spiffeid.ID, aud []string, ttl time.Duration) string {
	t.Helper()
	tok, err := a.mint(sub, aud, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (a *Authority) mint(sub spiffeid.ID, aud []string, ttl time.Duration) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: a.Alg, Key: a.Key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", a.KeyID))
	if err != nil {
		return "", err
	}
	now := time.Now()
	return jwt.Signed(signer).Claims(jwt.Claims{
		Subject:  sub.String(),
		Audience: aud,
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(ttl)),
	}).Serialize()
}
