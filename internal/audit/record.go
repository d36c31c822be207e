package audit

import "time"

// Schema is the version of the record layout, written in every record.
const Schema = 1

// Record is one audited decision: who called what, which rule decided, and
// what happened. Zero-valued fields are omitted from the JSON form.
type Record struct {
	Schema   int       `json:"schema"`
	Time     time.Time `json:"time"`
	ID       string    `json:"id"`
	Listener string    `json:"listener"`
	Mode     string    `json:"mode"`
	Source   Source    `json:"source"`
	Request  Request   `json:"request"`
	Decision Decision  `json:"decision"`
	// Status is the status svidgate answered with (HTTP, or the HTTP
	// status of a gRPC response; see Request.GRPCStatus).
	Status       int      `json:"status"`
	Upstream     Upstream `json:"upstream,omitzero"`
	BytesIn      int64    `json:"bytes_in"`
	BytesOut     int64    `json:"bytes_out"`
	DurationMS   float64  `json:"duration_ms"`
	PolicySHA256 string   `json:"policy_sha256,omitempty"`
}

// Source is the caller.
type Source struct {
	SPIFFEID     string    `json:"spiffe_id,omitempty"`
	TrustDomain  string    `json:"trust_domain,omitempty"`
	CertSerial   string    `json:"cert_serial,omitempty"`
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
	Addr         string    `json:"addr"`
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
	Result string   `json:"result"` // allow | deny | error
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
