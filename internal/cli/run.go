package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/svidgate/svidgate/internal/config"
	"github.com/svidgate/svidgate/internal/gateway"
	"github.com/svidgate/svidgate/internal/telemetry"
)

func runGateway(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	file := fs.String("config", "", "gateway config `file` (gateway.toml)")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if *file == "" {
		fmt.Fprintln(stderr, "svidgate run: -config is required")
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log, err := telemetry.NewLogger(stderr, cfg.Log.Format, cfg.Log.Level)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	g, err := gateway.Provision(cfg, log, version())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, g); err != nil {
		// Plain text, not a log line: this is the answer to the operator
		// who started us.
		fmt.Fprintln(stderr, "svidgate:", err)
		return 1
	}
	return 0
}

// serve starts g, serves until a signal or a failure, then drains. SIGHUP
// reloads the policies and reopens the audit file while serving; it is
// caught from before Start until Stop has returned, so a SIGHUP during
// start-up or the drain (logrotate during a restart) is ignored instead of
// killing the process with requests in flight.
func serve(ctx context.Context, g *gateway.Gateway) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	defer g.Stop()
	if err := g.Start(ctx); err != nil {
		return err
	}
	serveCtx, cancel := context.WithCancel(ctx)
	reloads := make(chan struct{})
	go func() {
		defer close(reloads)
		for {
			select {
			case <-serveCtx.Done():
				return
			case <-hup:
				g.Reload()
			}
		}
	}()
	err := g.Serve(ctx)
	cancel()
	<-reloads // no reload runs once Stop begins
	return err
}
