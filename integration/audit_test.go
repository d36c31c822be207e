package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// audVerifyOK runs `svidgate audit verify files...` and fails the test
// unless it exits 0 and reports want records (want < 0: any number). It
// returns its standard output.
func audVerifyOK(t testing.TB, want int, files ...string) string {
	t.Helper()
	code, out, errOut := runSvidgate(t, append([]string{"audit", "verify"}, files...)...)
	if code != 0 {
		t.Fatalf("svidgate audit verify %s: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", strings.Join(files, " "), code, indent(out), indent(errOut))
	}
	if want >= 0 {
		prefix := fmt.Sprintf("ok: %d records, seq 1–%d, last chain ", want, want)
		if !strings.HasPrefix(out, prefix) {
			t.Fatalf("svidgate audit verify %s: %q, want it to start %q", strings.Join(files, " "), out, prefix)
		}
	}
	return out
}

// audWaitAccounted waits until written + dropped reach n (every record
// accounted for) and returns the two counters. More than n fails at once.
func audWaitAccounted(t testing.TB, g *gateway, n int, timeout time.Duration) (written, dropped int) {
	t.Helper()
	err := poll(timeout, 50*time.Millisecond, func() error {
		s, err := g.scrape()
		if err != nil {
			return err
		}
		w, err := s.get("svidgate_audit_records_total")
		if err != nil {
			return permanent(err)
		}
		d, err := s.get("svidgate_audit_dropped_total")
		if err != nil {
			return permanent(err)
		}
		written, dropped = int(w), int(d)
		if written+dropped > n {
			return permanent(fmt.Errorf("records_total %d + dropped_total %d = %d, more than the %d requests made", written, dropped, written+dropped, n))
		}
		if written+dropped < n {
			return fmt.Errorf("records_total %d + dropped_total %d, want %d", written, dropped, n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", g.name, err)
	}
	return written, dropped
}

// audHammer runs workers goroutines over clients (round robin), each
// sending GETs to url(i) for i = 1, 2, … until n requests were started
// (n = 0: until ctx ends). ok counts 200 answers; the first failures are
// kept.
type audHammer struct {
	ok, failed, started atomic.Int64
	mu                  sync.Mutex
	failures            []string
	ctx                 context.Context // ends the run early
	done                chan struct{}
}

func audStartHammer(ctx context.Context, clients []*http.Client, workers int, n int64, url func(i int64) string) *audHammer {
	h := &audHammer{ctx: ctx, done: make(chan struct{})}
	var wg sync.WaitGroup
	for w := range workers {
		c := clients[w%len(clients)]
		wg.Go(func() {
			for ctx.Err() == nil {
				i := h.started.Add(1)
				if n > 0 && i > n {
					h.started.Add(-1)
					return
				}
				code, err := doStatus(c, http.MethodGet, url(i))
				if err == nil && code == http.StatusOK {
					h.ok.Add(1)
					continue
				}
				h.failed.Add(1)
				h.mu.Lock()
				if len(h.failures) < 10 {
					h.failures = append(h.failures, fmt.Sprintf("request %d: %d %v", i, code, err))
				}
				h.mu.Unlock()
			}
		})
	}
	go func() { wg.Wait(); close(h.done) }()
	return h
}

func (h *audHammer) wait() { <-h.done }

// waitStarted waits (up to a minute) until n requests were started, so
// that a test can act at a point of the run.
func (h *audHammer) waitStarted(n int64) {
	_ = poll(time.Minute, 5*time.Millisecond, func() error {
		if h.started.Load() < n {
			return errors.New("not yet")
		}
		return nil
	})
}

func (h *audHammer) firstFailures() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.failures, "\n")
}

// audClients are n HTTP/2 mTLS clients of g for caller (under /aud/),
// each with its own connection.
func audClients(t testing.TB, g *gateway, caller string, n int) []*http.Client {
	var cs []*http.Client
	for range n {
		cs = append(cs, g.client(t, audID(caller), true))
	}
	return cs
}

// allServedAndRecorded waits for the hammer's n requests and fails the
// test unless every one was served and g counts n records written, none
// dropped.
func (h *audHammer) allServedAndRecorded(t testing.TB, g *gateway, n int) {
	t.Helper()
	h.wait()
	if h.ctx.Err() != nil || h.failed.Load() > 0 {
		t.Fatalf("%d served, %d failed (%v); first failures:\n%s", h.ok.Load(), h.failed.Load(), h.ctx.Err(), indent(h.firstFailures()))
	}
	written, dropped := audWaitAccounted(t, g, n, 15*time.Second)
	if written != n || dropped != 0 {
		t.Fatalf("records_total %d, dropped_total %d; want %d, 0", written, dropped, n)
	}
}

// audEachOnce reads the trail in files (in trail order) and fails the
// test unless it holds seq 1..n, one record for each of n requests to
// distinct paths, and no torn line.
func audEachOnce(t testing.TB, n int, files ...string) []auditRecord {
	t.Helper()
	recs := audWholeTrail(t, files...)
	seen := make(map[string]bool, n)
	for _, r := range recs {
		if seen[r.Request.Path] {
			t.Fatalf("seq %d: %s recorded twice", r.Seq, r.Request.Path)
		}
		seen[r.Request.Path] = true
	}
	if len(recs) != n {
		t.Fatalf("%d records of %d distinct requests across %d files, want %d", len(recs), len(seen), len(files), n)
	}
	return recs
}

// audWholeTrail reads a trail that no one writes any more (files in trail
// order) and fails the test on a torn last line or a gap in seq.
func audWholeTrail(t testing.TB, files ...string) []auditRecord {
	t.Helper()
	recs, torn, err := readTrail(files...)
	if err != nil {
		t.Fatal(err)
	}
	if torn != "" {
		t.Errorf("torn line in the trail: %s", torn)
	}
	if err := checkSeq(recs); err != nil {
		t.Error(err)
	}
	return recs
}

// TestAuditHundredThousand: 100,000 requests under load through one
// gateway make exactly 100,000 records, seq 1…100,000, and the chain
// verifies.
func TestAuditHundredThousand(t *testing.T) {
	tp := env.topology(t, "aud-load")
	t.Parallel()
	const n, workers, conns = 100_000, 32, 4
	g := tp.gateway(t, "gw-aud-load")
	clients := audClients(t, g, "load/client", conns)
	base := "https://" + g.addr("aud-load") + "/aud/load/"
	// HTTP/2, as the load will be.
	req, _ := http.NewRequest(http.MethodGet, base+"probe", nil)
	resp, err := clients[0].Do(req)
	if err != nil {
		t.Fatal(g.diagnose(err))
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
		t.Fatalf("probe: %s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	h := audStartHammer(ctx, clients, workers, n-1, func(i int64) string { return base + strconv.FormatInt(i%1000, 10) })
	h.wait()
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("only %d of %d requests done within 4 minutes", h.ok.Load()+h.failed.Load(), n)
	}
	if h.failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed; first ones:\n%s", h.failed.Load(), n, indent(h.firstFailures()))
	}
	t.Logf("%d requests (HTTP/2, mTLS, %d workers over %d connections, gateway race=%v) in %v: %.0f requests/s",
		n, workers, conns, raceEnabled, elapsed.Round(10*time.Millisecond), float64(n)/elapsed.Seconds())

	written, dropped := audWaitAccounted(t, g, n, 30*time.Second)
	if dropped != 0 || written != n {
		t.Fatalf("records_total %d, dropped_total %d; want %d and 0", written, dropped, n)
	}
	// Count the lines without decoding them all: each starts with its seq.
	b, err := os.ReadFile(g.audit)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		t.Fatalf("%s does not end with a newline", g.audit)
	}
	lines := bytes.Split(b[:len(b)-1], []byte("\n"))
	if len(lines) != n {
		t.Fatalf("%s holds %d records, want exactly %d", g.audit, len(lines), n)
	}
	for i, line := range lines {
		prefix := fmt.Sprintf(`{"schema":2,"seq":%d,`, i+1)
		if !bytes.HasPrefix(line, []byte(prefix)) {
			t.Fatalf("%s:%d: %.80q, want it to start %q", g.audit, i+1, line, prefix)
		}
		if !bytes.Contains(line, []byte(`"listener":"aud-load"`)) || !bytes.Contains(line, []byte(`"result":"allow"`)) ||
			!bytes.Contains(line, []byte(`"status":200,`)) || !bytes.Contains(line, []byte(`"spiffe_id":"spiffe://example.org/aud/load/client"`)) {
			t.Fatalf("%s:%d: not an allowed request of aud/load/client on aud-load: %.400q", g.audit, i+1, line)
		}
	}
	t0 := time.Now()
	audVerifyOK(t, n, g.audit)
	t.Logf("%s: %d records, %d bytes (%.0f bytes/record); audit verify took %v", g.audit, n, len(b), float64(len(b))/n, time.Since(t0).Round(time.Millisecond))
}

// TestAuditVerifyNamesTamperedLine edits, deletes and swaps lines of a
// copy of a real trail: `audit verify` exits 1 naming the line.
func TestAuditVerifyNamesTamperedLine(t *testing.T) {
	tp := env.topology(t, "aud-tamper")
	t.Parallel()
	const n = 40
	g := tp.gateway(t, "gw-aud-tamper")
	c := audClients(t, g, "tamper/client", 1)[0]
	for i := 1; i <= n; i++ {
		expectStatus(t, g, c, http.MethodGet, fmt.Sprintf("https://%s/aud/tamper/%03d", g.addr("aud-tamper"), i), 200)
	}
	audWaitAccounted(t, g, n, 10*time.Second)
	orig, err := os.ReadFile(g.audit)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(orig), "\n")
	lines = lines[:len(lines)-1] // after the last newline: ""
	if len(lines) != n {
		t.Fatalf("%s: %d lines, want %d", g.audit, len(lines), n)
	}
	dir := t.TempDir()
	pristine := filepath.Join(dir, "pristine.jsonl")
	if err := os.WriteFile(pristine, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	audVerifyOK(t, n, pristine)

	edit := func(k int, from, to string) func([]string) []string {
		return func(ls []string) []string {
			if !strings.Contains(ls[k-1], from) {
				t.Fatalf("line %d has no %q: %.300q", k, from, ls[k-1])
			}
			ls[k-1] = strings.Replace(ls[k-1], from, to, 1)
			return ls
		}
	}
	for _, tc := range []struct {
		name   string
		change func([]string) []string
		line   int
		kind   string
	}{
		{"edit a path", edit(17, "/aud/tamper/017", "/aud/tamper/018"), 17, "changed"},
		{"edit the status", edit(5, `"status":200,`, `"status":403,`), 5, "changed"},
		{"edit the first line", edit(1, `"result":"allow"`, `"result":"deny"`), 1, "changed"},
		{"edit the last line's chain", func(ls []string) []string {
			l := ls[n-1]
			i := strings.LastIndex(l, `"chain":"`) + len(`"chain":"`)
			flip := map[byte]byte{'0': '1'}[l[i]]
			if flip == 0 {
				flip = '0'
			}
			ls[n-1] = l[:i] + string(flip) + l[i+1:]
			return ls
		}, n, "changed"},
		{"delete a line", func(ls []string) []string { return slices.Delete(ls, 22, 23) }, 23, "removed"},
		{"delete the first line", func(ls []string) []string { return ls[1:] }, 1, "removed"},
		{"swap two lines", func(ls []string) []string { ls[29], ls[30] = ls[30], ls[29]; return ls }, 30, "reordered"},
		{"swap two distant lines", func(ls []string) []string { ls[9], ls[34] = ls[34], ls[9]; return ls }, 10, "reordered"},
	} {
		file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".jsonl")
		ls := tc.change(slices.Clone(lines))
		if err := os.WriteFile(file, []byte(strings.Join(ls, "")), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runSvidgate(t, "audit", "verify", file)
		want := fmt.Sprintf("%s:%d: %s: ", file, tc.line, tc.kind)
		if code != 1 || !strings.HasPrefix(errOut, want) {
			t.Errorf("%s: audit verify exit %d, stderr %q, stdout %q; want exit 1 and stderr starting %q", tc.name, code, errOut, out, want)
		}
	}
}

// audSendUntil sends GETs to url(k), k counting on from *sent, until one
// is answered until (15s at most), and counts every answer by status in
// answers. A transport error or a status other than until and also ends
// it with an error.
func audSendUntil(g *gateway, c *http.Client, url func(k int) string, until, also int, sent *int, answers map[int]int) error {
	return poll(15*time.Second, 20*time.Millisecond, func() error {
		code, err := doStatus(c, http.MethodGet, url(*sent))
		if err != nil {
			return permanent(g.diagnose(err))
		}
		*sent++
		answers[code]++
		switch code {
		case until:
			return nil
		case also:
			return fmt.Errorf("still %d", also)
		default:
			return permanent(fmt.Errorf("status %d", code))
		}
	})
}

// TestAuditFullDiskBlock: with on_failure = "block" and the trail on a
// full disk, requests are refused with 503 (gRPC UNAVAILABLE); when room
// returns, the gateway recovers by itself and the trail holds every
// request, refused ones included, and verifies.
func TestAuditFullDiskBlock(t *testing.T) {
	tp := env.topology(t, "aud-block")
	t.Parallel()
	g := tp.gateway(t, "gw-aud-block")
	disk := audDisk(g.name)
	c := audClients(t, g, "block/client", 1)[0]
	url := func(tag string, i int) string {
		return fmt.Sprintf("https://%s/aud/block/%s/%d", g.addr("aud-block"), tag, i)
	}
	grpcClient := testpb.NewTestServiceClient(grpcDirect(t, g.addr("aud-block-grpc"), audID("block/client"), g.id))
	unary := func() codes.Code {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := grpcClient.UnaryCall(ctx, &testpb.SimpleRequest{})
		return status.Code(err)
	}
	requests, refused := 0, 0

	for i := range 20 {
		expectStatus(t, g, c, http.MethodGet, url("before", i), 200)
		requests++
	}
	if code := unary(); code != codes.OK {
		t.Fatalf("gRPC UnaryCall before the disk is full: %v, want OK", code)
	}
	requests++
	audWaitAccounted(t, g, requests, 10*time.Second)

	if err := disk.fill(g); err != nil {
		t.Fatalf("fill the disk (%s): %v", disk.kind(), err)
	}
	// The first requests after the disk filled up may still be admitted:
	// the writer learns that the disk is full when it writes their records.
	filling := map[int]int{}
	if err := audSendUntil(g, c, func(k int) string { return url("filling", k) }, 503, 200, &requests, filling); err != nil {
		t.Fatalf("with the audit trail on a full disk (%s), after %d requests (%d served): %v; want 503", disk.kind(), requests, filling[200], err)
	}
	served := filling[200]
	refused += filling[503]
	for i := range 10 {
		expectStatus(t, g, c, http.MethodGet, url("full", i), http.StatusServiceUnavailable)
		requests++
		refused++
	}
	if code := unary(); code != codes.Unavailable {
		t.Errorf("disk full: gRPC UnaryCall: %v, want Unavailable", code)
	} else {
		refused++
	}
	requests++
	t.Logf("disk full (%s): %d requests served before the first 503, then %d refused", disk.kind(), served, refused)

	if err := disk.free(g); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	recovering := map[int]int{}
	if err := audSendUntil(g, c, func(k int) string { return url("recovering", k) }, 200, 503, &requests, recovering); err != nil {
		t.Fatalf("after room returned: %v", err)
	}
	refused += recovering[503]
	t.Logf("served again %v after room returned", time.Since(freed).Round(time.Millisecond))
	for i := range 10 {
		expectStatus(t, g, c, http.MethodGet, url("after", i), 200)
		requests++
	}
	if code := unary(); code != codes.OK {
		t.Errorf("after recovery: gRPC UnaryCall: %v, want OK", code)
	}
	requests++

	audCheckBlockTrail(t, g, disk, requests, refused)
}

// audCheckBlockTrail checks the trail of the block-mode test once the
// disk has room again: nothing dropped, every request in the trail,
// refused ones (decision error, 503) too, and the chain verifies.
func audCheckBlockTrail(t testing.TB, g *gateway, disk *auditDisk, requests, refused int) {
	t.Helper()
	written, dropped := audWaitAccounted(t, g, requests, 15*time.Second)
	if dropped != 0 {
		t.Errorf("block mode: dropped_total %d, want 0", dropped)
	}
	files := disk.files()
	audVerifyOK(t, requests, files...)
	recs := audWholeTrail(t, files...)
	nRefused := 0
	for _, r := range recs {
		if r.Decision.Result == "error" {
			nRefused++
			if r.Listener == "aud-block" && r.Status != http.StatusServiceUnavailable {
				t.Errorf("seq %d: refused (decision error) with status %d, want 503", r.Seq, r.Status)
			}
		} else if r.Status == http.StatusServiceUnavailable {
			t.Errorf("seq %d: a 503 with decision %q, want error", r.Seq, r.Decision.Result)
		}
	}
	if len(recs) != requests || written != requests || nRefused != refused {
		t.Errorf("trail: %d records (%d refused), records_total %d; want %d (%d refused)", len(recs), nRefused, written, requests, refused)
	}
}

// TestAuditFullDiskDrop: with on_failure = "drop", requests keep being
// served on a full disk, every lost record is counted, and records
// written + dropped = requests made; the trail still verifies and says
// how many records were lost where.
func TestAuditFullDiskDrop(t *testing.T) {
	tp := env.topology(t, "aud-drop")
	t.Parallel()
	g := tp.gateway(t, "gw-aud-drop")
	disk := audDisk(g.name)
	c := audClients(t, g, "drop/client", 1)[0]
	url := func(tag string, i int) string {
		return fmt.Sprintf("https://%s/aud/drop/%s/%d", g.addr("aud-drop"), tag, i)
	}
	const before, during, after = 20, 60, 20
	for i := range before {
		expectStatus(t, g, c, http.MethodGet, url("before", i), 200)
	}
	audWaitAccounted(t, g, before, 10*time.Second)

	if err := disk.fill(g); err != nil {
		t.Fatalf("fill the disk (%s): %v", disk.kind(), err)
	}
	if !disk.tmpfs {
		time.Sleep(300 * time.Millisecond) // let SIGHUP reopen onto /dev/full
	}
	for i := range during {
		expectStatus(t, g, c, http.MethodGet, url("full", i), 200)
	}
	written, dropped := audWaitAccounted(t, g, before+during, 10*time.Second)
	if dropped == 0 {
		t.Fatalf("disk full (%s): %d requests served, none dropped (records_total %d)", disk.kind(), during, written)
	}
	t.Logf("disk full (%s): of %d requests, %d records written, %d dropped", disk.kind(), during, written-before, dropped)

	if err := disk.free(g); err != nil {
		t.Fatal(err)
	}
	if !disk.tmpfs {
		time.Sleep(300 * time.Millisecond)
	}
	for i := range after {
		expectStatus(t, g, c, http.MethodGet, url("after", i), 200)
	}
	total := before + during + after
	written, dropped = audWaitAccounted(t, g, total, 10*time.Second)

	files := disk.files()
	audVerifyOK(t, written, files...)
	recs := audWholeTrail(t, files...)
	var reported uint64
	for _, r := range recs {
		reported += r.DroppedBefore
	}
	if len(recs) != written || int(reported) != dropped || len(recs)+dropped != total {
		t.Errorf("trail: %d records reporting %d dropped; metrics: records_total %d, dropped_total %d; want records + dropped = %d requests, dropped_before summing to dropped_total",
			len(recs), reported, written, dropped, total)
	}
	// The last records, after room returned, are all there.
	for i, r := range recs[len(recs)-after:] {
		if want := fmt.Sprintf("/aud/drop/after/%d", i); r.Request.Path != want {
			t.Errorf("record seq %d: path %q, want %q", r.Seq, r.Request.Path, want)
		}
	}
}

// audKillUnderLoad kills g with SIGKILL (no chance to flush or sync)
// after 1000 requests of a steady load served, and returns the trail it
// left: its complete records (checked), a torn last line the kill left,
// and, unless the kill left one, the torn line simulated here.
func audKillUnderLoad(t testing.TB, g *gateway, clients []*http.Client, base string) (recs []auditRecord, torn, simulated string, served int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const workers = 16
	h := audStartHammer(ctx, clients, workers, 0, func(i int64) string { return base + "before/" + strconv.FormatInt(i, 10) })
	defer func() { cancel(); h.wait() }() // no load outlives a failure
	if err := poll(30*time.Second, 10*time.Millisecond, func() error {
		if h.ok.Load() < 1000 {
			return fmt.Errorf("%d requests served", h.ok.Load())
		}
		return nil
	}); err != nil {
		t.Fatal(g.diagnose(err))
	}
	if h.failed.Load() > 0 {
		t.Fatalf("load failed before the kill:\n%s", indent(h.firstFailures()))
	}
	g.proc.kill()
	if !g.proc.exited() {
		t.Fatalf("gateway %s did not die of SIGKILL within 10s", g.name)
	}
	cancel()
	h.wait()
	served = h.ok.Load()

	recs, torn, err := readTrail(g.audit)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkSeq(recs); err != nil {
		t.Fatal(err)
	}
	// A request in flight at the kill may have been answered (and
	// audited) without the client seeing the answer: at most one per
	// worker.
	if len(recs) == 0 || int64(len(recs)) > served+workers {
		t.Fatalf("%d records before the restart for %d requests served by %d workers", len(recs), served, workers)
	}
	// A write cut short by the kill leaves a torn last line. The kernel
	// rarely cuts a write, so unless this kill did, cut one here the way
	// it would: the start of the next record, without its newline.
	if torn == "" {
		simulated = fmt.Sprintf(`{"schema":2,"seq":%d,"time":"2026-`, len(recs)+1)
		f, err := os.OpenFile(g.audit, os.O_WRONLY|os.O_APPEND, 0)
		if err == nil {
			_, err = f.WriteString(simulated)
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return recs, torn, simulated, served
}

// TestAuditKillRestart kills the gateway with SIGKILL under load and
// starts it again: the trail verifies and the chain continues.
func TestAuditKillRestart(t *testing.T) {
	tp := env.topology(t, "aud-kill")
	t.Parallel()
	g := tp.gateway(t, "gw-aud-kill")
	clients := audClients(t, g, "kill/client", 2)
	base := "https://" + g.addr("aud-kill") + "/aud/kill/"

	recs, torn, simulated, servedBefore := audKillUnderLoad(t, g, clients, base)
	if err := env.relaunch(g, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	tornFiles, _ := filepath.Glob(filepath.Join(g.dir, "audit.torn-*"))
	t.Logf("killed under load after %d requests served: %d records on disk (a record still queued dies with the process); torn last line left by the kill: %q, simulated: %q; moved aside: %q",
		servedBefore, len(recs), torn, simulated, tornFiles)
	if len(tornFiles) != 1 {
		t.Fatalf("the restarted gateway moved %q aside, want one audit.torn-* file", tornFiles)
	}
	if simulated != "" {
		if b, err := os.ReadFile(tornFiles[0]); err != nil || string(b) != simulated {
			t.Errorf("%s holds %q (%v), want the torn line %q", tornFiles[0], b, err, simulated)
		}
	}

	const more = 50
	c := clients[0]
	// The old connections died with the gateway; new ones are made.
	for i := range more {
		expectStatus(t, g, c, http.MethodGet, fmt.Sprintf("%safter/%d", base, i), 200)
	}
	written, dropped := audWaitAccounted(t, g, more, 10*time.Second)
	if written != more || dropped != 0 {
		t.Fatalf("restarted gateway: records_total %d, dropped_total %d; want %d, 0", written, dropped, more)
	}
	if out := audVerifyOK(t, len(recs)+more, g.audit); strings.Contains(out, "note:") {
		t.Errorf("audit verify after the restart: %q, want no incomplete line", out)
	}
	all, _, err := readTrail(g.audit)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range all[len(recs):] {
		if want := fmt.Sprintf("/aud/kill/after/%d", i); r.Request.Path != want {
			t.Fatalf("record seq %d: path %q, want %q (the restarted gateway's records)", r.Seq, r.Request.Path, want)
		}
	}
}

// TestAuditRotationUnderLoad: with max_bytes 64 KiB, rotation (and
// SIGHUP reopens) under load lose and duplicate nothing, and verify
// takes the files in any order.
func TestAuditRotationUnderLoad(t *testing.T) {
	tp := env.topology(t, "aud-rot")
	t.Parallel()
	const n = 4000
	g := tp.gateway(t, "gw-aud-rot")
	clients := audClients(t, g, "rot/client", 2)
	base := "https://" + g.addr("aud-rot") + "/aud/rot/"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := audStartHammer(ctx, clients, 16, n, func(i int64) string { return base + strconv.FormatInt(i, 10) })
	for _, at := range []int64{n / 4, n / 2, 3 * n / 4} {
		h.waitStarted(at)
		g.proc.signal(syscall.SIGHUP)
	}
	h.allServedAndRecorded(t, g, n)

	files, err := filepath.Glob(g.audit + "*")
	if err != nil {
		t.Fatal(err)
	}
	// Trail order: audit.jsonl.K (oldest) … audit.jsonl.1, audit.jsonl.
	ordered := make([]string, len(files))
	for _, f := range files {
		k := 0
		if f != g.audit {
			if k, err = strconv.Atoi(strings.TrimPrefix(f, g.audit+".")); err != nil || k < 1 || k >= len(files) {
				t.Fatalf("unexpected file %s beside the trail", f)
			}
		}
		ordered[len(files)-1-k] = f
	}
	if len(files) < 10 {
		t.Fatalf("%d files after %d records with max_bytes %d, want many rotations", len(files), n, audRotMaxBytes)
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > audRotMaxBytes {
			t.Errorf("%s: %d bytes, more than max_bytes %d", f, fi.Size(), audRotMaxBytes)
		}
	}
	recs := audEachOnce(t, n, ordered...)
	// Glob order is not trail order: verify sorts the files itself.
	out := audVerifyOK(t, n, files...)
	if want := "files in trail order: " + strings.Join(ordered, " ") + "\n"; !strings.Contains(out, want) {
		t.Errorf("audit verify: %q, want it to hold %q", out, want)
	}
	t.Logf("%d requests, 3 SIGHUPs: %d records in %d files of at most %d bytes", n, len(recs), len(files), audRotMaxBytes)
}

// TestAuditPolicySuggest loads the output of `policy suggest` over a
// trail as the gateway's policy: the traffic that produced it is still
// allowed, calls that never happened are denied.
func TestAuditPolicySuggest(t *testing.T) {
	tp := env.topology(t, "aud-suggest")
	t.Parallel()
	g := tp.gateway(t, "gw-aud-suggest")
	type call struct{ caller, method, path string }
	seen := []call{
		{"shop/web", "GET", "/orders"},
		{"shop/web", "GET", "/orders/1"},
		{"shop/web", "GET", "/orders/2"},
		{"shop/web", "GET", "/orders/3"},
		{"shop/web", "POST", "/orders"},
		{"shop/admin", "DELETE", "/orders/9"},
		{"billing/batch", "GET", "/invoices/2024/summary"},
		{"billing/batch", "PUT", "/invoices/2024/summary"},
	}
	never := []call{
		{"billing/batch", "GET", "/orders/1"},         // another caller's path
		{"shop/web", "DELETE", "/orders/1"},           // another caller's method
		{"shop/admin", "GET", "/orders/9"},            // methods never widen
		{"shop/web", "GET", "/invoices/2024/summary"}, // another caller's path
		{"billing/batch", "DELETE", "/invoices/2024/summary"},
		{"shop/stranger", "GET", "/orders"}, // a caller never seen
		{"shop/web", "GET", "/admin"},       // a path never seen
	}
	clients := map[string]*http.Client{}
	client := func(caller string) *http.Client {
		if clients[caller] == nil {
			clients[caller] = audClients(t, g, caller, 1)[0]
		}
		return clients[caller]
	}
	base := "https://" + g.addr("aud-suggest")
	for _, c := range seen {
		expectStatus(t, g, client(c.caller), c.method, base+c.path, 200)
	}
	audWaitAccounted(t, g, len(seen), 10*time.Second)

	suggested := filepath.Join(t.TempDir(), "suggested.toml")
	code, out, errOut := runSvidgate(t, "policy", "suggest", g.audit, "-o", suggested)
	if code != 0 {
		t.Fatalf("policy suggest: exit %d\n%s\n%s", code, indent(out), indent(errOut))
	}
	doc, err := os.ReadFile(suggested)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("policy suggest (%s):\n%s", strings.TrimSpace(errOut), indent(string(doc)))

	policyPath := filepath.Join(g.dir, "policy.toml")
	if err := os.WriteFile(policyPath, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runSvidgate(t, "validate", "-config", g.config); code != 0 {
		t.Errorf("validate with the suggested policy: exit %d\n%s\n%s", code, indent(out), indent(errOut))
	}
	want := sha256Hex(doc)
	if err := poll(10*time.Second, 50*time.Millisecond, func() error {
		st, err := g.status()
		if err != nil {
			return err
		}
		for _, l := range st.Listeners {
			if l.Name == "aud-suggest" && l.Policy != nil {
				if l.Policy.SHA256 == want {
					return nil
				}
				return fmt.Errorf("policy sha256 %s, want %s (last reload %+v)", l.Policy.SHA256, want, l.Policy.LastReload)
			}
		}
		return errors.New("/v1/status: no listener aud-suggest with a policy")
	}); err != nil {
		t.Fatalf("the suggested policy was not loaded: %v", err)
	}
	for _, c := range seen {
		expectStatus(t, g, client(c.caller), c.method, base+c.path, 200)
	}
	for _, c := range never {
		expectStatus(t, g, client(c.caller), c.method, base+c.path, 403)
	}
}

// TestAuditGraph: the admin listener's /graph is an SVG naming the
// workloads that called, and `audit graph -format json` counts their
// requests and denials.
func TestAuditGraph(t *testing.T) {
	tp := env.topology(t, "aud-graph")
	t.Parallel()
	g := tp.gateway(t, "gw-aud-graph")
	base := "https://" + g.addr("aud-graph")
	a, b := audID("graph/frontend"), audID("graph/batch")
	ca, cb := audClients(t, g, "graph/frontend", 1)[0], audClients(t, g, "graph/batch", 1)[0]
	for i := range 5 {
		expectStatus(t, g, ca, http.MethodGet, fmt.Sprintf("%s/aud/page/%d", base, i), 200)
	}
	for i := range 3 {
		expectStatus(t, g, cb, http.MethodGet, fmt.Sprintf("%s/aud/report/%d", base, i), 200)
	}
	for i := range 2 {
		expectStatus(t, g, cb, http.MethodGet, fmt.Sprintf("%s/aud/secret/%d", base, i), 403)
	}
	audWaitAccounted(t, g, 10, 10*time.Second)

	text := audGraphSVGText(t, g)
	for _, id := range []string{a.String(), b.String(), g.id.String()} {
		if !strings.Contains(text, id) {
			t.Errorf("GET /graph: the drawing does not name %s; its text:\n%s", id, indent(text))
		}
	}

	code, out, errOut := runSvidgate(t, "audit", "graph", "-format", "json", g.audit)
	if code != 0 {
		t.Fatalf("audit graph -format json: exit %d\n%s", code, indent(errOut))
	}
	var graph struct {
		Nodes []string `json:"nodes"`
		Edges []struct {
			From     string `json:"from"`
			To       string `json:"to"`
			Requests int    `json:"requests"`
			Denied   int    `json:"denied"`
			Limited  int    `json:"limited"`
			Errors   int    `json:"errors"`
		} `json:"edges"`
	}
	if err := json.Unmarshal([]byte(out), &graph); err != nil {
		t.Fatalf("audit graph -format json: %v\n%s", err, indent(out))
	}
	slices.Sort(graph.Nodes)
	if want := []string{b.String(), a.String(), g.id.String()}; !slices.Equal(graph.Nodes, audSorted(want)) {
		t.Errorf("audit graph nodes %q, want %q", graph.Nodes, audSorted(want))
	}
	type counts struct{ requests, denied, limited, errors int }
	got := map[string]counts{}
	for _, e := range graph.Edges {
		got[e.From+" → "+e.To] = counts{e.Requests, e.Denied, e.Limited, e.Errors}
	}
	want := map[string]counts{
		a.String() + " → " + g.id.String(): {5, 0, 0, 0},
		b.String() + " → " + g.id.String(): {5, 2, 0, 0},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("audit graph edges %v, want %v\n%s", got, want, indent(out))
	}
}

// audGraphSVGText fetches g's /graph, fails the test unless it is a
// well-formed SVG document, and returns its text, one piece a line.
func audGraphSVGText(t testing.TB, g *gateway) string {
	t.Helper()
	resp, body, err := send(&http.Client{Timeout: 5 * time.Second}, http.MethodGet, g.adminURL("/graph"), nil)
	if err != nil {
		t.Fatal(g.diagnose(err))
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "image/svg+xml") {
		t.Fatalf("GET /graph: %d %q, want 200 image/svg+xml; body %.300q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	dec := xml.NewDecoder(bytes.NewReader(body))
	var root string
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("GET /graph: not well-formed XML: %v\n%.2000s", err, body)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
				if tok.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("GET /graph: root element in namespace %q, want the SVG namespace", tok.Name.Space)
				}
			}
		case xml.CharData:
			text.Write(tok)
			text.WriteByte('\n')
		}
	}
	if root != "svg" {
		t.Fatalf("GET /graph: root element %q, want svg", root)
	}
	return text.String()
}

func audSorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestAuditExternalRotation renames the trail away under load and sends
// SIGHUP, as logrotate's "create" method does: the gateway writes on in a
// new file, nothing is lost or duplicated, and the chain runs across the
// renamed files.
func TestAuditExternalRotation(t *testing.T) {
	tp := env.topology(t, "aud-hup")
	t.Parallel()
	const n, rotations = 3000, 3
	g := tp.gateway(t, "gw-aud-hup")
	clients := audClients(t, g, "hup/client", 2)
	base := "https://" + g.addr("aud-hup") + "/aud/hup/"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := audStartHammer(ctx, clients, 16, n, func(i int64) string { return base + strconv.FormatInt(i, 10) })
	var files []string
	for k := 1; k <= rotations; k++ {
		h.waitStarted(int64(k) * n / (rotations + 1))
		old := fmt.Sprintf("%s-%d", g.audit, k)
		if err := os.Rename(g.audit, old); err != nil {
			t.Fatal(err)
		}
		files = append(files, old)
		g.proc.signal(syscall.SIGHUP)
		// Until the reopen, records go on into the renamed file.
		if err := poll(10*time.Second, 10*time.Millisecond, func() error {
			if _, err := os.Stat(g.audit); err != nil {
				return err
			}
			return nil
		}); err != nil {
			t.Fatalf("no new %s after SIGHUP: %v", g.audit, g.diagnose(err))
		}
	}
	files = append(files, g.audit)
	h.allServedAndRecorded(t, g, n)
	audEachOnce(t, n, files...)
	var sizes []string
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() == 0 {
			t.Errorf("%s is empty: the rotations were meant to fall under load", f)
		}
		sizes = append(sizes, fmt.Sprintf("%s %d B", filepath.Base(f), fi.Size()))
	}
	audVerifyOK(t, n, files...)
	t.Logf("%d requests, %d renames + SIGHUP: %s", n, rotations, strings.Join(sizes, ", "))
}
