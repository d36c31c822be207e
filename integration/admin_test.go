package integration

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	g := env.gateway(t, "gw-client")
	c := &http.Client{Timeout: 5 * time.Second}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, err := getJSON(c, g.adminURL(path), nil); err != nil || code != http.StatusOK {
			t.Errorf("GET %s: %d %v, want 200", path, code, err)
		}
	}

	resp, err := c.Get(g.adminURL("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(body.String(), "\nsvidgate_") {
		t.Errorf("GET /metrics: %d, want 200 with svidgate_ metrics; got %.300q", resp.StatusCode, body.String())
	}

	st, err := g.status()
	if err != nil {
		t.Fatal(err)
	}
	if exp, err := time.Parse(time.RFC3339, st.SVIDExpiresAt); err != nil || !exp.After(time.Now()) {
		t.Errorf("svid_expires_at %q: want an RFC 3339 time in the future (%v)", st.SVIDExpiresAt, err)
	}
	if !slices.Contains(st.TrustDomains, td.Name()) {
		t.Errorf("trust_domains %q, want it to hold %q", st.TrustDomains, td.Name())
	}
	var names []string
	for _, l := range st.Listeners {
		names = append(names, l.Name)
		if l.Mode != "outbound" || l.Address != g.addr(l.Name) {
			t.Errorf("listener %s: mode %q address %q, want outbound %s", l.Name, l.Mode, l.Address, g.addr(l.Name))
		}
	}
	if want := []string{"to-http", "to-grpc", "to-wrong"}; !slices.Equal(names, want) {
		t.Errorf("listeners %q, want %q", names, want)
	}
}

func TestValidateCommand(t *testing.T) {
	t.Parallel()
	g := env.gateway(t, "gw-http")
	validate := func(config string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, env.svidgate, "validate", "-config", config).CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, string(out)
		case errors.As(err, &ee):
			return ee.ExitCode(), string(out)
		default:
			t.Fatalf("svidgate validate: %v", err)
			return -1, ""
		}
	}
	if code, out := validate(g.config); code != 0 {
		t.Errorf("validate %s: exit %d, want 0:\n%s", g.config, code, indent(out))
	}

	// The same config next to a broken policy.
	dir := t.TempDir()
	cfg, err := os.ReadFile(g.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gateway.toml"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policy.toml"), []byte("version = 1\n\n[[rule]]\nid = \"x\"\neffect = \"permit\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := validate(filepath.Join(dir, "gateway.toml"))
	if code != 1 || !strings.Contains(out, "policy.toml") {
		t.Errorf("validate with a broken policy: exit %d, want 1 and a message naming policy.toml:\n%s", code, indent(out))
	}
}
