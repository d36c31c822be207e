package integration

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// streamSizes are the payload sizes of the streaming test: small and large
// messages, one beyond the default HTTP/2 flow-control window.
func streamSizes() []int32 {
	sizes := make([]int32, 120)
	for k := range sizes {
		sizes[k] = int32((k * 7919) % 40000)
	}
	sizes[60] = 1 << 20
	return sizes
}

func checkPayload(k int, p *testpb.Payload, size int32) error {
	b := p.GetBody()
	if len(b) != int(size) {
		return errors.New("message " + strconv.Itoa(k) + ": " + strconv.Itoa(len(b)) + " bytes, want " + strconv.Itoa(int(size)))
	}
	for j, c := range b {
		if c != byte((k+j)%251) {
			return errors.New("message " + strconv.Itoa(k) + ": byte " + strconv.Itoa(j) + " corrupted")
		}
	}
	return nil
}

// grpcCaller is a way to reach gw-grpc: through gw-client's outbound
// listener as client/web, or directly over mTLS as test/allowed.
type grpcCaller struct {
	name   string
	cc     *grpc.ClientConn
	caller spiffeid.ID
}

func grpcCallers(t testing.TB, tp *topology) []grpcCaller {
	gw, cl := tp.gateway(t, "gw-grpc"), tp.gateway(t, "gw-client")
	return []grpcCaller{
		{"outbound sidecar", grpcPlain(t, cl.addr("to-grpc")), idClientWeb},
		{"direct mTLS", grpcDirect(t, gw.addr("grpc-in"), idAllowed, idGWGRPC), idAllowed},
	}
}

func TestGRPCServerStreaming(t *testing.T) {
	tp := env.topology(t, "mesh")
	t.Parallel()
	for _, tc := range grpcCallers(t, tp) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client := testpb.NewTestServiceClient(tc.cc)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			sizes := streamSizes()
			req := &testpb.StreamingOutputCallRequest{}
			for k, s := range sizes {
				p := &testpb.ResponseParameters{Size: s}
				if k%40 == 39 {
					p.IntervalUs = 20000 // pauses: the stream stays open across time
				}
				req.ResponseParameters = append(req.ResponseParameters, p)
			}
			stream, err := client.StreamingOutputCall(ctx, req)
			if err != nil {
				t.Fatalf("StreamingOutputCall: %v", err)
			}
			n := 0
			for {
				resp, err := stream.Recv()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("after %d of %d messages: %v", n, len(sizes), err)
				}
				if n >= len(sizes) {
					t.Fatalf("more than %d messages", len(sizes))
				}
				if err := checkPayload(n, resp.GetPayload(), sizes[n]); err != nil {
					t.Fatal(err)
				}
				n++
			}
			if n != len(sizes) {
				t.Fatalf("got %d messages, want %d", n, len(sizes))
			}
			hdr, err := stream.Header()
			if err != nil {
				t.Fatalf("header: %v", err)
			}
			if got, want := strings.Join(hdr.Get("x-echo-xfcc"), ","), xfcc(idGWGRPC, tc.caller); got != want {
				t.Errorf("upstream saw X-Forwarded-Client-Cert %q, want %q", got, want)
			}
			if got := stream.Trailer().Get("x-echo-messages"); len(got) != 1 || got[0] != strconv.Itoa(len(sizes)) {
				t.Errorf("trailer x-echo-messages = %q, want [%d]: trailers lost on the way", got, len(sizes))
			}

			// A failing status from the upstream arrives intact after the messages.
			req = &testpb.StreamingOutputCallRequest{
				ResponseParameters: []*testpb.ResponseParameters{{Size: 10}, {Size: 10}},
				ResponseStatus:     &testpb.EchoStatus{Code: int32(codes.ResourceExhausted), Message: "upstream says no"},
			}
			stream, err = client.StreamingOutputCall(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			n = 0
			for {
				_, err = stream.Recv()
				if err != nil {
					break
				}
				n++
			}
			if st := status.Convert(err); n != 2 || st.Code() != codes.ResourceExhausted || st.Message() != "upstream says no" {
				t.Errorf("upstream error status: %d messages then %v, want 2 then ResourceExhausted %q", n, err, "upstream says no")
			}
		})
	}
}

func TestGRPCUnaryIdentity(t *testing.T) {
	tp := env.topology(t, "mesh")
	t.Parallel()
	for _, tc := range grpcCallers(t, tp) {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// A forged XFCC in metadata must not reach the upstream.
			ctx = metadata.AppendToOutgoingContext(ctx, "x-forwarded-client-cert", "URI=spiffe://example.org/forged")
			var trailer metadata.MD
			resp, err := testpb.NewTestServiceClient(tc.cc).UnaryCall(ctx,
				&testpb.SimpleRequest{ResponseSize: 1000, FillUsername: true}, grpc.Trailer(&trailer))
			if err != nil {
				t.Fatalf("UnaryCall: %v", err)
			}
			if want := xfcc(idGWGRPC, tc.caller); resp.GetUsername() != want {
				t.Errorf("upstream saw X-Forwarded-Client-Cert %q, want %q", resp.GetUsername(), want)
			}
			if err := checkPayload(0, resp.GetPayload(), 1000); err != nil {
				t.Error(err)
			}
			if got := trailer.Get("x-echo-messages"); len(got) != 1 || got[0] != "1" {
				t.Errorf("trailer x-echo-messages = %q, want [1]", got)
			}
		})
	}
}

func TestGRPCDenied(t *testing.T) {
	tp := env.topology(t, "mesh")
	t.Parallel()
	gw := tp.gateway(t, "gw-grpc")
	cl := tp.gateway(t, "gw-client")
	allowed := testpb.NewTestServiceClient(grpcDirect(t, gw.addr("grpc-in"), idAllowed, idGWGRPC))
	stranger := testpb.NewTestServiceClient(grpcDirect(t, gw.addr("grpc-in"), idStranger, idGWGRPC))
	web := testpb.NewTestServiceClient(grpcPlain(t, cl.addr("to-grpc")))

	unary := func(c testpb.TestServiceClient) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 10})
			return err
		}
	}
	empty := func(c testpb.TestServiceClient) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := c.EmptyCall(ctx, &testpb.Empty{})
			return err
		}
	}
	streaming := func(c testpb.TestServiceClient) func(context.Context) error {
		return func(ctx context.Context) error {
			s, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
				ResponseParameters: []*testpb.ResponseParameters{{Size: 1}}})
			if err != nil {
				return err
			}
			for {
				if _, err := s.Recv(); err == io.EOF {
					return nil
				} else if err != nil {
					return err
				}
			}
		}
	}
	for _, tc := range []struct {
		name string
		call func(context.Context) error
		want codes.Code
	}{
		{"control: allowed caller, UnaryCall", unary(allowed), codes.OK},
		{"unlisted caller, UnaryCall", unary(stranger), codes.PermissionDenied},
		{"unlisted caller, StreamingOutputCall", streaming(stranger), codes.PermissionDenied},
		{"allowed caller, method not in rule (EmptyCall)", empty(allowed), codes.PermissionDenied},
		{"outbound sidecar, method not in rule (EmptyCall)", empty(web), codes.PermissionDenied},
		{"control: outbound sidecar, UnaryCall", unary(web), codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := tc.call(ctx)
			if got := status.Code(err); got != tc.want {
				t.Fatalf("got %v (%v), want %v", got, err, tc.want)
			}
		})
	}
}
