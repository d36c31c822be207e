package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
)

// Serve serves every listener and the admin listener until ctx ends (nil)
// or one of them fails (its error). Stop drains them.
func (g *Gateway) Serve(ctx context.Context) error {
	errc := make(chan error, len(g.listeners)+1)
	for _, b := range g.listeners {
		go func() {
			if err := b.l.Serve(b.ln); err != nil {
				errc <- fmt.Errorf("listener %q: %w", b.l.Status().Name, err)
			}
		}()
	}
	go func() {
		if err := g.adminSrv.Serve(g.adminLn); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("admin listener: %w", err)
		}
	}()
	g.log.Info("svidgate serving", "listeners", len(g.listeners), "admin", g.adminLn.Addr().String())
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

// Stop undoes Start, whatever part of it ran: it stops accepting, drains
// requests in flight up to shutdown_timeout and closes what is left, then
// closes the rate-limit backend and the JWT-SVID client, flushes and closes
// the audit trail, and last ends the Workload API watch, so that a long
// drain still sees rotations.
func (g *Gateway) Stop() {
	g.drain()
	if g.tokens != nil {
		g.tokens.Close()
	}
	g.closeLimiter()
	if g.audit != nil {
		if err := g.audit.Close(); err != nil {
			g.log.Error("closing the audit trail failed", "error", err.Error())
		}
	}
	if g.stopWatch != nil {
		g.stopWatch()
	}
}

// drain shuts every listener down within shutdown_timeout and closes the
// connections still open then. A listener bound but never served has only
// its socket to close.
func (g *Gateway) drain() {
	timeout := g.cfg.ShutdownTimeout
	g.log.Info("shutting down", "drain_timeout", timeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), timeout.Duration)
	defer cancel()
	var wg sync.WaitGroup
	for _, b := range g.listeners {
		wg.Go(func() {
			_ = b.ln.Close()
			if err := b.l.Shutdown(ctx); err != nil {
				g.log.Warn("drain deadline passed; closing connections", "listener", b.l.Status().Name)
				_ = b.l.Close()
			}
		})
	}
	wg.Wait()
	if g.adminSrv != nil {
		_ = g.adminLn.Close()
		_ = g.adminSrv.Shutdown(ctx)
	}
}
