package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAdminEndpoints(t *testing.T) {
	tp := env.topology(t, "mesh")
	t.Parallel()
	g := tp.gateway(t, "gw-client")
	c := &http.Client{Timeout: 5 * time.Second}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, err := getJSON(c, g.adminURL(path), nil); err != nil || code != http.StatusOK {
			t.Errorf("GET %s: %d %v, want 200", path, code, err)
		}
	}

	// /metrics: the identity's series, which a gateway exports from its
	// first SVID on.
	if n := metric(t, g, "svidgate_workload_api_updates_total"); n < 1 {
		t.Errorf("svidgate_workload_api_updates_total = %v, want at least 1 (the gateway holds an SVID)", n)
	}
	if exp := metric(t, g, "svidgate_svid_expiration_timestamp_seconds"); exp < float64(time.Now().Unix()) {
		t.Errorf("svidgate_svid_expiration_timestamp_seconds = %v, want a time in the future", exp)
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

// TestValidateCommand runs `svidgate validate` on a gateway's config (it
// needs no running gateway): 0 for a good one, 1 naming the file of a
// broken policy beside it.
func TestValidateCommand(t *testing.T) {
	t.Parallel()
	g, err := inboundGateway(env, "validate", "http://"+env.httpecho, httpPolicy)
	if err == nil {
		err = env.prepare(g, "30s")
	}
	if err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runSvidgate(t, "validate", "-config", g.config); code != 0 {
		t.Errorf("validate %s: exit %d, want 0:\n%s%s", g.config, code, indent(out), indent(errOut))
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
	code, out, errOut := runSvidgate(t, "validate", "-config", filepath.Join(dir, "gateway.toml"))
	if code != 1 || !strings.Contains(out+errOut, "policy.toml") {
		t.Errorf("validate with a broken policy: exit %d, want 1 and a message naming policy.toml:\n%s%s", code, indent(out), indent(errOut))
	}
}
