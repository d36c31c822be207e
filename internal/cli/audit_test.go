package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/svidgate/svidgate/internal/audit"
)

type traffic struct {
	caller, method, path, grpc, result, rule string
}

// writeAuditTrail writes records through the real writer and file sink.
func writeAuditTrail(t *testing.T, path string, reqs []traffic) {
	t.Helper()
	f, err := audit.Open(path, audit.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := audit.NewWriter(f, audit.Options{})
	base := time.Now().Add(-time.Hour).UTC()
	for i, q := range reqs {
		r := audit.Record{
			Time: base.Add(time.Duration(i) * time.Second), ID: w.NextID(), Listener: "orders-in", Mode: "inbound",
			Source:      audit.Source{SPIFFEID: q.caller, Addr: "127.0.0.1:1"},
			Destination: audit.Destination{SPIFFEID: "spiffe://example.org/ns/shop/sa/orders"},
			Request:     audit.Request{Method: q.method, Host: "orders.internal", Path: q.path, GRPCMethod: q.grpc, Proto: "HTTP/2.0"},
			Decision:    audit.Decision{Result: q.result, Rule: q.rule, Reason: "allowed by rule"},
			Status:      200,
		}
		if q.result == "deny" {
			r.Decision.Reason, r.Status = "no rule matched", 403
		}
		if !w.Admit(&r) {
			t.Fatal("not admitted")
		}
		if err := w.Enqueue(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

const (
	web   = "spiffe://example.org/ns/web/sa/frontend"
	batch = "spiffe://example.org/ns/ops/sa/batch"
)

func demoTraffic() []traffic {
	return []traffic{
		{web, "GET", "/orders/1", "", "allow", "web-reads"},
		{web, "GET", "/orders/2", "", "allow", "web-reads"},
		{batch, "POST", "/orders", "", "allow", "batch-writes"},
		{web, "DELETE", "/orders/1", "", "deny", ""},
		{batch, "GET", "/reports/daily", "", "allow", "batch-reads"},
	}
}

func TestAuditVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "audit.jsonl")
	writeAuditTrail(t, file, demoTraffic())
	code, out, errOut := run("audit", "verify", file)
	if code != 0 || !strings.HasPrefix(out, "ok: 5 records") {
		t.Fatalf("verify: %d %q %q", code, out, errOut)
	}
	b, _ := os.ReadFile(file)
	lines := strings.SplitAfter(string(b), "\n")
	tampered := filepath.Join(dir, "tampered.jsonl")
	os.WriteFile(tampered, []byte(lines[0]+lines[1]+strings.Replace(lines[2], `"POST"`, `"GET"`, 1)+lines[3]+lines[4]), 0o600)
	code, _, errOut = run("audit", "verify", tampered)
	if code != 1 || !strings.Contains(errOut, tampered+":3: changed") {
		t.Fatalf("tampered: %d %q", code, errOut)
	}
	code, _, errOut = run("audit", "verify")
	if code != 2 || !strings.Contains(errOut, "at least one") {
		t.Fatalf("no files: %d %q", code, errOut)
	}
}

func TestAuditQueryCommand(t *testing.T) {
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	writeAuditTrail(t, file, demoTraffic())
	code, out, errOut := run("audit", "query", file, "-caller", "spiffe://example.org/ns/web/**", "-decision", "deny")
	if code != 0 || !strings.Contains(out, "DELETE") || strings.Count(out, "\n") != 2 || !strings.Contains(errOut, "1 records") {
		t.Fatalf("query: %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run("audit", "query", "-json", "-rule", "batch-writes", "-since", "2h", file)
	var r audit.Record
	if code != 0 || strings.Count(out, "\n") != 1 || json.Unmarshal([]byte(out), &r) != nil || r.Request.Path != "/orders" || r.Chain == "" {
		t.Fatalf("query -json: %d %q", code, out)
	}
	if code, out, _ = run("audit", "query", file, "-since", "1m"); code != 0 || strings.Count(out, "\n") != 1 {
		t.Fatalf("-since 1m kept old records: %q", out)
	}
	if code, _, errOut = run("audit", "query", file, "-decision", "maybe"); code != 2 || !strings.Contains(errOut, `"maybe"`) {
		t.Fatalf("bad -decision: %d %q", code, errOut)
	}
}

func TestAuditGraphCommand(t *testing.T) {
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	writeAuditTrail(t, file, demoTraffic())
	for format, want := range map[string]string{
		"dot":     `"spiffe://example.org/ns/web/sa/frontend" -> "spiffe://example.org/ns/shop/sa/orders" [label="3 req, 1 denied"`,
		"mermaid": `-->|"2 req"|`,
		"json":    `"requests": 3`,
		"svg":     "<svg ",
	} {
		code, out, errOut := run("audit", "graph", file, "-format", format)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("-format %s: %d %q\n%s", format, code, errOut, out)
		}
	}
	if code, _, _ := run("audit", "graph", file, "-format", "png"); code != 2 {
		t.Error("-format png accepted")
	}
}
