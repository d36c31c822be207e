package identity

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// JWTBundles holds the JWT bundle set from the Workload API: the bundle of
// our trust domain and of every federated one the agent delivers. It
// implements jwtbundle.Source, so a jwtauth.Validator reads it. Its zero
// value holds nothing; Set or Watch fills it.
type JWTBundles struct {
	mu      sync.RWMutex
	set     *jwtbundle.Set
	updated time.Time

	// OnUpdate, when set before the first update, is called after each
	// one. A validator that caches tokens must Flush when Changed is true
	// (flushing on every update is merely slower).
	OnUpdate func(JWTBundlesSnapshot)
	// Log receives update and Workload API error lines; nil discards them.
	Log *slog.Logger
}

// JWTBundlesSnapshot describes the JWT bundles held at one moment.
type JWTBundlesSnapshot struct {
	TrustDomains []string
	Keys         int // JWT authorities over all trust domains
	Updated      time.Time
	// Changed reports whether the update changed any key: the agent
	// re-sends an unchanged set on reconnection.
	Changed bool
}

// Set replaces the bundle set.
func (b *JWTBundles) Set(set *jwtbundle.Set) {
	b.mu.Lock()
	changed := !equalJWTSets(b.set, set)
	b.set, b.updated = set, time.Now()
	b.mu.Unlock()
	if b.OnUpdate != nil {
		snap := b.Snapshot()
		snap.Changed = changed
		b.OnUpdate(snap)
	}
}

// GetJWTBundleForTrustDomain implements jwtbundle.Source.
func (b *JWTBundles) GetJWTBundleForTrustDomain(td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.set == nil {
		return nil, errors.New("identity: no JWT bundle received from the Workload API yet")
	}
	return b.set.GetJWTBundleForTrustDomain(td)
}

// Snapshot returns a description of what the set holds now; Changed is
// false.
func (b *JWTBundles) Snapshot() JWTBundlesSnapshot {
	b.mu.RLock()
	defer b.mu.RUnlock()
	snap := JWTBundlesSnapshot{Updated: b.updated}
	if b.set != nil {
		for _, bundle := range b.set.Bundles() {
			snap.TrustDomains = append(snap.TrustDomains, bundle.TrustDomain().Name())
			snap.Keys += len(bundle.JWTAuthorities())
		}
		slices.Sort(snap.TrustDomains)
	}
	return snap
}

func equalJWTSets(a, b *jwtbundle.Set) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Len() != b.Len() {
		return false
	}
	for _, x := range a.Bundles() {
		y, ok := b.Get(x.TrustDomain())
		if !ok || !x.Equal(y) {
			return false
		}
	}
	return true
}

// OnJWTBundlesUpdate implements workloadapi.JWTBundleWatcher.
func (b *JWTBundles) OnJWTBundlesUpdate(set *jwtbundle.Set) {
	b.Set(set)
	snap := b.Snapshot()
	b.logger().Info("JWT bundles updated", "trust_domains", snap.TrustDomains, "keys", snap.Keys)
}

// OnJWTBundlesWatchError implements workloadapi.JWTBundleWatcher. The
// client retries by itself; the current bundles stay in use.
func (b *JWTBundles) OnJWTBundlesWatchError(err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	b.logger().Warn("Workload API JWT bundle watch failed; retrying and keeping the current JWT bundles", "error", err.Error())
}

func (b *JWTBundles) logger() *slog.Logger {
	if b.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return b.Log
}

// Watch connects to the Workload API at addr (empty: $SPIFFE_ENDPOINT_SOCKET)
// and keeps the bundles updated until ctx ends. It returns once the first
// bundle set has arrived, or an error after timeout that says what to
// check.
func (b *JWTBundles) Watch(ctx context.Context, addr string, timeout time.Duration) error {
	w := &firstJWTWatcher{JWTBundles: b, first: newFirstSignal()}
	return watchUntilFirst(ctx, addr, timeout, w.first, "the first JWT bundles",
		"is the SPIRE agent running and reachable at that socket?",
		func(ctx context.Context, c *workloadapi.Client) error { return c.WatchJWTBundles(ctx, w) })
}

type firstJWTWatcher struct {
	*JWTBundles
	first *firstSignal
}

func (w *firstJWTWatcher) OnJWTBundlesUpdate(set *jwtbundle.Set) {
	w.JWTBundles.OnJWTBundlesUpdate(set)
	w.first.fire()
}
