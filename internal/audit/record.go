package audit

import "time"

// Schema is the version of the record layout, written in every record.
//
// Version 2 added seq, chain, destination, tls, jwt, ratelimit and
// dropped_before; a version 1 line carries no chain and cannot be verified.
const Schema = 2

// Decision results recorded in Decision.Result.
const (
	ResultAllow   = "allow"   // the request was served
	ResultDeny    = "deny"    // refused: by policy, in the TLS handshake, or as malformed
	ResultLimited = "limited" // allowed by policy, refused by the rate limiter
	ResultError   = "error"   // svidgate could not decide (for example, the audit trail refused it)
)

// Record is one audited decision: who called what, which rule decided, and
// what happened. Zero-valued fields are omitted from the JSON form, except
// those a reader always needs. The JSON layout, field by field, is
// documented in docs/AUDIT.md; the writer encodes it by hand (see
// AppendRecord) in exactly the field order below.
type Record struct {
	Schema int `json:"schema"`
	// Seq numbers the records of one trail from 1 without gaps; it
	// continues across rotated files and restarts. The writer sets it.
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	ID       string    `json:"id"`
	Listener string    `json:"listener"`
	Mode     string    `json:"mode"`
	Source   Source    `json:"source"`
	// Destination is the workload the request was addressed to.
	Destination Destination `json:"destination,omitzero"`
	// TLS is filled for a connection refused during the TLS handshake.
	TLS TLS `json:"tls,omitzero"`
	// JWT describes the JWT-SVID the request carried, never the token.
	JWT      JWT      `json:"jwt,omitzero"`
	Request  Request  `json:"request"`
	Decision Decision `json:"decision"`
	// RateLimit is the limit that applied to the request, if any.
	RateLimit RateLimit `json:"ratelimit,omitzero"`
	// Status is the status svidgate answered with (HTTP, or the HTTP
	// status of a gRPC response; see Request.GRPCStatus).
	Status       int      `json:"status"`
	Upstream     Upstream `json:"upstream,omitzero"`
	BytesIn      int64    `json:"bytes_in"`
	BytesOut     int64    `json:"bytes_out"`
	DurationMS   float64  `json:"duration_ms"`
	PolicySHA256 string   `json:"policy_sha256,omitempty"`
	// DroppedBefore counts the records that were dropped (drop mode)
	// between the previous record of the trail and this one. The writer
	// sets it.
	DroppedBefore uint64 `json:"dropped_before,omitempty"`
	// Chain is hex SHA-256(previous chain ‖ this record's canonical
	// bytes); see docs/AUDIT.md. The writer computes it; a value set by
	// the caller is ignored.
	Chain string `json:"chain"`

	admitted bool // holds a queue place taken by Writer.Admit
}

// Source is the caller.
type Source struct {
	SPIFFEID     string    `json:"spiffe_id,omitempty"`
	TrustDomain  string    `json:"trust_domain,omitempty"`
	CertSerial   string    `json:"cert_serial,omitempty"`
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
	Addr         string    `json:"addr"`
}

// Destination is who was called: on an inbound listener svidgate's own
// SPIFFE ID (the workload it fronts), on an outbound listener the
// upstream's required SPIFFE ID.
type Destination struct {
	SPIFFEID string `json:"spiffe_id,omitempty"`
}

// TLS is the outcome of a TLS handshake that svidgate refused.
type TLS struct {
	// Reason says why the handshake failed, e.g. "certificate signed by
	// unknown authority" or "trust domain not accepted".
	Reason string `json:"reason,omitempty"`
	// PresentedSPIFFEID is the URI SAN of the client certificate, when it
	// could be parsed as a SPIFFE ID. It is not verified.
	PresentedSPIFFEID string `json:"presented_spiffe_id,omitempty"`
}

// JWT is what the audit trail keeps of a JWT-SVID: its claims of interest
// and a prefix of the token's hash for correlation, never the token.
type JWT struct {
	Sub string    `json:"sub,omitempty"`
	Aud []string  `json:"aud,omitempty"`
	JTI string    `json:"jti,omitempty"`
	Exp time.Time `json:"exp,omitzero"`
	// TokenSHA256Prefix is the first 12 hex digits of SHA-256 of the
	// compact token.
	TokenSHA256Prefix string `json:"token_sha256_prefix,omitempty"`
}

// RateLimit is the rate limit that applied to a request.
type RateLimit struct {
	Rule      string `json:"rule,omitempty"`
	Limit     string `json:"limit,omitempty"` // as written in the policy, e.g. "50/s"
	Remaining int64  `json:"remaining"`       // tokens left after this request
}

// Request is what was asked for, after normalization: the path here is the
// path that was decided on and forwarded.
type Request struct {
	Method     string `json:"method"`
	Host       string `json:"host"`
	Path       string `json:"path"`
	Proto      string `json:"proto"`
	GRPCMethod string `json:"grpc_method,omitempty"`
	GRPCStatus string `json:"grpc_status,omitempty"`
}

// Decision is the authorization outcome.
type Decision struct {
	Result string   `json:"result"` // ResultAllow, ResultDeny, ResultLimited or ResultError
	Rule   string   `json:"rule,omitempty"`
	Reason string   `json:"reason"`
	DryRun []DryRun `json:"dry_run,omitempty"`
}

// DryRun is what a dry-run rule would have decided.
type DryRun struct {
	Rule   string `json:"rule"`
	Result string `json:"result"` // would_allow | would_deny
}

// Upstream is where the request went and how it came back.
type Upstream struct {
	Addr       string  `json:"addr,omitempty"`
	SPIFFEID   string  `json:"spiffe_id,omitempty"`
	Status     int     `json:"status,omitempty"`
	DurationMS float64 `json:"duration_ms,omitempty"`
	Error      string  `json:"error,omitempty"`
}
