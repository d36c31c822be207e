package admin

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/svidgate/svidgate/internal/audit"
	"github.com/svidgate/svidgate/internal/identity"
	"github.com/svidgate/svidgate/internal/listener"
	"github.com/svidgate/svidgate/internal/ratelimit"
	"github.com/svidgate/svidgate/internal/telemetry"
)

// Server holds what the admin endpoints report on.
type Server struct {
	Identity      *identity.Source
	RefreshMargin time.Duration
	Listeners     []listener.Listener
	Metrics       *telemetry.Metrics
	Version       string
	Started       time.Time
	Graph         *audit.Graph // the audit writer's live service graph (Options.Graph); nil: /graph answers 404
	// JWTBundles, if set, reports the JWT bundles validators use.
	JWTBundles func() identity.JWTBundlesSnapshot
	// Blocked, if set, lists the callers blocked by abuse protection.
	Blocked func(now time.Time) []ratelimit.Block
	// RateLimitBackend names where limits are counted ("local", "redis").
	RateLimitBackend string
	// AuditHealthy, if set, must hold for /readyz: in block mode a
	// gateway whose audit trail refuses records answers every request
	// with 503, and should get no traffic.
	AuditHealthy func() bool
}

// ready is /readyz's verdict.
func (s *Server) ready(now time.Time) (bool, string) {
	if ok, why := s.Identity.Ready(now, s.RefreshMargin); !ok {
		return false, why
	}
	if s.AuditHealthy != nil && !s.AuditHealthy() {
		return false, "the audit trail cannot keep records (on_failure = block)"
	}
	return true, ""
}

// Handler returns the admin endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := s.ready(time.Now()); !ok {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", s.Metrics.Handler())
	mux.HandleFunc("GET /graph", s.graph)
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.Status(time.Now()))
	})
	return mux
}

// Status is the /v1/status document.
type Status struct {
	Version       string    `json:"version"`
	Started       time.Time `json:"started"`
	Ready         bool      `json:"ready"`
	NotReady      string    `json:"not_ready_reason,omitempty"`
	SPIFFEID      string    `json:"spiffe_id"`
	SVIDSerial    string    `json:"svid_serial"`
	SVIDExpiresAt time.Time `json:"svid_expires_at"`
	SVIDUpdated   time.Time `json:"svid_updated_at"`
	TrustDomains  []string  `json:"trust_domains"`
	// JWTTrustDomains are the trust domains whose JWT bundles are held.
	JWTTrustDomains  []string         `json:"jwt_trust_domains"`
	RateLimitBackend string           `json:"ratelimit_backend,omitempty"`
	BlockedCallers   []BlockedCaller  `json:"blocked_callers"`
	Listeners        []ListenerStatus `json:"listeners"`
}

// BlockedCaller is a caller refused after repeated denials.
type BlockedCaller struct {
	SPIFFEID string    `json:"spiffe_id"`
	Until    time.Time `json:"until"`
	Failures int       `json:"failures"`
}

// ListenerStatus is one listener in Status.
type ListenerStatus struct {
	Name    string        `json:"name"`
	Mode    string        `json:"mode"`
	Address string        `json:"address"`
	Policy  *PolicyStatus `json:"policy,omitempty"`
}

// PolicyStatus is the enforcing policy of a listener and the last attempt
// to load it.
type PolicyStatus struct {
	File       string     `json:"file"`
	SHA256     string     `json:"sha256"`
	Rules      int        `json:"rules"`
	LastReload ReloadInfo `json:"last_reload"`
}

// ReloadInfo is the outcome of the last load attempt.
type ReloadInfo struct {
	Time   time.Time `json:"time"`
	Result string    `json:"result"` // ok | error
	Error  string    `json:"error,omitempty"`
}

// Status builds the status document.
func (s *Server) Status(now time.Time) Status {
	snap := s.Identity.Snapshot()
	ready, why := s.ready(now)
	st := Status{
		Version: s.Version, Started: s.Started.UTC(),
		Ready: ready, NotReady: why,
		SPIFFEID: snap.SPIFFEID, SVIDSerial: snap.Serial,
		SVIDExpiresAt: snap.NotAfter.UTC(), SVIDUpdated: snap.Updated.UTC(),
		TrustDomains: snap.TrustDomains, RateLimitBackend: s.RateLimitBackend,
		BlockedCallers: []BlockedCaller{},
	}
	if s.JWTBundles != nil {
		st.JWTTrustDomains = s.JWTBundles().TrustDomains
	}
	if s.Blocked != nil {
		for _, b := range s.Blocked(now) {
			st.BlockedCallers = append(st.BlockedCallers, BlockedCaller{SPIFFEID: b.Key, Until: b.Until.UTC(), Failures: b.Failures})
		}
	}
	for _, ll := range s.Listeners {
		l := ll.Status()
		ls := ListenerStatus{Name: l.Name, Mode: l.Mode, Address: l.Address}
		if l.Policy != nil {
			p, last := l.Policy.Policy(), l.Policy.Last()
			res := "ok"
			if !last.OK {
				res = "error"
			}
			ls.Policy = &PolicyStatus{
				File: l.Policy.File(), SHA256: p.SHA256(), Rules: p.Rules(),
				LastReload: ReloadInfo{Time: last.Time.UTC(), Result: res, Error: last.Error},
			}
		}
		st.Listeners = append(st.Listeners, ls)
	}
	return st
}
