package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/svidgate/svidgate/internal/audit"
	"github.com/svidgate/svidgate/internal/config"
	"github.com/svidgate/svidgate/internal/identity"
	"github.com/svidgate/svidgate/internal/jwtauth"
	"github.com/svidgate/svidgate/internal/listener"
	"github.com/svidgate/svidgate/internal/proxy"
	"github.com/svidgate/svidgate/internal/reload"
	"github.com/svidgate/svidgate/internal/telemetry"
	"github.com/svidgate/svidgate/policy"
)

// Gateway is one svidgate: what Provision checked and Start opened, for
// Stop to close.
type Gateway struct {
	cfg     *config.Config
	log     *slog.Logger
	version string
	metrics *telemetry.Metrics

	// Provisioned: read from disk, checked, nothing opened.
	policies      map[string]*reload.Holder   // by listener name
	edgeCerts     map[string]*tls.Certificate // by listener name
	redisPassword string

	// Started.
	audit     *audit.Writer
	graph     *audit.Graph
	ident     *identity.Source
	jwt       *jwtauth.Validator
	bundles   *identity.JWTBundles
	tokens    *identity.JWTSVIDs
	limits    *proxy.Limits
	listeners []bound
	adminSrv  *http.Server
	adminLn   net.Listener
	// stopWatch ends the Workload API and policy watches, last of all.
	stopWatch context.CancelFunc
}

// bound is a listener and the socket it serves.
type bound struct {
	l  listener.Listener
	ln net.Listener
}

// Provision loads and checks everything cfg names that needs no network:
// every policy, edge certificate and key, the Redis password file and the
// audit trail's directory. It reports every error it finds, each as
// file:line:col, and opens nothing. version is reported in metrics.
func Provision(cfg *config.Config, log *slog.Logger, version string) (*Gateway, error) {
	g := &Gateway{cfg: cfg, log: log, version: version,
		policies: map[string]*reload.Holder{}, edgeCerts: map[string]*tls.Certificate{}}
	g.metrics = telemetry.NewMetrics(version, func() float64 {
		if g.audit == nil {
			return 0
		}
		return float64(g.audit.Depth())
	})
	var errs []error
	for i, l := range cfg.Listeners {
		errs = append(errs, g.provisionPolicy(l), g.provisionEdgeCert(i, l))
	}
	errs = append(errs, g.provisionRedisPassword(), g.provisionAuditDir())
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return g, nil
}

// provisionPolicy loads a listener's policy and counts its reloads.
func (g *Gateway) provisionPolicy(l config.Listener) error {
	if l.Policy == "" {
		return nil
	}
	h, err := reload.New(l.Policy, g.log)
	if err != nil {
		return err
	}
	m, name := g.metrics, l.Name
	m.PolicyRules.WithLabelValues(name).Set(float64(h.Policy().Rules()))
	h.OnResult = func(p *policy.Policy, err error) {
		res := "ok"
		if err != nil {
			res = "error"
		}
		m.PolicyReloads.WithLabelValues(name, res).Inc()
		m.PolicyRules.WithLabelValues(name).Set(float64(p.Rules()))
	}
	m.PolicyReloads.WithLabelValues(name, "ok").Inc()
	g.policies[name] = h
	return nil
}

// provisionEdgeCert loads an edge listener's certificate for public names.
func (g *Gateway) provisionEdgeCert(i int, l config.Listener) error {
	if l.TLSCertFile == "" {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(l.TLSCertFile, l.TLSKeyFile)
	if err != nil {
		return g.cfg.Errorf(config.ListenerKey(i, "tls_cert_file"),
			"listener %q: loading tls_cert_file and tls_key_file: %v (both PEM files must exist, be readable and hold a matching certificate and key)", l.Name, err)
	}
	g.edgeCerts[l.Name] = &cert
	return nil
}

// provisionRedisPassword reads the Redis password file, if any.
func (g *Gateway) provisionRedisPassword() error {
	f := g.cfg.RateLimit.Redis.PasswordFile
	if f == "" {
		return nil
	}
	b, err := os.ReadFile(f)
	if err != nil {
		return g.cfg.Errorf("ratelimit.redis.password_file", "ratelimit.redis.password_file: %v (the file must exist and be readable by svidgate)", err)
	}
	g.redisPassword = strings.TrimSpace(string(b))
	return nil
}

// provisionAuditDir checks that the audit trail's directory exists: the
// trail is created at Start, and a typo should not wait until then.
func (g *Gateway) provisionAuditDir() error {
	p := g.cfg.Audit.Path
	if p == "-" || p == "" {
		return nil
	}
	dir := filepath.Dir(p)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return g.cfg.Errorf("audit.path", "audit.path %q: directory %s does not exist (create it, writable by svidgate)", p, dir)
	}
	return nil
}

// Policy is the policy in force on the named listener, or nil.
func (g *Gateway) Policy(listener string) *policy.Policy {
	if h := g.policies[listener]; h != nil {
		return h.Policy()
	}
	return nil
}

// Reload reloads every policy and reopens the audit file (SIGHUP).
func (g *Gateway) Reload() {
	for _, h := range g.policies {
		_ = h.Reload()
	}
	if g.audit != nil {
		if err := g.audit.Reopen(); err != nil {
			g.log.Error("reopening the audit file failed", "error", err.Error())
		}
	}
}
