package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validate performs every check run performs before it needs the network,
// at file:line:col, and never needs a Workload API endpoint.
func TestValidateProvisions(t *testing.T) {
	t.Setenv("SPIFFE_ENDPOINT_SOCKET", "")
	const base = `
[audit]
path = "audit.jsonl"
`
	edge := `
[[listener]]
name = "edge"
mode = "edge"
address = "127.0.0.1:0"
upstream = "http://127.0.0.1:8080"
policy = "policy.toml"
jwt_audience = "spiffe://example.org/edge"
tls_cert_file = "edge.crt"
tls_key_file = "edge.key"
`
	redis := `
[ratelimit]
backend = "redis"
[ratelimit.redis]
address = "127.0.0.1:6379"
password_file = "redis.pass"
`
	inbound := strings.Replace(testConfig, "[identity]\nsocket = \"unix:///nonexistent/agent.sock\"\ninitial_timeout = \"1s\"\n", "", 1)
	for _, tt := range []struct {
		name, config, want string
		setup              func(dir string)
	}{
		{"no socket needed", inbound, "", nil},
		{"missing key file", base + edge, `gateway.toml:12:18: listener "edge": loading tls_cert_file and tls_key_file: open `, nil},
		{"unreadable password file", inbound + redis, "gateway.toml:17:18: ratelimit.redis.password_file: read ",
			// A directory cannot be read as a file, even by root.
			func(dir string) { _ = os.Mkdir(filepath.Join(dir, "redis.pass"), 0o700) }},
		{"missing audit directory", strings.Replace(inbound, `"audit.jsonl"`, `"no/such/dir/audit.jsonl"`, 1),
			`gateway.toml:4:9: audit.path "`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "gateway.toml")
			for name, text := range map[string]string{"gateway.toml": tt.config, "policy.toml": testPolicy} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tt.setup != nil {
				tt.setup(dir)
			}
			code, out, errs := run("validate", "-config", cfg)
			if tt.want == "" {
				if code != 0 {
					t.Fatalf("exit %d, want 0; stderr: %s", code, errs)
				}
				return
			}
			if code != 1 || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q (stdout %q)", code, errs, tt.want, out)
			}
		})
	}
}
