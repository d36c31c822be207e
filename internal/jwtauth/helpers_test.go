package jwtauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"hash"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Test keys, generated once per test binary.
var (
	keysOnce sync.Once
	ecKey    *ecdsa.PrivateKey
	rsaKey   *rsa.PrivateKey
)

func keys(tb testing.TB) (*ecdsa.PrivateKey, *rsa.PrivateKey) {
	tb.Helper()
	keysOnce.Do(func() {
		var err error
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return ecKey, rsaKey
}

var (
	td      = spiffeid.RequireTrustDomainFromString("example.org")
	subject = "spiffe://example.org/ns/web/sa/frontend"
	t0      = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
)

// testBundles holds kid "ec" (P-256) and "rsa" (RSA 2048) for example.org.
func testBundles(tb testing.TB) *jwtbundle.Set {
	ec, rs := keys(tb)
	return jwtbundle.NewSet(jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{
		"ec":  ec.Public(),
		"rsa": rs.Public(),
	}))
}

// claims returns a valid claim set at t0, for editing by a test case.
func claims() map[string]any {
	return map[string]any{
		"sub": subject,
		"aud": []string{"orders", "billing"},
		"exp": t0.Add(5 * time.Minute).Unix(),
		"iat": t0.Add(-time.Second).Unix(),
		"jti": "id-1",
	}
}

// sign builds a compact JWS by hand, so that tests can produce what no
// well-behaved library would: any header, any alg over any key. key is an
// *ecdsa.PrivateKey, *rsa.PrivateKey, []byte (HMAC) or nil (no signature).
func sign(tb testing.TB, hdr, cl map[string]any, key any) string {
	tb.Helper()
	hj, err := json.Marshal(hdr)
	if err != nil {
		tb.Fatal(err)
	}
	cj, err := json.Marshal(cl)
	if err != nil {
		tb.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(hj) + "." + base64.RawURLEncoding.EncodeToString(cj)
	alg, _ := hdr["alg"].(string)
	var h crypto.Hash
	var hf func() hash.Hash
	switch {
	case len(alg) == 5 && alg[2:] == "256":
		h, hf = crypto.SHA256, sha256.New
	case len(alg) == 5 && alg[2:] == "384":
		h, hf = crypto.SHA384, sha512.New384
	default:
		h, hf = crypto.SHA512, sha512.New
	}
	var sig []byte
	switch k := key.(type) {
	case nil:
	case []byte:
		m := hmac.New(hf, k)
		m.Write([]byte(input))
		sig = m.Sum(nil)
	case *ecdsa.PrivateKey:
		d := hf()
		d.Write([]byte(input))
		r, s, err := ecdsa.Sign(rand.Reader, k, d.Sum(nil))
		if err != nil {
			tb.Fatal(err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		sig = append(pad(r, size), pad(s, size)...)
	case *rsa.PrivateKey:
		d := hf()
		d.Write([]byte(input))
		if alg[:2] == "PS" {
			sig, err = rsa.SignPSS(rand.Reader, k, h, d.Sum(nil), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, k, h, d.Sum(nil))
		}
		if err != nil {
			tb.Fatal(err)
		}
	default:
		tb.Fatalf("sign: key type %T", key)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func pad(n *big.Int, size int) []byte {
	return n.FillBytes(make([]byte, size))
}

func hdr(alg, kid string) map[string]any {
	h := map[string]any{"alg": alg, "typ": "JWT"}
	if kid != "" {
		h["kid"] = kid
	}
	return h
}

// publicKeyBytes is what a confused verifier would use as an HMAC secret.
func publicKeyBytes(tb testing.TB, pub any) []byte {
	b, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
