package main

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/svidgate/svidgate/bench/benchcfg"
)

// mintJWT signs the one JWT-SVID variant (c) presents on every request:
// sub = the client SVID's ID (policy-c's [rule.jwt] wants the mTLS peer),
// aud = benchcfg.Audience, valid for two hours, ES256 with the key that
// bench/certs wrote and bench/fakeagent serves as the trust domain's JWT
// bundle. The same token on every request makes each validation after the
// first a cache hit, which is what issue 7 asks (c) to measure.
func mintJWT(certs, subject string) (string, error) {
	keyPEM, err := os.ReadFile(filepath.Join(certs, "jwt.key"))
	if err != nil {
		return "", err
	}
	blk, _ := pem.Decode(keyPEM)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return "", fmt.Errorf("jwt.key: no PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return "", fmt.Errorf("jwt.key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return "", fmt.Errorf("jwt.key: %T, want an EC key", k)
	}
	// The kid is the one in the bundle the agent serves.
	var jwks jose.JSONWebKeySet
	raw, err := os.ReadFile(filepath.Join(certs, "jwt-bundle.json"))
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(raw, &jwks); err != nil || len(jwks.Keys) != 1 {
		return "", fmt.Errorf("jwt-bundle.json: want a JWKS of one key (%v)", err)
	}
	pub, ok := jwks.Keys[0].Key.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return "", fmt.Errorf("jwt-bundle.json does not hold the public key of jwt.key")
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: jwks.Keys[0].KeyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	now := time.Now()
	return jwt.Signed(signer).Claims(jwt.Claims{
		Subject:  subject,
		Audience: jwt.Audience{benchcfg.Audience},
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(2 * time.Hour)),
	}).Serialize()
}
