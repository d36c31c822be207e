package gateway

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/svidgate/svidgate/internal/config"
)

func testConfig(t *testing.T, identity string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	pol := "version = 1\n[[rule]]\nid = \"a\"\neffect = \"allow\"\ncallers = [\"spiffe://example.org/web\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "policy.toml"), []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
	text := identity + `
[audit]
path = "audit.jsonl"
[[listener]]
name = "in"
mode = "inbound"
address = "127.0.0.1:0"
upstream = "http://127.0.0.1:8080"
policy = "policy.toml"
`
	cfg, err := config.Parse(filepath.Join(dir, "gateway.toml"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Provision loads the policy and opens nothing: no audit file appears.
func TestProvisionWritesNothing(t *testing.T) {
	cfg := testConfig(t, "")
	g, err := Provision(cfg, slog.New(slog.DiscardHandler), "test")
	if err != nil {
		t.Fatal(err)
	}
	if p := g.Policy("in"); p == nil || p.Rules() != 1 {
		t.Fatalf("policy of listener in: %v", p)
	}
	if _, err := os.Stat(cfg.Audit.Path); !os.IsNotExist(err) {
		t.Fatalf("Provision created the audit trail (stat: %v)", err)
	}
}

// Start fails closed, naming what to fix, and Stop undoes whatever part
// of Start ran.
func TestStartFailuresAreStoppable(t *testing.T) {
	t.Setenv("SPIFFE_ENDPOINT_SOCKET", "")
	for _, tt := range []struct{ name, identity, want string }{
		{"no endpoint", "", "no Workload API endpoint"},
		{"no agent", "[identity]\nsocket = \"unix:///nonexistent/agent.sock\"\ninitial_timeout = \"200ms\"\n", "registration entry"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g, err := Provision(testConfig(t, tt.identity), slog.New(slog.DiscardHandler), "test")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = g.Start(ctx)
			g.Stop()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
