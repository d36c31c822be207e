package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
)

// JWTSVIDFetcher is the part of workloadapi.Client that JWTSVIDs uses.
type JWTSVIDFetcher interface {
	FetchJWTSVID(ctx context.Context, params jwtsvid.Params) (*jwtsvid.SVID, error)
}

// JWTSVIDOptions configure JWTSVIDs. The zero value gives the defaults.
type JWTSVIDOptions struct {
	// Subject selects one of our identities; the zero ID lets the agent
	// pick the default one.
	Subject spiffeid.ID
	// ExpiryMargin is how long before its exp a token stops being handed
	// out, so that it is still valid when the upstream checks it. 0 means
	// 5 s; it is capped at a tenth of the token's lifetime.
	ExpiryMargin time.Duration
	// FetchTimeout bounds one call to the Workload API; 0 means 10 s.
	FetchTimeout time.Duration
	// Log receives refresh failures (never a token); nil discards them.
	Log *slog.Logger
}

// JWTSVIDs hands out our JWT-SVIDs for egress, one per audience, from the
// Workload API. A token is fetched on first use and kept; once half its
// lifetime has passed, the next Get triggers a refresh in the background
// and still returns the current token. When the agent is unreachable, the
// current token keeps being served until ExpiryMargin before its exp;
// after that Get fails, naming the last Workload API error. Failed
// fetches are retried with backoff (1 s doubling to 30 s), so an outage
// does not turn every request into a call to the agent.
//
// Audiences come from configuration; each one used holds one entry.
type JWTSVIDs struct {
	fetcher JWTSVIDFetcher
	closer  func() error
	opts    JWTSVIDOptions
	now     func() time.Time

	ctx    context.Context // background fetches; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	entries map[string]*jwtEntry
	closed  bool
}

type jwtEntry struct {
	token       string
	expiry      time.Time
	refreshAt   time.Time // half the lifetime
	usableUntil time.Time // expiry minus the margin

	fetching chan struct{} // non-nil while a fetch runs; closed when it ends
	lastErr  error
	failures int
	retryAt  time.Time
}

const (
	defaultJWTExpiryMargin = 5 * time.Second
	defaultJWTFetchTimeout = 10 * time.Second
	jwtRetryMin            = time.Second
	jwtRetryMax            = 30 * time.Second
)

// NewJWTSVIDs returns JWTSVIDs over f (a *workloadapi.Client, or a fake).
func NewJWTSVIDs(f JWTSVIDFetcher, opts JWTSVIDOptions) *JWTSVIDs {
	if opts.ExpiryMargin <= 0 {
		opts.ExpiryMargin = defaultJWTExpiryMargin
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = defaultJWTFetchTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &JWTSVIDs{
		fetcher: f,
		opts:    opts,
		now:     time.Now,
		ctx:     ctx,
		cancel:  cancel,
		entries: make(map[string]*jwtEntry),
	}
}

// DialJWTSVIDs connects to the Workload API at addr (empty:
// $SPIFFE_ENDPOINT_SOCKET). The connection is made lazily; Close closes
// it.
func DialJWTSVIDs(ctx context.Context, addr string, opts JWTSVIDOptions) (*JWTSVIDs, error) {
	client, err := dialWorkloadAPI(ctx, addr)
	if err != nil {
		return nil, err
	}
	j := NewJWTSVIDs(client, opts)
	j.closer = client.Close
	return j, nil
}

// Close stops background refreshes and, for DialJWTSVIDs, closes the
// Workload API connection. Get fails afterwards.
func (j *JWTSVIDs) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	j.mu.Unlock()
	j.cancel()
	j.wg.Wait()
	if j.closer != nil {
		return j.closer()
	}
	return nil
}

var errJWTSVIDsClosed = errors.New("identity: JWT-SVID source is closed")

// Get returns a JWT-SVID for audience. It blocks only when no usable token
// is held: on first use, or after the held one ran out.
func (j *JWTSVIDs) Get(ctx context.Context, audience string) (string, error) {
	if audience == "" {
		return "", errors.New("identity: a JWT-SVID needs an audience")
	}
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return "", errJWTSVIDsClosed
	}
	now := j.now()
	e := j.entries[audience]
	if e == nil {
		e = &jwtEntry{}
		j.entries[audience] = e
	}
	if e.token != "" && now.Before(e.usableUntil) {
		tok := e.token
		if !now.Before(e.refreshAt) && !now.Before(e.retryAt) && e.fetching == nil {
			j.startFetch(audience, e)
		}
		j.mu.Unlock()
		return tok, nil
	}
	// Nothing usable. Fail fast while backing off from a failure.
	if e.fetching == nil && e.lastErr != nil && now.Before(e.retryAt) {
		err := j.unavailable(audience, e)
		j.mu.Unlock()
		return "", err
	}
	if e.fetching == nil {
		j.startFetch(audience, e)
	}
	wait := e.fetching
	j.mu.Unlock()

	select {
	case <-wait:
	case <-ctx.Done():
		return "", fmt.Errorf("identity: waiting for a JWT-SVID for audience %q: %w", audience, ctx.Err())
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if e.token != "" && j.now().Before(e.usableUntil) {
		return e.token, nil
	}
	return "", j.unavailable(audience, e)
}

func (j *JWTSVIDs) unavailable(audience string, e *jwtEntry) error {
	var last error = errJWTSVIDsClosed
	if e.lastErr != nil {
		last = e.lastErr
	}
	if e.token != "" {
		return fmt.Errorf("identity: no valid JWT-SVID for audience %q: the last one expired at %s and the Workload API failed: %w", audience, e.expiry.UTC().Format(time.RFC3339), last)
	}
	return fmt.Errorf("identity: no JWT-SVID for audience %q from the Workload API (is the SPIRE agent running, and does a registration entry match this process?): %w", audience, last)
}

// startFetch runs one fetch for e in the background; j.mu is held.
func (j *JWTSVIDs) startFetch(audience string, e *jwtEntry) {
	done := make(chan struct{})
	e.fetching = done
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		ctx, cancel := context.WithTimeout(j.ctx, j.opts.FetchTimeout)
		svid, err := j.fetcher.FetchJWTSVID(ctx, jwtsvid.Params{Audience: audience, Subject: j.opts.Subject})
		cancel()
		j.mu.Lock()
		defer j.mu.Unlock()
		defer close(done)
		e.fetching = nil
		now := j.now()
		if err == nil {
			err = j.accept(audience, e, svid, now)
		}
		if err != nil {
			e.lastErr = err
			e.failures++
			e.retryAt = now.Add(backoff(e.failures))
			if e.token != "" && now.Before(e.usableUntil) {
				j.logger().Warn("JWT-SVID refresh failed; serving the current one until it runs out",
					"audience", audience, "usable_until", e.usableUntil.UTC().Format(time.RFC3339), "error", err.Error())
			} else {
				j.logger().Error("JWT-SVID fetch failed", "audience", audience, "error", err.Error())
			}
			return
		}
		e.lastErr, e.failures, e.retryAt = nil, 0, time.Time{}
	}()
}

// accept checks a fetched SVID and stores it in e; j.mu is held.
func (j *JWTSVIDs) accept(audience string, e *jwtEntry, svid *jwtsvid.SVID, now time.Time) error {
	if !j.opts.Subject.IsZero() && svid.ID != j.opts.Subject {
		return fmt.Errorf("identity: Workload API returned a JWT-SVID for %q, want %q", svid.ID, j.opts.Subject)
	}
	issued := now
	if iat, ok := svid.Claims["iat"].(float64); ok {
		if t := time.Unix(int64(iat), 0); t.Before(now) {
			issued = t
		}
	}
	life := svid.Expiry.Sub(issued)
	margin := min(j.opts.ExpiryMargin, life/10)
	usable := svid.Expiry.Add(-margin)
	if !now.Before(usable) {
		return fmt.Errorf("identity: Workload API returned a JWT-SVID for audience %q that expires at %s, too soon to use", audience, svid.Expiry.UTC().Format(time.RFC3339))
	}
	e.token = svid.Marshal()
	e.expiry = svid.Expiry
	e.refreshAt = issued.Add(life / 2)
	e.usableUntil = usable
	j.logger().Debug("JWT-SVID fetched", "audience", audience, "spiffe_id", svid.ID.String(),
		"expires", svid.Expiry.UTC().Format(time.RFC3339))
	return nil
}

func backoff(failures int) time.Duration {
	d := jwtRetryMin
	for i := 1; i < failures && d < jwtRetryMax; i++ {
		d *= 2
	}
	return min(d, jwtRetryMax)
}

func (j *JWTSVIDs) logger() *slog.Logger {
	if j.opts.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return j.opts.Log
}
