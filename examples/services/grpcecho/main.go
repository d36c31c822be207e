// Command grpcecho is a sample gRPC backend for svidgate. It implements the
// grpc.testing.TestService of grpc-go's interop suite (EmptyCall, UnaryCall,
// StreamingOutputCall) and the standard gRPC health service, over plain HTTP/2
// (h2c), the way an application behind an inbound svidgate listener runs:
//
//	grpcecho -listen 127.0.0.1:9090
//	grpcecho -listen unix:///run/grpcecho.sock
//
// Every call answers with the header metadata x-echo-xfcc holding the
// X-Forwarded-Client-Cert values it received, and with the trailer
// x-echo-messages holding the number of response messages sent. With
// fill_username set, UnaryCall returns the XFCC value as the username.
//
// Payload bodies are deterministic so that a client can check them: byte j of
// response message k (counting from 0) is byte((k + j) % 251).
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/svidgate/svidgate/examples/services/internal/endpoint"
)

const (
	// maxResponseSize bounds one response payload.
	maxResponseSize = 4 << 20
	// maxResponses bounds the messages of one StreamingOutputCall.
	maxResponses = 10000
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("grpcecho", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9090", "`address` to listen on: host:port or unix:///path.sock")
	name := fs.String("name", "grpcecho", "server `id` returned when fill_server_id is set")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))

	ln, err := endpoint.Listen(*listen)
	if err != nil {
		log.Error("listen", "address", *listen, "error", err)
		return 1
	}
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, &testService{name: *name})
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("grpc.testing.TestService", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("listening", "address", ln.Addr().String())

	select {
	case err := <-errc:
		log.Error("serve", "error", err)
		return 1
	case <-ctx.Done():
	}
	hs.Shutdown()
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		srv.Stop()
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		log.Error("serve", "error", err)
		return 1
	}
	return 0
}

type testService struct {
	testpb.UnimplementedTestServiceServer
	name string
}

// xfcc returns the X-Forwarded-Client-Cert values of an incoming call.
func xfcc(ctx context.Context) []string {
	md, _ := metadata.FromIncomingContext(ctx)
	return md.Get("x-forwarded-client-cert")
}

func echoHeader(ctx context.Context) error {
	return grpc.SetHeader(ctx, metadata.Pairs("x-echo-xfcc", strings.Join(xfcc(ctx), ", ")))
}

// payload returns the body of response message k of the given size.
func payload(k, size int) *testpb.Payload {
	b := make([]byte, size)
	for j := range b {
		b[j] = byte((k + j) % 251)
	}
	return &testpb.Payload{Type: testpb.PayloadType_COMPRESSABLE, Body: b}
}

func echoStatus(s *testpb.EchoStatus) error {
	if s == nil || s.GetCode() == 0 {
		return nil
	}
	return status.Error(codes.Code(s.GetCode()), s.GetMessage())
}

func (s *testService) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	if err := echoHeader(ctx); err != nil {
		return nil, err
	}
	grpc.SetTrailer(ctx, metadata.Pairs("x-echo-messages", "1"))
	return &testpb.Empty{}, nil
}

func (s *testService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if err := echoHeader(ctx); err != nil {
		return nil, err
	}
	if err := echoStatus(req.GetResponseStatus()); err != nil {
		return nil, err
	}
	size := int(req.GetResponseSize())
	if size < 0 || size > maxResponseSize {
		return nil, status.Errorf(codes.InvalidArgument, "grpcecho: response_size %d is outside [0, %d]", size, maxResponseSize)
	}
	resp := &testpb.SimpleResponse{Payload: payload(0, size)}
	if req.GetFillUsername() {
		resp.Username = strings.Join(xfcc(ctx), ", ")
	}
	if req.GetFillServerId() {
		resp.ServerId = s.name
	}
	grpc.SetTrailer(ctx, metadata.Pairs("x-echo-messages", "1"))
	return resp, nil
}

func (s *testService) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	ctx := stream.Context()
	if err := echoHeader(ctx); err != nil {
		return err
	}
	params := req.GetResponseParameters()
	if len(params) > maxResponses {
		return status.Errorf(codes.InvalidArgument, "grpcecho: %d response_parameters, at most %d allowed", len(params), maxResponses)
	}
	for k, p := range params {
		size := int(p.GetSize())
		if size < 0 || size > maxResponseSize {
			return status.Errorf(codes.InvalidArgument, "grpcecho: response_parameters[%d].size %d is outside [0, %d]", k, size, maxResponseSize)
		}
		if d := time.Duration(p.GetIntervalUs()) * time.Microsecond; d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return status.FromContextError(ctx.Err()).Err()
			case <-t.C:
			}
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: payload(k, size)}); err != nil {
			return err
		}
	}
	stream.SetTrailer(metadata.Pairs("x-echo-messages", strconv.Itoa(len(params))))
	return echoStatus(req.GetResponseStatus())
}
