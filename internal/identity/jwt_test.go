package identity

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"

	"github.com/svidgate/svidgate/internal/fakeworkload"
	"github.com/svidgate/svidgate/internal/jwtauth"
)

var (
	exampleTD = spiffeid.RequireTrustDomainFromString("example.org")
	otherTD   = spiffeid.RequireTrustDomainFromString("other.org")
	webID     = spiffeid.RequireFromString("spiffe://example.org/web")
	partnerID = spiffeid.RequireFromString("spiffe://other.org/partner")
)

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestJWTBundlesWatchFlushesValidator(t *testing.T) {
	srv := fakeworkload.New(t)
	ours := fakeworkload.NewAuthority(t, "example.org", "a1", jose.ES256)
	next := fakeworkload.NewAuthority(t, "example.org", "a2", jose.RS256)
	partner := fakeworkload.NewAuthority(t, "other.org", "p1", jose.ES256)
	srv.SetJWTBundles(fakeworkload.Bundle(exampleTD, ours), fakeworkload.Bundle(otherTD, partner))

	bundles := &JWTBundles{}
	v, err := jwtauth.NewValidator(bundles, jwtauth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	updates := make(chan JWTBundlesSnapshot, 10)
	bundles.OnUpdate = func(s JWTBundlesSnapshot) {
		if s.Changed {
			v.Flush()
		}
		updates <- s
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := bundles.Watch(ctx, srv.Addr, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if s := <-updates; !s.Changed || strings.Join(s.TrustDomains, ",") != "example.org,other.org" || s.Keys != 2 {
		t.Fatalf("first update %+v", s)
	}

	tok := ours.Mint(t, webID, []string{"orders"}, time.Minute)
	fed := partner.Mint(t, partnerID, []string{"orders"}, time.Minute)
	for _, tk := range []string{tok, fed, tok} { // the second tok is a cache hit
		if c, err := v.Validate(tk); err != nil || !c.HasAudience("orders") {
			t.Fatalf("Validate: %v", err)
		}
	}

	// The agent re-sends the same set: nothing changed.
	srv.SetJWTBundles(fakeworkload.Bundle(exampleTD, ours), fakeworkload.Bundle(otherTD, partner))
	if s := <-updates; s.Changed {
		t.Errorf("unchanged set reported as changed: %+v", s)
	}

	// Key rotation: a1 is gone. The cached token must stop validating.
	srv.SetJWTBundles(fakeworkload.Bundle(exampleTD, next), fakeworkload.Bundle(otherTD, partner))
	if s := <-updates; !s.Changed {
		t.Fatalf("rotation not reported as a change: %+v", s)
	}
	if _, err := v.Validate(tok); !errors.Is(err, jwtauth.ErrUnknownKeyID) {
		t.Fatalf("token of a removed key: %v, want unknown kid", err)
	}
	if _, err := v.Validate(next.Mint(t, webID, []string{"orders"}, time.Minute)); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}

	// Federation ends: other.org's bundle is dropped.
	srv.SetJWTBundles(fakeworkload.Bundle(exampleTD, next))
	<-updates
	if _, err := v.Validate(fed); !errors.Is(err, jwtauth.ErrNoBundle) {
		t.Fatalf("token of a trust domain no longer federated: %v, want no bundle", err)
	}
}

func TestJWTBundlesWatchTimeout(t *testing.T) {
	srv := fakeworkload.New(t) // serves no bundles
	b := &JWTBundles{}
	err := b.Watch(context.Background(), srv.Addr, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "timed out") || !strings.Contains(err.Error(), srv.Addr) {
		t.Fatalf("Watch = %v, want a timeout naming the socket", err)
	}
	if _, err := b.GetJWTBundleForTrustDomain(exampleTD); err == nil {
		t.Error("bundle returned before any update")
	}
}

func TestJWTSVIDsRefresh(t *testing.T) {
	srv := fakeworkload.New(t)
	auth := fakeworkload.NewAuthority(t, "example.org", "a1", jose.ES256)
	srv.SetJWTSVIDIssuer(auth, webID, 4*time.Second)
	var logs bytes.Buffer
	j, err := DialJWTSVIDs(context.Background(), srv.Addr, JWTSVIDOptions{
		Log: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	ctx := context.Background()

	first, err := j.Get(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	// The token is what a peer's validator accepts, for that audience.
	v, err := jwtauth.NewValidator(fakeworkload.Bundle(exampleTD, auth), jwtauth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := v.Validate(first); err != nil || !c.HasAudience("orders") || c.Subject != webID.String() {
		t.Fatalf("fetched token: %v", err)
	}
	if again, _ := j.Get(ctx, "orders"); again != first || srv.JWTSVIDFetches() != 1 {
		t.Fatalf("second Get fetched again (%d fetches)", srv.JWTSVIDFetches())
	}
	if other, _ := j.Get(ctx, "billing"); other == first || srv.JWTSVIDFetches() != 2 {
		t.Fatal("another audience got the same token")
	}

	// Past half the lifetime: Get still answers at once with the current
	// token, and refreshes in the background.
	refreshAt, usableUntil := entryTimes(j, "orders")
	time.Sleep(time.Until(refreshAt.Add(50 * time.Millisecond)))
	if time.Until(usableUntil) < 200*time.Millisecond {
		t.Fatalf("refresh point %s too close to the end of use %s", refreshAt, usableUntil)
	}
	if tok, err := j.Get(ctx, "orders"); err != nil || tok != first {
		t.Fatalf("Get past the refresh point = %v; want the current token at once", err)
	}
	waitFor(t, 3*time.Second, "the background refresh", func() bool { return srv.JWTSVIDFetches() == 3 })
	waitFor(t, time.Second, "the refreshed token", func() bool {
		tok, err := j.Get(ctx, "orders")
		return err == nil && tok != first
	})
	if strings.Contains(logs.String(), first) || !strings.Contains(logs.String(), "JWT-SVID fetched") {
		t.Errorf("logs hold a token or miss the fetches:\n%s", logs.String())
	}
}

func TestJWTSVIDsAgentOutage(t *testing.T) {
	srv := fakeworkload.New(t)
	auth := fakeworkload.NewAuthority(t, "example.org", "a1", jose.ES256)
	const ttl = 3 * time.Second
	srv.SetJWTSVIDIssuer(auth, webID, ttl)
	var logs bytes.Buffer
	j, err := DialJWTSVIDs(context.Background(), srv.Addr, JWTSVIDOptions{
		Log: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	ctx := context.Background()
	tok, err := j.Get(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	refreshAt, usableUntil := entryTimes(j, "orders")
	if time.Until(usableUntil) > ttl {
		t.Fatalf("token served until %s, beyond its lifetime", usableUntil)
	}

	srv.Stop()
	// Past the refresh point, the agent down: the current token is still
	// served, every time, and the failed refresh is logged.
	time.Sleep(time.Until(refreshAt.Add(50 * time.Millisecond)))
	for range 3 {
		if got, err := j.Get(ctx, "orders"); err != nil || got != tok {
			t.Fatalf("Get during the outage = %v; want the still valid token", err)
		}
	}
	waitFor(t, 2*time.Second, "the failed refresh to be logged", func() bool {
		j.mu.Lock()
		defer j.mu.Unlock()
		return j.entries["orders"].lastErr != nil
	})

	// Past exp minus the margin: a clean error, no token.
	time.Sleep(time.Until(usableUntil.Add(50 * time.Millisecond)))
	got, err := j.Get(ctx, "orders")
	if err == nil || got != "" {
		t.Fatalf("Get after the token ran out = %q, %v; want an error", got, err)
	}
	if !strings.Contains(err.Error(), `audience "orders"`) || !strings.Contains(err.Error(), "expired") || strings.Contains(err.Error(), tok) {
		t.Errorf("error %q: want the audience and the expiry, never the token", err)
	}
	if strings.Contains(logs.String(), tok) || !strings.Contains(logs.String(), "refresh failed") {
		t.Errorf("logs hold the token or miss the failed refresh:\n%s", logs.String())
	}

	// The agent comes back: Get recovers once the retry backoff and the
	// gRPC reconnect allow.
	srv.Start()
	waitFor(t, 20*time.Second, "a token after the agent returned", func() bool {
		got, err := j.Get(ctx, "orders")
		return err == nil && got != tok
	})
}

// entryTimes returns when the held token for aud is due for refresh and
// when it stops being served. NumericDates are whole seconds, so these are
// read back rather than computed from the time of the fetch.
func entryTimes(j *JWTSVIDs, aud string) (refreshAt, usableUntil time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e := j.entries[aud]
	return e.refreshAt, e.usableUntil
}

// fetcherFunc is a JWTSVIDFetcher for tests that need no gRPC.
type fetcherFunc func(context.Context, jwtsvid.Params) (*jwtsvid.SVID, error)

func (f fetcherFunc) FetchJWTSVID(ctx context.Context, p jwtsvid.Params) (*jwtsvid.SVID, error) {
	return f(ctx, p)
}

func TestJWTSVIDsSingleFlightAndBackoff(t *testing.T) {
	auth := fakeworkload.NewAuthority(t, "example.org", "a1", jose.ES256)
	var calls atomic.Int64
	var fail atomic.Bool
	release := make(chan struct{})
	j := NewJWTSVIDs(fetcherFunc(func(ctx context.Context, p jwtsvid.Params) (*jwtsvid.SVID, error) {
		if p.Audience == "slow" {
			<-ctx.Done() // until Close
			return nil, ctx.Err()
		}
		calls.Add(1)
		<-release
		if fail.Load() {
			return nil, errors.New("rpc error: code = PermissionDenied desc = no identity issued")
		}
		return jwtsvid.ParseInsecure(auth.Mint(t, webID, []string{p.Audience}, time.Minute), []string{p.Audience})
	}), JWTSVIDOptions{})
	defer j.Close()

	var wg sync.WaitGroup
	toks := make([]string, 8)
	for i := range toks {
		wg.Go(func() {
			var err error
			if toks[i], err = j.Get(context.Background(), "orders"); err != nil {
				t.Error(err)
			}
		})
	}
	waitFor(t, 2*time.Second, "the first fetch", func() bool { return calls.Load() == 1 })
	close(release)
	wg.Wait()
	for _, tk := range toks {
		if tk != toks[0] || tk == "" {
			t.Fatal("concurrent first Gets got different tokens")
		}
	}
	if calls.Load() != 1 {
		t.Errorf("%d fetches for concurrent first Gets, want 1", calls.Load())
	}

	fail.Store(true)
	_, err := j.Get(context.Background(), "billing")
	if err == nil || !strings.Contains(err.Error(), "registration entry") || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Fatalf("Get without an identity = %v", err)
	}
	before := calls.Load()
	if _, err := j.Get(context.Background(), "billing"); err == nil || calls.Load() != before {
		t.Errorf("a Get within the backoff called the agent again (%v)", err)
	}

	if _, err := j.Get(context.Background(), ""); err == nil {
		t.Error("empty audience accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := j.Get(ctx, "slow"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context = %v", err)
	}
	j.Close()
	if _, err := j.Get(context.Background(), "orders"); err == nil {
		t.Error("Get after Close succeeded")
	}
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %s, want %s", i+1, got, w)
		}
	}
}
