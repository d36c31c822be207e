package identity

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// firstSignal is closed by a watcher on its first useful update.
type firstSignal struct {
	once sync.Once
	ch   chan struct{}
}

func newFirstSignal() *firstSignal { return &firstSignal{ch: make(chan struct{})} }

func (f *firstSignal) fire() { f.once.Do(func() { close(f.ch) }) }

// watchUntilFirst connects to the Workload API at addr (empty:
// $SPIFFE_ENDPOINT_SOCKET) and runs watch on it until ctx ends; the client
// retries with backoff by itself. It returns once first fires, or, after
// timeout, an error naming what was awaited (what) and what to check
// (hint). On failure the watch is stopped before returning, so that nothing
// logs or updates afterwards.
func watchUntilFirst(ctx context.Context, addr string, timeout time.Duration, first *firstSignal,
	what, hint string, watch func(context.Context, *workloadapi.Client) error) error {
	client, err := dialWorkloadAPI(ctx, addr)
	if err != nil {
		return err
	}
	watchCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer client.Close()
		_ = watch(watchCtx, client)
	}()
	stop := func() { cancel(); <-done }
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-first.ch:
		return nil // the watch goes on until ctx ends
	case <-timer.C:
		stop()
		return fmt.Errorf("identity: timed out after %s waiting for %s from the Workload API at %s (%s)", timeout, what, socketDesc(addr), hint)
	case <-ctx.Done():
		stop()
		return ctx.Err()
	}
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
