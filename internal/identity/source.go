package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// Source holds the current X509-SVID and bundle set. It implements
// x509svid.Source and x509bundle.Source, so go-spiffe's tlsconfig reads it on
// every handshake. Its zero value holds nothing; Set or Watch fills it.
type Source struct {
	mu      sync.RWMutex
	svid    *x509svid.SVID
	bundles *x509bundle.Set
	updated time.Time
	// notAfter is the current SVID's NotAfter (nil: none), readable per
	// request without the lock; Set writes it with svid.
	notAfter atomic.Pointer[time.Time]

	// OnUpdate, when set before the first update, is called after each one.
	OnUpdate func(Snapshot)
	// Log receives rotation and Workload API error lines; nil discards them.
	Log *slog.Logger
}

// Snapshot describes the identity held at one moment, for status pages.
type Snapshot struct {
	SPIFFEID     string
	Serial       string
	NotBefore    time.Time
	NotAfter     time.Time
	TrustDomains []string
	Updated      time.Time
}

// Set replaces the SVID and bundles at once. The SVID's chain is kept as
// delivered; the first certificate is the leaf.
func (s *Source) Set(svid *x509svid.SVID, bundles *x509bundle.Set) {
	s.mu.Lock()
	s.svid, s.bundles, s.updated = svid, bundles, time.Now()
	if svid != nil && len(svid.Certificates) > 0 {
		na := svid.Certificates[0].NotAfter
		s.notAfter.Store(&na)
	} else {
		s.notAfter.Store(nil)
	}
	s.mu.Unlock()
	if s.OnUpdate != nil {
		s.OnUpdate(s.Snapshot())
	}
}

// GetX509SVID returns the current SVID. Past its NotAfter it returns an
// error instead, so that no handshake, as server or as client, completes
// with an expired SVID of ours while no fresh one has arrived: svidgate
// fails closed and serves again as soon as the Workload API delivers one.
func (s *Source) GetX509SVID() (*x509svid.SVID, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.svid == nil || len(s.svid.Certificates) == 0 {
		return nil, errors.New("identity: no X509-SVID received from the Workload API yet")
	}
	if na := s.svid.Certificates[0].NotAfter; time.Now().After(na) {
		return nil, fmt.Errorf("identity: our X509-SVID expired at %s and no fresh one has arrived (is the SPIRE agent running, and does our registration entry still exist?)", na.UTC().Format(time.RFC3339))
	}
	return s.svid, nil
}

// Expired reports whether our SVID is past its NotAfter at now (false
// before the first SVID: nothing is served then anyway). Cheap enough for
// every request.
func (s *Source) Expired(now time.Time) bool {
	na := s.notAfter.Load()
	return na != nil && now.After(*na)
}

// GetX509BundleForTrustDomain returns the bundle of td, if the Workload API
// delivered one.
func (s *Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.bundles == nil {
		return nil, errors.New("identity: no trust bundle received from the Workload API yet")
	}
	return s.bundles.GetX509BundleForTrustDomain(td)
}

// ID returns our SPIFFE ID, or the zero ID before the first update.
func (s *Source) ID() spiffeid.ID {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.svid == nil {
		return spiffeid.ID{}
	}
	return s.svid.ID
}

// Snapshot returns a copy of what the source holds now.
func (s *Source) Snapshot() Snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var snap Snapshot
	snap.Updated = s.updated
	if s.svid != nil && len(s.svid.Certificates) > 0 {
		leaf := s.svid.Certificates[0]
		snap.SPIFFEID = s.svid.ID.String()
		snap.Serial = leaf.SerialNumber.Text(16)
		snap.NotBefore, snap.NotAfter = leaf.NotBefore, leaf.NotAfter
	}
	if s.bundles != nil {
		for _, b := range s.bundles.Bundles() {
			snap.TrustDomains = append(snap.TrustDomains, b.TrustDomain().Name())
		}
		slices.Sort(snap.TrustDomains)
	}
	return snap
}

// Ready reports whether the SVID is valid now and not about to expire. The
// margin is capped at a quarter of the SVID's lifetime: SPIRE rotates at half
// of it, so an SVID inside the margin means rotation is overdue.
func (s *Source) Ready(now time.Time, margin time.Duration) (bool, string) {
	snap := s.Snapshot()
	if snap.SPIFFEID == "" {
		return false, "no X509-SVID yet"
	}
	if now.Before(snap.NotBefore) {
		return false, "X509-SVID not valid yet"
	}
	if !now.Before(snap.NotAfter) {
		return false, "X509-SVID expired at " + snap.NotAfter.UTC().Format(time.RFC3339)
	}
	if quarter := snap.NotAfter.Sub(snap.NotBefore) / 4; margin > quarter {
		margin = quarter
	}
	if snap.NotAfter.Sub(now) < margin {
		return false, "X509-SVID expires at " + snap.NotAfter.UTC().Format(time.RFC3339) + " and no fresh one has arrived"
	}
	return true, ""
}

// OnX509ContextUpdate implements workloadapi.X509ContextWatcher.
func (s *Source) OnX509ContextUpdate(c *workloadapi.X509Context) {
	svid := c.DefaultSVID()
	if svid == nil {
		s.logger().Error("Workload API update carried no X509-SVID; keeping the current one")
		return
	}
	s.Set(svid, c.Bundles)
	s.logger().Info("X509-SVID updated", "spiffe_id", svid.ID.String(),
		"serial", svid.Certificates[0].SerialNumber.Text(16),
		"not_after", svid.Certificates[0].NotAfter.UTC().Format(time.RFC3339),
		"trust_domains", c.Bundles.Len())
}

// OnX509ContextWatchError implements workloadapi.X509ContextWatcher. The
// client retries by itself; the current SVID stays in use while valid.
func (s *Source) OnX509ContextWatchError(err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	s.logger().Warn("Workload API watch failed; retrying and keeping the current X509-SVID", "error", err.Error())
}

func (s *Source) logger() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// Watch connects to the Workload API at addr (empty: $SPIFFE_ENDPOINT_SOCKET)
// and keeps the source updated until ctx ends. It returns once the first
// SVID has arrived, or an error after timeout that says what to check.
func (s *Source) Watch(ctx context.Context, addr string, timeout time.Duration) error {
	w := &firstWatcher{Source: s, first: newFirstSignal()}
	return watchUntilFirst(ctx, addr, timeout, w.first, "the first X509-SVID",
		"is the SPIRE agent running and reachable at that socket, and is there a registration entry whose selectors match this process?",
		func(ctx context.Context, c *workloadapi.Client) error { return c.WatchX509Context(ctx, w) })
}

type firstWatcher struct {
	*Source
	first *firstSignal
}

func (w *firstWatcher) OnX509ContextUpdate(c *workloadapi.X509Context) {
	w.Source.OnX509ContextUpdate(c)
	if c.DefaultSVID() != nil {
		w.first.fire()
	}
}

// PeerID returns the SPIFFE ID of a verified peer certificate chain.
func PeerID(chain []*x509.Certificate) (spiffeid.ID, error) {
	if len(chain) == 0 {
		return spiffeid.ID{}, errors.New("identity: peer presented no certificate")
	}
	return x509svid.IDFromCert(chain[0])
}
