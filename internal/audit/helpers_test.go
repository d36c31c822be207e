package audit

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

var callers = []string{
	"spiffe://example.org/ns/web/sa/frontend",
	"spiffe://example.org/ns/shop/sa/checkout",
	"spiffe://example.org/ns/ops/sa/batch",
}

// sample is a realistic record, different for each i.
func sample(i int) Record {
	res, rule := ResultAllow, "web-reads-orders"
	if i%7 == 0 {
		res, rule = ResultDeny, ""
	}
	return Record{
		Time:        time.Date(2026, 12, 2, 5, 1, 2, 345678000, time.UTC).Add(time.Duration(i) * time.Millisecond),
		ID:          fmt.Sprintf("6a1f03e2-%d", i),
		Listener:    "orders-in",
		Mode:        "inbound",
		Source:      Source{SPIFFEID: callers[i%len(callers)], TrustDomain: "example.org", CertSerial: "3f9a", CertNotAfter: time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC), Addr: "127.0.0.1:53122"},
		Destination: Destination{SPIFFEID: "spiffe://example.org/ns/shop/sa/orders"},
		Request:     Request{Method: "GET", Host: "orders.internal", Path: fmt.Sprintf("/orders/%d", i), Proto: "HTTP/2.0"},
		Decision:    Decision{Result: res, Rule: rule, Reason: "allowed by rule"},
		Status:      200,
		Upstream:    Upstream{Addr: "http://127.0.0.1:8080", Status: 200, DurationMS: 0.41},
		BytesOut:    512,
		DurationMS:  0.63,
	}
}

// enqueueBlocking admits and enqueues r, waiting for a place as a
// producer in block mode would.
func enqueueBlocking(t testing.TB, w *Writer, r *Record) {
	deadline := time.Now().Add(60 * time.Second)
	spins := 0
	for !w.Admit(r) {
		if time.Now().After(deadline) {
			t.Errorf("the writer never admitted a record: used %d depth %d healthy %v wf %v sf %v", w.used.Load(), w.Depth(), w.Healthy(), w.writeFailing.Load(), w.syncFailing.Load())
			return
		}
		if spins++; spins < 100 {
			runtime.Gosched()
		} else {
			time.Sleep(20 * time.Microsecond)
		}
	}
	if err := w.Enqueue(r); err != nil {
		t.Errorf("enqueue of an admitted record: %v", err)
	}
}

func countLines(t testing.TB, files ...string) int {
	t.Helper()
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n += bytes.Count(b, []byte("\n"))
	}
	return n
}

func readLines(t testing.TB, file string) [][]byte {
	t.Helper()
	fh, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out [][]byte
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, append([]byte(nil), sc.Bytes()...))
	}
	return out
}

func writeLines(t testing.TB, file string, lines [][]byte) {
	t.Helper()
	var b bytes.Buffer
	for _, l := range lines {
		b.Write(l)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(file, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func trailFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "audit.jsonl*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}
