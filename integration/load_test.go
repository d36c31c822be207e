package integration

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// target is one kind of request of a load run; it returns nil on success.
type target struct {
	name string
	call func(ctx context.Context) error
}

// getEchoTarget GETs url with c and wants httpecho's 200 with exactly wantXFCC.
func getEchoTarget(name string, c *http.Client, url, wantXFCC string) target {
	return target{name: name, call: func(ctx context.Context) error {
		r, err := do(c, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if r.code != http.StatusOK || r.echo == nil {
			return fmt.Errorf("status %d: %.200q", r.code, r.body)
		}
		if len(r.echo.XFCC) != 1 || r.echo.XFCC[0] != wantXFCC {
			return fmt.Errorf("upstream saw XFCC %q, want %q", r.echo.XFCC, wantXFCC)
		}
		return nil
	}}
}

// load sends requests at a steady rate, round-robin over its targets, until stopped.
type load struct {
	ok     atomic.Int64
	failed atomic.Int64

	mu       sync.Mutex
	failures []string
	perKind  map[string]int

	cancel context.CancelFunc
	done   chan struct{}
}

func startLoad(rps int, targets ...target) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, done: make(chan struct{}), perKind: map[string]int{}}
	start := time.Now()
	go func() {
		defer close(l.done)
		var wg sync.WaitGroup
		defer wg.Wait()
		sem := make(chan struct{}, 64)
		tick := time.NewTicker(time.Second / time.Duration(rps))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			tg := targets[i%len(targets)]
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer rcancel()
				at := time.Since(start)
				if err := tg.call(rctx); err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					l.failures = append(l.failures, fmt.Sprintf("t=%5.1fs %s: %v", at.Seconds(), tg.name, err))
					l.mu.Unlock()
					return
				}
				l.ok.Add(1)
				l.mu.Lock()
				l.perKind[tg.name]++
				l.mu.Unlock()
			}()
		}
	}()
	return l
}

// stop ends the load and waits for requests in flight.
func (l *load) stop() {
	l.cancel()
	<-l.done
}

// check fails the test when any request failed or a target never succeeded.
func (l *load) check(t testing.TB, targets ...target) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	kinds := make([]string, 0, len(l.perKind))
	for k, n := range l.perKind {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	t.Logf("load: %d ok, %d failed (%s)", l.ok.Load(), l.failed.Load(), strings.Join(kinds, ", "))
	for _, tg := range targets {
		if l.perKind[tg.name] == 0 {
			t.Errorf("load: no successful %q request", tg.name)
		}
	}
	if n := len(l.failures); n > 0 {
		shown := l.failures
		if n > 20 {
			shown = shown[:20]
		}
		t.Errorf("load: %d requests failed, want 0; first ones:\n%s", n, indent(strings.Join(shown, "\n")))
	}
}

// serialWatch records the distinct svid_serial values gateways report.
type serialWatch struct {
	mu      sync.Mutex
	serials map[string][]string // gateway name → serials in order of appearance
	errs    map[string]string
	stopc   chan struct{}
	done    chan struct{}
}

func watchSerials(gws ...*gateway) *serialWatch {
	w := &serialWatch{serials: map[string][]string{}, errs: map[string]string{}, stopc: make(chan struct{}), done: make(chan struct{})}
	sample := func() {
		for _, g := range gws {
			st, err := g.status()
			w.mu.Lock()
			if err != nil {
				w.errs[g.name] = err.Error()
			} else if s := w.serials[g.name]; len(s) == 0 || s[len(s)-1] != st.SVIDSerial {
				w.serials[g.name] = append(s, st.SVIDSerial)
			}
			w.mu.Unlock()
		}
	}
	sample()
	go func() {
		defer close(w.done)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stopc:
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	return w
}

func (w *serialWatch) stop() {
	close(w.stopc)
	<-w.done
}

// changes returns how often the serial of gateway name changed.
func (w *serialWatch) changes(name string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.serials[name]); n > 0 {
		return n - 1
	}
	return 0
}

// seen returns the serials of name observed so far.
func (w *serialWatch) seen(name string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.serials[name]...)
}
