package gateway

import (
	"context"

	"github.com/svidgate/svidgate/internal/config"
	"github.com/svidgate/svidgate/internal/identity"
	"github.com/svidgate/svidgate/internal/jwtauth"
)

// watchJWT keeps the JWT bundles (ours and federated ones) up to date for
// the validator, and dials the Workload API for egress JWT-SVIDs when an
// outbound listener attaches them.
func (g *Gateway) watchJWT(ctx context.Context) error {
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
