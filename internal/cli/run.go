package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/svidgate/svidgate/internal/admin"
	"github.com/svidgate/svidgate/internal/audit"
	"github.com/svidgate/svidgate/internal/config"
	"github.com/svidgate/svidgate/internal/identity"
	"github.com/svidgate/svidgate/internal/jwtauth"
	"github.com/svidgate/svidgate/internal/proxy"
	"github.com/svidgate/svidgate/internal/ratelimit"
	"github.com/svidgate/svidgate/internal/reload"
	"github.com/svidgate/svidgate/internal/telemetry"
	"github.com/svidgate/svidgate/policy"
)

func runGateway(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	file := fs.String("config", "", "gateway config `file` (gateway.toml)")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if *file == "" {
		fmt.Fprintln(stderr, "svidgate run: -config is required")
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log, err := telemetry.NewLogger(stderr, cfg.Log.Format, cfg.Log.Level)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, cfg, log); err != nil {
		// Plain text, not a log line: this is the answer to the operator
		// who started us.
		fmt.Fprintln(stderr, "svidgate:", err)
		return 1
	}
	return 0
}

// gateway is one running svidgate: what serve starts and must stop.
type gateway struct {
	cfg     *config.Config
	log     *slog.Logger
	metrics *telemetry.Metrics
	audit   *audit.Writer
	ident   *identity.Source
	holders map[string]*reload.Holder
	jwt     *jwtauth.Validator
	bundles *identity.JWTBundles
	tokens  *identity.JWTSVIDs
	limits  *proxy.Limits
	graph   *audit.Graph
}

func serve(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	g := &gateway{cfg: cfg, log: log, holders: map[string]*reload.Holder{}}

	var writer *audit.Writer
	g.metrics = telemetry.NewMetrics(version(), func() float64 {
		if writer == nil {
			return 0
		}
		return float64(writer.Depth())
	})

	// Policies load first: a bad file is a start-up error, found before
	// any socket opens.
	for _, l := range cfg.Listeners {
		if l.Policy == "" {
			continue
		}
		h, err := reload.New(l.Policy, log)
		if err != nil {
			return err
		}
		name := l.Name
		g.metrics.PolicyRules.WithLabelValues(name).Set(float64(h.Policy().Rules()))
		h.OnResult = func(p *policy.Policy, err error) {
			res := "ok"
			if err != nil {
				res = "error"
			}
			g.metrics.PolicyReloads.WithLabelValues(name, res).Inc()
			g.metrics.PolicyRules.WithLabelValues(name).Set(float64(p.Rules()))
		}
		g.metrics.PolicyReloads.WithLabelValues(name, "ok").Inc()
		g.holders[name] = h
	}

	sink, err := openSink(cfg.Audit, log)
	if err != nil {
		return err
	}
	g.graph = audit.NewGraph(0)
	if cfg.Audit.Path != "-" {
		// Seed the live graph with what the trail already holds.
		_ = audit.LoadGraph(g.graph, []string{cfg.Audit.Path})
	}
	writer = audit.NewWriter(sink, audit.Options{
		QueueSize:    cfg.Audit.QueueSize,
		SyncInterval: cfg.Audit.SyncInterval.Duration,
		OnFailure:    audit.FailureMode(cfg.Audit.OnFailure),
		Graph:        g.graph,
		Log:          log,
		Counters: audit.Counters{
			Written:     func(n int) { g.metrics.AuditRecords.Add(float64(n)) },
			Dropped:     func(n int) { g.metrics.AuditDropped.Add(float64(n)) },
			WriteErrors: g.metrics.AuditWriteErrors.Inc,
		},
	})
	g.audit = writer
	defer func() {
		if err := writer.Close(); err != nil {
			log.Error("closing the audit trail failed", "error", err.Error())
		}
	}()

	watchCtx, cancelWatch := context.WithCancel(context.Background())
	defer cancelWatch()
	g.ident = &identity.Source{
		Log: log,
		OnUpdate: func(s identity.Snapshot) {
			g.metrics.WorkloadUpdates.Inc()
			g.metrics.SVIDExpiration.Set(float64(s.NotAfter.Unix()))
		},
	}
	log.Info("waiting for the first X509-SVID", "socket", socketName(cfg.Identity.Socket), "timeout", cfg.Identity.InitialTimeout.String())
	// The watch outlives ctx so that a drain still sees rotations; only a
	// signal during start-up cuts it short.
	stopAbort := context.AfterFunc(ctx, cancelWatch)
	err = g.ident.Watch(watchCtx, cfg.Identity.Socket, cfg.Identity.InitialTimeout.Duration)
	if !stopAbort() {
		return errors.New("stopped by signal while waiting for the first X509-SVID")
	}
	if err != nil {
		return err
	}
	log.Info("X509-SVID received", "spiffe_id", g.ident.ID().String())

	if err := g.watchJWT(watchCtx); err != nil {
		return err
	}
	if g.tokens != nil {
		defer g.tokens.Close()
	}
	if err := g.newLimits(); err != nil {
		return err
	}
	if r, ok := g.limits.Limiter.(ratelimit.Fallible); ok {
		if c, ok := r.Limiter.(io.Closer); ok {
			defer c.Close()
		}
	}
	go g.gauges(watchCtx)

	return g.run(ctx, watchCtx)
}

func (g *gateway) run(ctx, watchCtx context.Context) error {
	deps := proxy.Deps{
		Identity: g.ident, Audit: g.audit,
		Metrics: g.metrics, Log: g.log, JWT: g.jwt, Tokens: g.tokens, Limits: g.limits,
	}
	type bound struct {
		srv *http.Server
		ln  net.Listener
		tls bool
	}
	var all []bound
	closeAll := func() {
		for _, b := range all {
			b.ln.Close()
		}
	}
	adminInfo := &admin.Server{
		Identity: g.ident, RefreshMargin: g.cfg.Identity.RefreshMargin.Duration,
		Metrics: g.metrics, Version: version(), Started: time.Now(), Graph: g.graph,
		JWTBundles: g.bundles.Snapshot, RateLimitBackend: string(g.cfg.RateLimit.Backend),
	}
	if b := g.limits.Blocker; b != nil {
		adminInfo.Blocked = b.List
	}
	if g.cfg.Audit.OnFailure == config.Block {
		adminInfo.AuditHealthy = g.audit.Healthy
	}
	for _, l := range g.cfg.Listeners {
		ln, err := net.Listen("tcp", l.Address)
		if err != nil {
			closeAll()
			return fmt.Errorf("listener %q: %w (is another process using %s?)", l.Name, err, l.Address)
		}
		srv, err := proxy.NewServer(l, g.holders[l.Name], deps)
		if err != nil {
			ln.Close()
			closeAll()
			return err
		}
		all = append(all, bound{srv: srv, ln: ln, tls: l.Mode != config.Outbound})
		adminInfo.Listeners = append(adminInfo.Listeners, admin.Listener{
			Name: l.Name, Mode: string(l.Mode), Address: ln.Addr().String(), Policy: g.holders[l.Name],
		})
	}
	adminLn, err := net.Listen("tcp", g.cfg.Admin.Address)
	if err != nil {
		closeAll()
		return fmt.Errorf("admin listener: %w (is another process using %s?)", err, g.cfg.Admin.Address)
	}
	adminSrv := &http.Server{Handler: adminInfo.Handler(), ReadHeaderTimeout: 5 * time.Second}

	for _, h := range g.holders {
		if err := h.Watch(watchCtx); err != nil {
			g.log.Warn("cannot watch the policy file; reload with SIGHUP", "file", h.File(), "error", err.Error())
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	errc := make(chan error, len(all)+1)
	for _, b := range all {
		go func() {
			var err error
			if b.tls {
				err = b.srv.ServeTLS(b.ln, "", "")
			} else {
				err = b.srv.Serve(b.ln)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	go func() {
		if err := adminSrv.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("admin listener: %w", err)
		}
	}()
	g.log.Info("svidgate serving", "listeners", len(all), "admin", adminLn.Addr().String())

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hup:
			g.log.Info("SIGHUP: reloading policies and reopening the audit file")
			for _, h := range g.holders {
				_ = h.Reload()
			}
			if err := g.audit.Reopen(); err != nil {
				g.log.Error("reopening the audit file failed", "error", err.Error())
			}
		case err := <-errc:
			runErr = err
			break loop
		}
	}

	// Drain: stop accepting, let in-flight requests finish within the
	// deadline, then close what is left. The audit writer is closed (and
	// flushed) by serve after this returns.
	g.log.Info("shutting down", "drain_timeout", g.cfg.ShutdownTimeout.String())
	drainCtx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownTimeout.Duration)
	defer cancel()
	var wg sync.WaitGroup
	for _, b := range all {
		wg.Go(func() {
			if err := b.srv.Shutdown(drainCtx); err != nil {
				g.log.Warn("drain deadline passed; closing connections", "listener", b.srv.Addr)
				b.srv.Close()
			}
		})
	}
	wg.Wait()
	_ = adminSrv.Shutdown(drainCtx)
	return runErr
}

// watchJWT keeps the JWT bundles (ours and federated ones) up to date for
// the validator, and dials the Workload API for egress JWT-SVIDs when an
// outbound listener attaches them.
func (g *gateway) watchJWT(ctx context.Context) error {
	m := g.metrics
	hit, miss := m.JWTCache.WithLabelValues("hit"), m.JWTCache.WithLabelValues("miss")
	g.bundles = &identity.JWTBundles{Log: g.log}
	v, err := jwtauth.NewValidator(g.bundles, jwtauth.Options{
		MaxTokenBytes: g.cfg.JWT.MaxTokenBytes,
		Leeway:        g.cfg.JWT.Leeway.Duration,
		CacheSize:     g.cfg.JWT.CacheSize,
		OnResult: func(reason string, cacheHit bool) {
			m.JWTValidations.WithLabelValues(reason).Inc()
			if cacheHit {
				hit.Inc()
			} else {
				miss.Inc()
			}
		},
	})
	if err != nil {
		return err
	}
	g.jwt = v
	g.bundles.OnUpdate = func(s identity.JWTBundlesSnapshot) {
		m.JWTBundleUpdates.Inc()
		if s.Changed {
			v.Flush()
		}
	}
	if err := g.bundles.Watch(ctx, g.cfg.Identity.Socket, g.cfg.Identity.InitialTimeout.Duration); err != nil {
		return err
	}
	for _, l := range g.cfg.Listeners {
		if l.Mode == config.Outbound && l.JWTAudience != "" {
			g.tokens, err = identity.DialJWTSVIDs(ctx, g.cfg.Identity.Socket, identity.JWTSVIDOptions{Log: g.log})
			return err
		}
	}
	return nil
}

// newLimits builds the rate limiter (local, or Redis shared by replicas),
// the in-flight table and, when configured, abuse blocking.
func (g *gateway) newLimits() error {
	rl := g.cfg.RateLimit
	var backend ratelimit.Limiter = ratelimit.NewLocal(rl.MaxTracked)
	if rl.Backend == config.Redis {
		password := ""
		if rl.Redis.PasswordFile != "" {
			b, err := os.ReadFile(rl.Redis.PasswordFile)
			if err != nil {
				return fmt.Errorf("ratelimit.redis.password_file: %w", err)
			}
			password = strings.TrimSpace(string(b))
		}
		backend = ratelimit.NewRedis(ratelimit.RedisOptions{
			Addr: rl.Redis.Address, Password: password,
			DialTimeout: rl.Redis.Timeout.Duration, ReadTimeout: rl.Redis.Timeout.Duration, WriteTimeout: rl.Redis.Timeout.Duration,
			KeyPrefix: rl.Redis.Prefix,
		})
	}
	errLog := newEveryLogger(g.log, 10*time.Second)
	g.limits = &proxy.Limits{
		Limiter: ratelimit.Fallible{Limiter: backend, FailOpen: rl.Redis.OnFailure == "open", OnError: func(err error) {
			g.metrics.RateLimitErrors.Inc()
			errLog.Warn("rate-limit backend failed; applying on_failure", "backend", string(rl.Backend),
				"on_failure", rl.Redis.OnFailure, "error", err.Error())
		}},
		InFlight: ratelimit.NewInFlight(rl.MaxTracked),
		Metrics:  g.metrics,
	}
	if a := rl.Abuse; a.Threshold > 0 {
		g.limits.Blocker = ratelimit.NewBlocker(a.Threshold, a.Window.Duration, a.Cooldown.Duration, rl.MaxTracked)
	}
	return nil
}

// gauges refreshes the table-size gauges until ctx ends.
func (g *gateway) gauges(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if f, ok := g.limits.Limiter.(ratelimit.Fallible); ok {
			if l, ok := f.Limiter.(*ratelimit.Local); ok {
				g.metrics.CallersTracked.WithLabelValues("buckets").Set(float64(l.Len()))
			}
		}
		g.metrics.CallersTracked.WithLabelValues("in_flight").Set(float64(g.limits.InFlight.Len()))
		if b := g.limits.Blocker; b != nil {
			g.metrics.CallersTracked.WithLabelValues("abuse").Set(float64(b.Len()))
			g.metrics.CallersBlocked.Set(float64(len(b.List(time.Now()))))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func openSink(a config.Audit, log *slog.Logger) (audit.Sink, error) {
	if a.Path == "-" {
		return audit.Stdout{Writer: os.Stdout}, nil
	}
	return audit.Open(a.Path, audit.FileOptions{MaxBytes: a.MaxBytes, Keep: a.Keep, Log: log})
}

func socketName(s string) string {
	if s == "" {
		return "$SPIFFE_ENDPOINT_SOCKET=" + os.Getenv("SPIFFE_ENDPOINT_SOCKET")
	}
	return s
}
