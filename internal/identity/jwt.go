package identity

import (
	"context"
	"errors"
	"fmt"
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
	client, err := dialWorkloadAPI(ctx, addr)
	if err != nil {
		return err
	}
	first := make(chan struct{})
	w := &firstJWTWatcher{JWTBundles: b, first: first}
	watchCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer client.Close()
		// WatchJWTBundles retries with backoff until ctx ends.
		_ = client.WatchJWTBundles(watchCtx, w)
	}()
	// On failure the watch is stopped before returning, so that nothing
	// logs or updates the bundles afterwards.
	stop := func() { cancel(); <-done }
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-first:
		return nil
	case <-timer.C:
		stop()
		return fmt.Errorf("identity: timed out after %s waiting for the first JWT bundles from the Workload API at %s (is the SPIRE agent running and reachable at that socket?)", timeout, socketDesc(addr))
	case <-ctx.Done():
		stop()
		return ctx.Err()
	}
}

type firstJWTWatcher struct {
	*JWTBundles
	once  sync.Once
	first chan struct{}
}

func (w *firstJWTWatcher) OnJWTBundlesUpdate(set *jwtbundle.Set) {
	w.JWTBundles.OnJWTBundlesUpdate(set)
	w.once.Do(func() { close(w.first) })
}

func dialWorkloadAPI(ctx context.Context, addr string) (*workloadapi.Client, error) {
	var opts []workloadapi.ClientOption
	if addr != "" {
		opts = append(opts, workloadapi.WithAddr(addr))
	}
	client, err := workloadapi.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("identity: Workload API client for %q: %w (set identity.socket or SPIFFE_ENDPOINT_SOCKET to unix:///path/to/agent.sock)", addr, err)
	}
	return client, nil
}

func socketDesc(addr string) string {
	if addr == "" {
		return "$SPIFFE_ENDPOINT_SOCKET"
	}
	return addr
}
