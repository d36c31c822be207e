package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/svidgate/svidgate/internal/config"
	"github.com/svidgate/svidgate/policy"
)

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
	cfg, policies, err := loadAll(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "ok: %s: %d listener(s)\n", cfg.File, len(cfg.Listeners))
	for _, l := range cfg.Listeners {
		if p := policies[l.Name]; p != nil {
			fmt.Fprintf(stdout, "ok: %s: %d rule(s), sha256 %s (listener %q)\n", l.Policy, p.Rules(), p.SHA256(), l.Name)
		}
	}
	return 0
}

// loadAll loads the config and every policy it names, reporting every
// error it finds, not only the first.
func loadAll(file string) (*config.Config, map[string]*policy.Policy, error) {
	cfg, err := config.Load(file)
	if err != nil {
		return nil, nil, err
	}
	policies := map[string]*policy.Policy{}
	var errs []error
	for _, l := range cfg.Listeners {
		if l.Policy == "" {
			continue
		}
		p, err := policy.Load(l.Policy)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		policies[l.Name] = p
	}
	return cfg, policies, errors.Join(errs...)
}
