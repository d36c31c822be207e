package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = `
shutdown_timeout = "5s"

[identity]
socket = "unix:///tmp/agent.sock"
initial_timeout = "10s"

[audit]
path = "audit.jsonl"

[[listener]]
name     = "in"
mode     = "inbound"
address  = "127.0.0.1:8443"
upstream = "http://127.0.0.1:8080"
policy   = "policy.toml"

[[listener]]
name     = "out"
mode     = "outbound"
address  = "127.0.0.1:15001"
upstream = "https://127.0.0.1:9443"
upstream_spiffe_id = "spiffe://example.org/orders"
`

func TestParseGood(t *testing.T) {
	c, err := Parse("/etc/svidgate/gateway.toml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.ShutdownTimeout.Duration != 5*time.Second || c.Identity.InitialTimeout.Duration != 10*time.Second {
		t.Errorf("durations: %v %v", c.ShutdownTimeout, c.Identity.InitialTimeout)
	}
	if c.Identity.RefreshMargin.Duration != DefaultRefreshMargin || c.Admin.Address != DefaultAdminAddress {
		t.Errorf("defaults not applied: %+v %+v", c.Identity, c.Admin)
	}
	if want := filepath.Join("/etc/svidgate", "policy.toml"); c.Listeners[0].Policy != want {
		t.Errorf("policy path %q, want %q (relative to the config file)", c.Listeners[0].Policy, want)
	}
	if c.Audit.Path != "/etc/svidgate/audit.jsonl" {
		t.Errorf("audit path %q", c.Audit.Path)
	}
	if got := c.Listeners[1].UpstreamSPIFFEID.String(); got != "spiffe://example.org/orders" {
		t.Errorf("upstream_spiffe_id %q", got)
	}
	if c.Listeners[0].Upstream.Scheme != "http" || c.Listeners[0].Upstream.Addr != "127.0.0.1:8080" {
		t.Errorf("upstream %+v", c.Listeners[0].Upstream)
	}
}

// Each case changes the good config and expects an error with a position.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		old  string // replaced in good; "" appends new
		new  string
		want string
	}{
		{"unknown top-level key", `shutdown_timeout = "5s"`, "shutdown_timeout = \"5s\"\nfoo = 1", "gw.toml:3:1: unknown key \"foo\""},
		{"unknown key in a listener", `policy   = "policy.toml"`, `policy   = "policy.toml"` + "\nupstrem = \"x\"", `gw.toml:17:1: unknown key "listener.upstrem"`},
		{"bad duration", `"5s"`, `"5 seconds"`, `gw.toml:2:21: expected a positive duration`},
		{"negative duration", `"10s"`, `"-1s"`, `gw.toml:6:20: expected a positive duration`},
		{"bad mode", `"inbound"`, `"sideways"`, `gw.toml:13:13: expected mode "inbound", "outbound" or "edge", got "sideways"`},
		{"malformed SPIFFE ID", `"spiffe://example.org/orders"`, `"spiffe://Example.org/orders"`, `gw.toml:23:23: expected a SPIFFE ID`},
		{"SPIFFE ID without path", `"spiffe://example.org/orders"`, `"spiffe://example.org"`, `expected a workload SPIFFE ID with a path`},
		{"upstream with path", `"http://127.0.0.1:8080"`, `"http://127.0.0.1:8080/api"`, `gw.toml:15:13: expected http://host:port`},
		{"upstream relative unix", `"http://127.0.0.1:8080"`, `"unix://app.sock"`, `three slashes`},
		{"wrong type", `name     = "in"`, `name     = 7`, `gw.toml:12:12: incompatible types`},
		{"outbound not loopback", `"127.0.0.1:15001"`, `"0.0.0.0:15001"`, `gw.toml:21:13: listener "out" address: "0.0.0.0:15001" is not a loopback address`},
		{"outbound without upstream id", `upstream_spiffe_id = "spiffe://example.org/orders"`, ``, `gw.toml:18:1: listener "out": upstream_spiffe_id is required`},
		{"inbound without policy", `policy   = "policy.toml"`, ``, `gw.toml:11:1: listener "in": an inbound listener needs a policy file`},
		{"inbound to https", `"http://127.0.0.1:8080"`, `"https://127.0.0.1:8080"`, `use http:// or unix://`},
		{"duplicate listener names", `name     = "out"`, `name     = "in"`, `gw.toml:19:13: listener name "in" is used twice`},
		{"admin not loopback", "", "\n[admin]\naddress = \"10.0.0.1:9901\"\n", `admin address: "10.0.0.1:9901" is not a loopback address`},
		{"no listeners", good[strings.Index(good, "[[listener]]"):], "", "gw.toml:1:1: no [[listener]] defined"},
		{"bad log level", "", "\n[log]\nlevel = \"loud\"\n", `log level "loud": expected debug, info, warn or error`},
		{"port out of range", `"127.0.0.1:8443"`, `"127.0.0.1:84430"`, `gw.toml:14:13: listener "in" address: "127.0.0.1:84430": expected host:port with a port from 0 to 65535`},
		{"port not a number", `"127.0.0.1:8443"`, `"127.0.0.1:https"`, `expected host:port with a port from 0 to 65535`},
		{"upstream port out of range", `"http://127.0.0.1:8080"`, `"http://127.0.0.1:70000"`, `gw.toml:15:13: expected http://host:port`},
		{"upstream port 0", `"http://127.0.0.1:8080"`, `"http://127.0.0.1:0"`, `gw.toml:15:13: expected http://host:port`},
		{"abuse threshold too high", "", "\n[ratelimit.abuse]\nthreshold = 5000\n", `ratelimit.abuse.threshold 5000: expected 1 to 1000`},
		{"negative max_tracked", "", "\n[ratelimit]\nmax_tracked = -1\n", `ratelimit.max_tracked -1: expected a positive number`},
		{"negative audit max_bytes", `path = "audit.jsonl"`, "path = \"audit.jsonl\"\nmax_bytes = -1", `gw.toml:10:13: audit.max_bytes -1: expected a size in bytes`},
		{"toml syntax", `name     = "in"`, `name     = "in`, `gw.toml:12:15: strings cannot contain newlines`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := good
			if tt.old == "" {
				src += tt.new
			} else {
				if !strings.Contains(src, tt.old) {
					t.Fatalf("test setup: %q not in config", tt.old)
				}
				src = strings.Replace(src, tt.old, tt.new, 1)
			}
			_, err := Parse("gw.toml", []byte(src))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tt.want)
			}
		})
	}
}

func TestParseEdgeAndLimits(t *testing.T) {
	src := good + `
[[listener]]
name     = "edge"
mode     = "edge"
address  = "0.0.0.0:443"
upstream = "https://127.0.0.1:9443"
upstream_spiffe_id = "spiffe://example.org/orders"
policy   = "edge.toml"
jwt_audience = "spiffe://example.org/edge"
tls_cert_file = "edge.crt"
tls_key_file  = "edge.key"

[ratelimit]
backend = "redis"
[ratelimit.redis]
address = "127.0.0.1:6379"
on_failure = "open"
[ratelimit.abuse]
threshold = 10
`
	src = strings.Replace(src, "[audit]\npath = \"audit.jsonl\"", "[audit]\npath = \"audit.jsonl\"\non_failure = \"drop\"\nmax_bytes = 1048576", 1)
	c, err := Parse("/etc/gw.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	e := c.Listeners[2]
	if e.Mode != Edge || e.JWTAudience != "spiffe://example.org/edge" || e.TLSCertFile != "/etc/edge.crt" {
		t.Errorf("edge listener %+v", e)
	}
	if c.RateLimit.Backend != Redis || c.RateLimit.Redis.OnFailure != "open" || c.RateLimit.Abuse.Threshold != 10 || c.RateLimit.Abuse.Cooldown.Duration != 5*time.Minute {
		t.Errorf("ratelimit %+v", c.RateLimit)
	}
	if c.Audit.OnFailure != Drop || c.Audit.MaxBytes != 1<<20 || c.JWT.Leeway.Duration != DefaultJWTLeeway {
		t.Errorf("audit %+v jwt %+v", c.Audit, c.JWT)
	}

	for _, tt := range []struct{ old, new, want string }{
		{`jwt_audience = "spiffe://example.org/edge"`, ``, `jwt_audience is required`},
		{`upstream_spiffe_id = "spiffe://example.org/orders"` + "\npolicy   = \"edge.toml\"", `policy   = "edge.toml"`, `an https:// upstream needs upstream_spiffe_id`},
		{`tls_key_file  = "edge.key"`, ``, `tls_cert_file and tls_key_file go together`},
		{`on_failure = "open"`, `on_failure = "maybe"`, `ratelimit.redis.on_failure "maybe"`},
		{`address = "127.0.0.1:6379"`, ``, `needs [ratelimit.redis] address`},
		{`backend = "redis"`, `backend = "memcached"`, `expected backend "local" or "redis"`},
	} {
		bad := strings.Replace(src, tt.old, tt.new, 1)
		if _, err := Parse("/etc/gw.toml", []byte(bad)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("replacing %q: error %v, want %q", tt.old, err, tt.want)
		}
	}
}
