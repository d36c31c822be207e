// Command fakeagent is a minimal SPIFFE Workload API server for the
// benchmark. It serves one X509-SVID and its bundle, read from files, on a
// unix socket, so that svidgate (which takes its identity from the Workload
// API only) uses exactly the certificates that nginx and HAProxy load from
// disk. It answers FetchX509SVID, FetchX509Bundles and FetchJWTBundles (the
// JWKS written by bench/certs, so that svidgate validates the JWT-SVID the
// runner mints with that key) and never rotates.
// It is not an agent: there is no attestation, every caller gets the SVID.
package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func main() {
	socket := flag.String("socket", "", "unix socket `path` to listen on")
	certFile := flag.String("cert", "", "SVID certificate chain (PEM, leaf first)")
	keyFile := flag.String("key", "", "SVID private key (PEM, PKCS#8)")
	bundleFile := flag.String("bundle", "", "trust bundle (PEM)")
	jwtBundleFile := flag.String("jwt-bundle", "", "JWT bundle of the SVID's trust domain (JWKS JSON); required by svidgate")
	id := flag.String("id", "", "SPIFFE ID of the SVID (default: the leaf's URI SAN)")
	flag.Parse()
	if err := run(*socket, *certFile, *keyFile, *bundleFile, *jwtBundleFile, *id); err != nil {
		fmt.Fprintln(os.Stderr, "fakeagent:", err)
		os.Exit(1)
	}
}

type server struct {
	workload.UnimplementedSpiffeWorkloadAPIServer
	svid      *workload.X509SVID
	bundle    []byte
	jwtBundle []byte // JWKS; nil: FetchJWTBundles is unimplemented
	td        string
}

func run(socket, certFile, keyFile, bundleFile, jwtBundleFile, id string) error {
	if socket == "" || certFile == "" || keyFile == "" || bundleFile == "" {
		return errors.New("-socket, -cert, -key and -bundle are required")
	}
	chain, err := readDER(certFile, "CERTIFICATE")
	if err != nil {
		return err
	}
	keys, err := readDER(keyFile, "PRIVATE KEY")
	if err != nil || len(keys) != 1 {
		return fmt.Errorf("%s: want one PKCS#8 PRIVATE KEY block (%v)", keyFile, err)
	}
	bundle, err := readDER(bundleFile, "CERTIFICATE")
	if err != nil {
		return err
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return err
	}
	if id == "" {
		if len(leaf.URIs) != 1 {
			return fmt.Errorf("%s: leaf has %d URI SANs, want 1", certFile, len(leaf.URIs))
		}
		id = leaf.URIs[0].String()
	}
	s := &server{
		svid: &workload.X509SVID{
			SpiffeId:    id,
			X509Svid:    join(chain),
			X509SvidKey: keys[0],
			Bundle:      join(bundle),
		},
		bundle: join(bundle),
		td:     "spiffe://" + leaf.URIs[0].Host,
	}
	if jwtBundleFile != "" {
		jwks, err := os.ReadFile(jwtBundleFile)
		if err != nil {
			return err
		}
		// Refuse at start what svidgate's Workload API client would refuse.
		td, err := spiffeid.TrustDomainFromString(s.td)
		if err != nil {
			return err
		}
		if b, err := jwtbundle.Parse(td, jwks); err != nil {
			return fmt.Errorf("%s: %w", jwtBundleFile, err)
		} else if len(b.JWTAuthorities()) == 0 {
			return fmt.Errorf("%s: no keys", jwtBundleFile)
		}
		s.jwtBundle = jwks
	}
	_ = os.Remove(socket)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	g := grpc.NewServer()
	workload.RegisterSpiffeWorkloadAPIServer(g, s)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; g.Stop() }()
	fmt.Fprintln(os.Stderr, "fakeagent: serving", id, "on", socket)
	return g.Serve(ln)
}

// The Workload API requires this header on every call.
func checkHeader(md metadata.MD) error {
	if v := md.Get("workload.spiffe.io"); len(v) != 1 || v[0] != "true" {
		return status.Error(codes.InvalidArgument, "security header missing from request")
	}
	return nil
}

func (s *server) FetchX509SVID(_ *workload.X509SVIDRequest, st grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	md, _ := metadata.FromIncomingContext(st.Context())
	if err := checkHeader(md); err != nil {
		return err
	}
	if err := st.Send(&workload.X509SVIDResponse{Svids: []*workload.X509SVID{s.svid}}); err != nil {
		return err
	}
	<-st.Context().Done()
	return nil
}

func (s *server) FetchX509Bundles(_ *workload.X509BundlesRequest, st grpc.ServerStreamingServer[workload.X509BundlesResponse]) error {
	md, _ := metadata.FromIncomingContext(st.Context())
	if err := checkHeader(md); err != nil {
		return err
	}
	if err := st.Send(&workload.X509BundlesResponse{Bundles: map[string][]byte{s.td: s.bundle}}); err != nil {
		return err
	}
	<-st.Context().Done()
	return nil
}

func (s *server) FetchJWTBundles(_ *workload.JWTBundlesRequest, st grpc.ServerStreamingServer[workload.JWTBundlesResponse]) error {
	md, _ := metadata.FromIncomingContext(st.Context())
	if err := checkHeader(md); err != nil {
		return err
	}
	if s.jwtBundle == nil {
		return status.Error(codes.Unimplemented, "fakeagent: started without -jwt-bundle")
	}
	if err := st.Send(&workload.JWTBundlesResponse{Bundles: map[string][]byte{s.td: s.jwtBundle}}); err != nil {
		return err
	}
	<-st.Context().Done()
	return nil
}

func readDER(path, typ string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type == typ {
			out = append(out, blk.Bytes)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no %s block", path, typ)
	}
	return out, nil
}

func join(ders [][]byte) []byte {
	var out []byte
	for _, d := range ders {
		out = append(out, d...)
	}
	return out
}
