// Command backend is the upstream of every benchmark variant: one TCP port
// serving HTTP/1.1 and h2c (prior knowledge) with a fixed-size body on every
// path, and gRPC (grpc.testing.TestService/UnaryCall, grpc.health.v1) on the
// same port through grpc-go's http.Handler.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "listen `address`")
	size := flag.Int("size", 1024, "response body size in bytes (HTTP and gRPC payload)")
	flag.Parse()

	body := bytes.Repeat([]byte("x"), *size)
	clen := strconv.Itoa(len(body))
	g := grpc.NewServer()
	testpb.RegisterTestServiceServer(g, &testService{payload: body})
	healthpb.RegisterHealthServer(g, health.NewServer())

	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		Protocols:         new(http.Protocols),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
				g.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			h["Content-Type"] = []string{"application/octet-stream"}
			h["Content-Length"] = []string{clen}
			_, _ = w.Write(body)
		}),
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	fmt.Fprintln(os.Stderr, "backend: serving on", ln.Addr())
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}

type testService struct {
	testpb.UnimplementedTestServiceServer
	payload []byte
}

func (s *testService) UnaryCall(_ context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: s.payload}}, nil
}

func (s *testService) EmptyCall(context.Context, *testpb.Empty) (*testpb.Empty, error) {
	return &testpb.Empty{}, nil
}
