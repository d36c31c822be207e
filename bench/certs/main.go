// Command certs writes the benchmark's SPIFFE-shaped PKI to a directory: an
// ECDSA P-256 CA for trust domain bench.example, a server SVID (used by every
// proxy under test, svidgate included, through bench/fakeagent) and a client
// SVID (presented by bench/loadgen).
//
//	ca.pem                      the trust bundle
//	server.pem, server.key      server SVID and its PKCS#8 key
//	server-full.pem             server.pem followed by server.key (HAProxy's crt)
//	client.pem, client.key      client SVID and its PKCS#8 key
//	jwt.key                     JWT-SVID signing key (EC P-256, PKCS#8)
//	jwt-bundle.json             its public JWK with kid, as a JWKS: the JWT
//	                            bundle of bench.example (served by fakeagent)
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func main() {
	dir := flag.String("dir", "bench/out/certs", "output `directory`")
	server := flag.String("server-id", "spiffe://bench.example/ns/bench/sa/gateway", "SPIFFE ID of the server SVID")
	client := flag.String("client-id", "spiffe://bench.example/ns/bench/sa/client", "SPIFFE ID of the client SVID")
	flag.Parse()
	if err := run(*dir, *server, *client); err != nil {
		fmt.Fprintln(os.Stderr, "certs:", err)
		os.Exit(1)
	}
}

func run(dir, serverID, clientID string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	td, _ := url.Parse("spiffe://bench.example")
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"svidgate bench"}, CommonName: "bench CA"},
		URIs:                  []*url.URL{td},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	if err := writePEM(filepath.Join(dir, "ca.pem"), "CERTIFICATE", caDER); err != nil {
		return err
	}
	for i, leaf := range []struct{ name, id string }{{"server", serverID}, {"client", clientID}} {
		u, err := url.Parse(leaf.id)
		if err != nil || u.Scheme != "spiffe" {
			return fmt.Errorf("%s id %q is not a spiffe:// URI", leaf.name, leaf.id)
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(int64(10 + i)),
			Subject:               pkix.Name{Organization: []string{"svidgate bench"}},
			URIs:                  []*url.URL{u},
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.Add(7 * 24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			BasicConstraintsValid: true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
		if err := os.WriteFile(filepath.Join(dir, leaf.name+".pem"), certPEM, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, leaf.name+".key"), keyPEM, 0o600); err != nil {
			return err
		}
		if leaf.name == "server" {
			full := append(append([]byte{}, certPEM...), keyPEM...)
			if err := os.WriteFile(filepath.Join(dir, "server-full.pem"), full, 0o600); err != nil {
				return err
			}
		}
	}
	return writeJWTKey(dir)
}

// writeJWTKey writes the JWT-SVID signing key of the trust domain and its
// public half as a JWKS. The kid is the first 8 bytes of the key's RFC 7638
// thumbprint, in hex.
func writeJWTKey(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	pub := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.ES256), Use: "jwt-svid"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return err
	}
	pub.KeyID = hex.EncodeToString(tp[:8])
	jwks, err := json.MarshalIndent(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}}, "", "  ")
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "jwt.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "jwt-bundle.json"), append(jwks, '\n'), 0o644)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644)
}
