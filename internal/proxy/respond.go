package proxy

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/svidgate/svidgate/internal/audit"
)

// gRPC status codes svidgate answers with.
const (
	grpcInvalidArgument  = 3
	grpcDeadlineExceeded = 4
	grpcPermissionDenied = 7
	grpcResourceExhaust  = 8
	grpcInternal         = 13
	grpcUnavailable      = 14
	grpcUnauthenticated  = 16
)

// isGRPC reports whether r is a gRPC call: its answers must be gRPC statuses
// in trailers, not bare HTTP errors.
func isGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return r.ProtoMajor == 2 && strings.HasPrefix(ct, "application/grpc")
}

// grpcFromHTTP maps the HTTP status svidgate would have answered with to the
// gRPC status it answers a gRPC call with.
func grpcFromHTTP(status int) int {
	switch status {
	case http.StatusBadRequest:
		return grpcInvalidArgument
	case http.StatusUnauthorized:
		return grpcUnauthenticated
	case http.StatusForbidden:
		return grpcPermissionDenied
	case http.StatusTooManyRequests:
		return grpcResourceExhaust
	case http.StatusGatewayTimeout:
		return grpcDeadlineExceeded
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return grpcUnavailable
	default:
		return grpcInternal
	}
}

// refusal is how a stage ends a request: what the caller is told and what
// the audit record says.
type refusal struct {
	status int    // HTTP status; mapped to a gRPC status for gRPC callers
	result string // audit decision result: deny, limited or error
	reason string // audit decision reason: why, for the operator
	msg    string // the one line the caller reads
}

// deny is a refusal with result "deny".
func deny(status int, reason, msg string) *refusal {
	return &refusal{status: status, result: audit.ResultDeny, reason: reason, msg: msg}
}

// respond answers a refused request in the caller's protocol and notes the
// outcome in its audit record.
func respond(x *exchange, r *refusal) {
	x.rec.Decision.Result = r.result
	x.rec.Decision.Reason = r.reason
	x.rec.Request.GRPCStatus = refuse(x.rw, x.r, r.status, r.msg)
}

// refuse answers a request svidgate will not forward. HTTP callers get the
// status and a one-line reason; gRPC callers get HTTP 200 with the mapped
// grpc-status and grpc-message in the trailers. It returns the gRPC status
// for the audit record, or "".
func refuse(w http.ResponseWriter, r *http.Request, status int, reason string) string {
	h := w.Header()
	if isGRPC(r) {
		code := strconv.Itoa(grpcFromHTTP(status))
		h.Set("Content-Type", "application/grpc")
		h.Set("Trailer", "Grpc-Status, Grpc-Message")
		w.WriteHeader(http.StatusOK)
		h.Set("Grpc-Status", code)
		h.Set("Grpc-Message", url.PathEscape(reason))
		return code
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(reason + "\n"))
	return ""
}
