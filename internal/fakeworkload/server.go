package fakeworkload

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Server is a fake Workload API. Its zero value is not usable; call New.
type Server struct {
	workload.UnimplementedSpiffeWorkloadAPIServer

	// Addr is the socket address for workloadapi.WithAddr
	// ("unix:///…/agent.sock").
	Addr string

	t    testing.TB
	path string

	mu      sync.Mutex
	grpc    *grpc.Server
	bundles map[string][]byte // trust domain ID → JWKS
	changed chan struct{}     // closed and replaced on every bundle change
	issuer  *Authority
	subject spiffeid.ID
	ttl     time.Duration
	fetches int
}

// New starts a server on a socket in a fresh temporary directory, removed
// with the server at the end of the test. (Not t.TempDir: a unix socket
// path must fit in 108 bytes, and t.TempDir embeds the test's name.)
func New(t testing.TB) *Server {
	t.Helper()
	// Unix socket paths are short (108 bytes); t.TempDir can be long.
	dir, err := os.MkdirTemp("", "fakewl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "agent.sock")
	s := &Server{t: t, path: path, Addr: "unix://" + path, changed: make(chan struct{})}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start serves on the socket; after Stop it plays the agent coming back.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grpc != nil {
		return
	}
	_ = os.Remove(s.path)
	ln, err := net.Listen("unix", s.path)
	if err != nil {
		s.t.Fatal(err)
	}
	g := grpc.NewServer()
	workload.RegisterSpiffeWorkloadAPIServer(g, s)
	s.grpc = g
	go func() { _ = g.Serve(ln) }()
}

// Stop closes every connection and the socket: an agent outage.
func (s *Server) Stop() {
	s.mu.Lock()
	g := s.grpc
	s.grpc = nil
	s.mu.Unlock()
	if g != nil {
		g.Stop()
	}
}

// SetJWTBundles replaces the bundle set and pushes it to every watcher.
func (s *Server) SetJWTBundles(bundles ...*jwtbundle.Bundle) {
	s.t.Helper()
	m := make(map[string][]byte, len(bundles))
	for _, b := range bundles {
		jwks, err := b.Marshal()
		if err != nil {
			s.t.Fatal(err)
		}
		m[b.TrustDomain().IDString()] = jwks
	}
	s.mu.Lock()
	s.bundles = m
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// SetJWTSVIDIssuer makes FetchJWTSVID mint tokens for sub, living ttl,
// signed by a. A nil a makes it fail with PermissionDenied, as an agent
// does for a workload without a registration entry.
func (s *Server) SetJWTSVIDIssuer(a *Authority, sub spiffeid.ID, ttl time.Duration) {
	s.mu.Lock()
	s.issuer, s.subject, s.ttl = a, sub, ttl
	s.mu.Unlock()
}

// JWTSVIDFetches counts FetchJWTSVID calls that returned a token.
func (s *Server) JWTSVIDFetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

func checkHeader(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("workload.spiffe.io"); len(v) != 1 || v[0] != "true" {
		return status.Error(codes.InvalidArgument, "security header missing from request")
	}
	return nil
}

// FetchJWTBundles implements the Workload API: the current set, then each
// change, until the client goes or the server stops.
func (s *Server) FetchJWTBundles(_ *workload.JWTBundlesRequest, stream grpc.ServerStreamingServer[workload.JWTBundlesResponse]) error {
	if err := checkHeader(stream.Context()); err != nil {
		return err
	}
	for {
		s.mu.Lock()
		bundles, changed := s.bundles, s.changed
		s.mu.Unlock()
		if bundles != nil {
			if err := stream.Send(&workload.JWTBundlesResponse{Bundles: bundles}); err != nil {
				return err
			}
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

// FetchJWTSVID implements the Workload API.
func (s *Server) FetchJWTSVID(ctx context.Context, req *workload.JWTSVIDRequest) (*workload.JWTSVIDResponse, error) {
	if err := checkHeader(ctx); err != nil {
		return nil, err
	}
	if len(req.Audience) == 0 {
		return nil, status.Error(codes.InvalidArgument, "audience must be specified")
	}
	s.mu.Lock()
	a, sub, ttl := s.issuer, s.subject, s.ttl
	s.mu.Unlock()
	if a == nil {
		return nil, status.Error(codes.PermissionDenied, "no identity issued")
	}
	if req.SpiffeId != "" && req.SpiffeId != sub.String() {
		return nil, status.Errorf(codes.PermissionDenied, "no identity %q for this workload", req.SpiffeId)
	}
	tok, err := a.mint(sub, req.Audience, ttl)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	s.mu.Lock()
	s.fetches++
	s.mu.Unlock()
	return &workload.JWTSVIDResponse{Svids: []*workload.JWTSVID{{SpiffeId: sub.String(), Svid: tok}}}, nil
}
