package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/svidgate/svidgate/internal/admin"
	"github.com/svidgate/svidgate/internal/audit"
	"github.com/svidgate/svidgate/internal/config"
	"github.com/svidgate/svidgate/internal/identity"
	"github.com/svidgate/svidgate/internal/listener"
	"github.com/svidgate/svidgate/internal/proxy"
)

// Start opens the audit trail, waits for the first X509-SVID (at most
// identity.initial_timeout), watches the JWT bundles, builds the limiters
// and binds every listener and the admin listener. A signal that ends ctx
// during the wait stops it. Whatever Start opened, Stop closes, also when
// Start fails.
func (g *Gateway) Start(ctx context.Context) error {
	if err := g.cfg.CheckEndpoint(); err != nil {
		return err
	}
	if err := g.openAudit(); err != nil {
		return err
	}
	// The watches outlive ctx so that a drain still sees rotations; Stop
	// ends them last.
	watchCtx, cancel := context.WithCancel(context.Background())
	g.stopWatch = cancel
	if err := g.watchX509(ctx, watchCtx); err != nil {
		return err
	}
	if err := g.watchJWT(watchCtx); err != nil {
		return err
	}
	g.newLimits()
	go g.gauges(watchCtx)
	if err := g.bind(); err != nil {
		return err
	}
	for _, h := range g.policies {
		if err := h.Watch(watchCtx); err != nil {
			g.log.Warn("cannot watch the policy file; reload with SIGHUP", "file", h.File(), "error", err.Error())
		}
	}
	return nil
}

// openAudit opens the trail and starts its writer, seeding the live
// service graph with what the trail already holds.
func (g *Gateway) openAudit() error {
	a := g.cfg.Audit
	var sink audit.Sink = audit.Stdout{Writer: os.Stdout}
	if a.Path != "-" {
		f, err := audit.Open(a.Path, audit.FileOptions{MaxBytes: a.MaxBytes, Keep: a.Keep, Log: g.log})
		if err != nil {
			return err
		}
		sink = f
	}
	g.graph = audit.NewGraph(0)
	if a.Path != "-" {
		_ = audit.LoadGraph(g.graph, []string{a.Path})
	}
	m := g.metrics
	g.audit = audit.NewWriter(sink, audit.Options{
		QueueSize:    a.QueueSize,
		SyncInterval: a.SyncInterval.Duration,
		OnFailure:    audit.FailureMode(a.OnFailure),
		Graph:        g.graph,
		Log:          g.log,
		Counters: audit.Counters{
			Written:     func(n int) { m.AuditRecords.Add(float64(n)) },
			Dropped:     func(n int) { m.AuditDropped.Add(float64(n)) },
			WriteErrors: m.AuditWriteErrors.Inc,
		},
	})
	return nil
}

// watchX509 watches the Workload API for our X509-SVID and bundles and
// waits for the first update.
func (g *Gateway) watchX509(ctx, watchCtx context.Context) error {
	m := g.metrics
	g.ident = &identity.Source{
		Log: g.log,
		OnUpdate: func(s identity.Snapshot) {
			m.WorkloadUpdates.Inc()
			m.SVIDExpiration.Set(float64(s.NotAfter.Unix()))
		},
	}
	id := g.cfg.Identity
	g.log.Info("waiting for the first X509-SVID", "socket", socketName(id.Socket), "timeout", id.InitialTimeout.String())
	stopAbort := context.AfterFunc(ctx, g.stopWatch)
	err := g.ident.Watch(watchCtx, id.Socket, id.InitialTimeout.Duration)
	if !stopAbort() {
		return errors.New("stopped by signal while waiting for the first X509-SVID")
	}
	if err != nil {
		return err
	}
	g.log.Info("X509-SVID received", "spiffe_id", g.ident.ID().String())
	return nil
}

// bind builds every listener and binds its socket, then the admin
// listener's. A bind error names the address.
func (g *Gateway) bind() error {
	deps := proxy.Deps{Identity: g.ident, Audit: g.audit, Metrics: g.metrics, Log: g.log,
		JWT: g.jwt, Tokens: g.tokens, Limits: g.limits}
	for _, lc := range g.cfg.Listeners {
		ln, err := net.Listen("tcp", lc.Address)
		if err != nil {
			return fmt.Errorf("listener %q: %w (is another process using %s?)", lc.Name, err, lc.Address)
		}
		var l listener.Listener = proxy.New(lc, proxy.Setup{Policy: g.policies[lc.Name], EdgeCertificate: g.edgeCerts[lc.Name]}, deps)
		g.listeners = append(g.listeners, bound{l: l, ln: ln})
	}
	ln, err := net.Listen("tcp", g.cfg.Admin.Address)
	if err != nil {
		return fmt.Errorf("admin listener: %w (is another process using %s?)", err, g.cfg.Admin.Address)
	}
	g.adminLn = ln
	g.adminSrv = &http.Server{Handler: g.adminServer().Handler(), ReadHeaderTimeout: 5 * time.Second}
	return nil
}

// adminServer is what /v1/status, /readyz, /metrics and /graph report on.
func (g *Gateway) adminServer() *admin.Server {
	s := &admin.Server{
		Identity: g.ident, RefreshMargin: g.cfg.Identity.RefreshMargin.Duration,
		Metrics: g.metrics, Version: g.version, Started: time.Now(), Graph: g.graph,
		JWTBundles: g.bundles.Snapshot, RateLimitBackend: string(g.cfg.RateLimit.Backend),
	}
	for _, b := range g.listeners {
		s.Listeners = append(s.Listeners, b.l)
	}
	if b := g.limits.Blocker; b != nil {
		s.Blocked = b.List
	}
	if g.cfg.Audit.OnFailure == config.Block {
		s.AuditHealthy = g.audit.Healthy
	}
	return s
}

func socketName(s string) string {
	if s == "" {
		return "$SPIFFE_ENDPOINT_SOCKET=" + os.Getenv("SPIFFE_ENDPOINT_SOCKET")
	}
	return s
}
