package cli

import (
	"flag"
	"fmt"
	"io"

	"github.com/svidgate/svidgate/internal/config"
	"github.com/svidgate/svidgate/internal/gateway"
	"github.com/svidgate/svidgate/internal/telemetry"
)

// validate provisions the gateway exactly as run does (config, policies,
// certificate and key files, password files, the audit directory) and
// stops there: no Workload API, no socket, nothing written.
func validate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	file := fs.String("config", "", "gateway config `file` (gateway.toml)")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if *file == "" {
		fmt.Fprintln(stderr, "svidgate validate: -config is required")
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log, err := telemetry.NewLogger(io.Discard, cfg.Log.Format, cfg.Log.Level)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	g, err := gateway.Provision(cfg, log, version())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "ok: %s: %d listener(s)\n", cfg.File, len(cfg.Listeners))
	for _, l := range cfg.Listeners {
		if p := g.Policy(l.Name); p != nil {
			fmt.Fprintf(stdout, "ok: %s: %d rule(s), sha256 %s (listener %q)\n", l.Policy, p.Rules(), p.SHA256(), l.Name)
		}
	}
	return 0
}
