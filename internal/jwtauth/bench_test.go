package jwtauth

import (
	"strings"
	"testing"
)

// benchToken is a JWT-SVID of about 1 KiB: SPIRE's are smaller, custom
// claims make them larger.
func benchToken(b *testing.B, alg string) string {
	ec, rs := keys(b)
	c := claims()
	var tok string
	for pad := 0; len(tok) < 1024; pad += 16 {
		c["pad"] = strings.Repeat("x", pad)
		if alg == "RS256" {
			tok = sign(b, hdr(alg, "rsa"), c, rs)
		} else {
			tok = sign(b, hdr(alg, "ec"), c, ec)
		}
	}
	return tok
}

func BenchmarkValidateHit(b *testing.B) {
	for _, alg := range []string{"ES256", "RS256"} {
		b.Run(alg, func(b *testing.B) {
			tok := benchToken(b, alg)
			v := newValidator(b, testBundles(b), Options{OnResult: func(string, bool) {}})
			if _, err := v.Validate(tok); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(tok)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Validate(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkValidateHitParallel(b *testing.B) {
	tok := benchToken(b, "ES256")
	v := newValidator(b, testBundles(b), Options{})
	if _, err := v.Validate(tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Validate(tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkValidateMiss(b *testing.B) {
	for _, alg := range []string{"ES256", "RS256"} {
		b.Run(alg, func(b *testing.B) {
			tok := benchToken(b, alg)
			v := newValidator(b, testBundles(b), Options{CacheSize: -1})
			b.SetBytes(int64(len(tok)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Validate(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkTokenFromHeader(b *testing.B) {
	tok := benchToken(b, "ES256")
	h := map[string][]string{"Authorization": {"Bearer " + tok}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := TokenFromHeader(h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHashBaseline is the SHA-256 of the same token alone: the floor
// of the hit path, to read BenchmarkValidateHit against on a noisy host.
func BenchmarkHashBaseline(b *testing.B) {
	tok := benchToken(b, "ES256")
	b.SetBytes(int64(len(tok)))
	b.ReportAllocs()
	for b.Loop() {
		_ = hashToken(tok)
	}
}
