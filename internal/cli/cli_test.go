package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testConfig = `
[identity]
socket = "unix:///nonexistent/agent.sock"
initial_timeout = "1s"

[audit]
path = "audit.jsonl"

[[listener]]
name     = "in"
mode     = "inbound"
address  = "127.0.0.1:0"
upstream = "http://127.0.0.1:8080"
policy   = "policy.toml"
`

const testPolicy = `version = 1

[[rule]]
id      = "web-reads"
effect  = "allow"
callers = ["spiffe://example.org/web"]
methods = ["GET"]
paths   = ["/orders/**"]
`

func files(t *testing.T, policy string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gateway.toml")
	if err := os.WriteFile(cfg, []byte(testConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policy.toml"), []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	good := files(t, testPolicy)
	broken := files(t, testPolicy+"\n[[rule]]\nid = \"web-reads\"\neffect = \"allow\"\ncallers = [\"spiffe://example.org/x\"]\n")
	tests := []struct {
		name     string
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{"no command", nil, 2, "", "Usage:"},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"version", []string{"version"}, 0, "svidgate ", ""},
		{"validate without -config", []string{"validate"}, 2, "", "-config is required"},
		{"validate good", []string{"validate", "-config", good}, 0, "1 rule(s)", ""},
		{"validate broken policy", []string{"validate", "-config", broken}, 1, "", "policy.toml:11:6: rule \"web-reads\": duplicate id"},
		{"validate missing file", []string{"validate", "-config", "/nonexistent.toml"}, 1, "", "no such file"},
		{"run broken policy", []string{"run", "-config", broken}, 1, "", "policy.toml:11:6: rule \"web-reads\": duplicate id"},
		{"run without agent", []string{"run", "-config", good}, 1, "", "registration entry"},
		{"explain allowed", []string{"policy", "explain", "-policy", filepath.Join(filepath.Dir(good), "policy.toml"),
			"-caller", "spiffe://example.org/web", "-method", "GET", "-path", "/orders/../orders/1"}, 0, "allow", ""},
		{"explain bad path", []string{"policy", "explain", "-policy", filepath.Join(filepath.Dir(good), "policy.toml"),
			"-caller", "spiffe://example.org/web", "-path", "/a%2Fb"}, 1, "", "encoded slash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run(tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errs)
			}
			if !strings.Contains(out, tt.inStdout) {
				t.Errorf("stdout %q lacks %q", out, tt.inStdout)
			}
			if !strings.Contains(errs, tt.inStderr) {
				t.Errorf("stderr %q lacks %q", errs, tt.inStderr)
			}
		})
	}
}

func TestExplainNamesEachRule(t *testing.T) {
	p := filepath.Join(filepath.Dir(files(t, testPolicy)), "policy.toml")
	code, out, _ := run("policy", "explain", "-policy", p, "-caller", "spiffe://example.org/web", "-method", "DELETE", "-path", "/orders/1")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"normalizes", "deny", "web-reads", "DELETE"} {
		if want == "normalizes" {
			if strings.Contains(out, want) {
				t.Errorf("an already normal path was reported as normalized:\n%s", out)
			}
			continue
		}
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
}

func TestExplainJWTClaims(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "p.toml")
	if err := os.WriteFile(p, []byte(testPolicy+"[rule.jwt]\naudience = \"spiffe://example.org/orders\"\nclaims = { scope = { contains = \"orders:read\" } }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"policy", "explain", "-policy", p, "-caller", "spiffe://example.org/web", "-path", "/orders/1", "-jwt-claims"}
	for claims, want := range map[string]string{
		`{"sub":"spiffe://example.org/web","aud":"spiffe://example.org/orders","scope":["orders:read"]}`:   "jwt:      passes",
		`{"sub":"spiffe://example.org/web","aud":"spiffe://example.org/orders","scope":["orders:write"]}`:  "FAIL  claims.scope contains",
		`{"sub":"spiffe://example.org/batch","aud":"spiffe://example.org/orders","scope":["orders:read"]}`: "FAIL  subject = peer",
	} {
		code, out, errs := run(append(args, claims)...)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("claims %s: exit %d, output:\n%s%s\nwant %q", claims, code, out, errs, want)
		}
	}
	if code, _, _ := run(append(args, "{not json")...); code != 2 {
		t.Errorf("bad JSON: exit %d, want 2", code)
	}
}
