package audit

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type counts struct{ written, dropped, errors atomic.Int64 }

func (c *counts) hooks() Counters {
	return Counters{
		Written:     func(n int) { c.written.Add(int64(n)) },
		Dropped:     func(n int) { c.dropped.Add(int64(n)) },
		WriteErrors: func() { c.errors.Add(1) },
	}
}

func TestHundredThousandRecordsVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	f, err := Open(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var c counts
	w := NewWriter(f, Options{QueueSize: 4096, Counters: c.hooks()})
	const producers, each = 8, 12500
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				r := sample(p*each + i)
				r.ID = w.NextID()
				enqueueBlocking(t, w, &r)
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := countLines(t, path); got != producers*each {
		t.Fatalf("%d lines, want %d", got, producers*each)
	}
	if c.written.Load() != producers*each || c.dropped.Load() != 0 {
		t.Fatalf("written %d, dropped %d", c.written.Load(), c.dropped.Load())
	}
	res, err := Verify([]string{path}, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != producers*each || res.Last.Seq != producers*each {
		t.Fatalf("verified %d records, last seq %d", res.Records, res.Last.Seq)
	}
}

func writeTrail(t *testing.T, path string, n int) {
	t.Helper()
	f, err := Open(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(f, Options{})
	for i := range n {
		r := sample(i)
		enqueueBlocking(t, w, &r)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyNamesTheTamperedLine(t *testing.T) {
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.jsonl")
	writeTrail(t, orig, 20)
	lines := readLines(t, orig)
	tests := []struct {
		name   string
		edit   func([][]byte) [][]byte
		line   int
		kind   string
		detail string
	}{
		{"edited", func(l [][]byte) [][]byte {
			l[6] = []byte(strings.Replace(string(l[6]), `"GET"`, `"PUT"`, 1))
			return l
		}, 7, Changed, "seq 7"},
		{"edited chain", func(l [][]byte) [][]byte {
			s := string(l[9])
			l[9] = []byte(s[:len(s)-3] + "0\"}")
			if string(l[9]) == s {
				l[9] = []byte(s[:len(s)-3] + "1\"}")
			}
			return l
		}, 10, Changed, "seq 10"},
		{"deleted", func(l [][]byte) [][]byte { return append(l[:6:6], l[7:]...) }, 7, Removed, "seq 7"},
		{"deleted two", func(l [][]byte) [][]byte { return append(l[:6:6], l[8:]...) }, 7, Removed, "seq 7–8"},
		{"deleted first", func(l [][]byte) [][]byte { return l[1:] }, 1, Removed, "records 1–1"},
		{"swapped", func(l [][]byte) [][]byte { l[6], l[7] = l[7], l[6]; return l }, 7, Reordered, "seq 7 is at"},
		{"moved later", func(l [][]byte) [][]byte {
			m := append(append([][]byte{}, l[:3]...), l[4:15]...)
			return append(append(m, l[3]), l[15:]...)
		}, 4, Reordered, "seq 4 is at"},
		{"duplicated", func(l [][]byte) [][]byte {
			return append(append(append([][]byte{}, l[:5]...), l[4]), l[5:]...)
		}, 6, Reordered, "duplicate"},
		{"garbage", func(l [][]byte) [][]byte { l[11] = []byte(`{"hello":"world"}`); return l }, 12, Malformed, "chain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cp [][]byte
			for _, l := range lines {
				cp = append(cp, append([]byte(nil), l...))
			}
			file := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".jsonl")
			writeLines(t, file, tt.edit(cp))
			_, err := Verify([]string{file}, VerifyOptions{})
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("verify: %v, want a VerifyError", err)
			}
			if ve.Line != tt.line || ve.Kind != tt.kind || !strings.Contains(ve.Detail, tt.detail) {
				t.Fatalf("got %v; want line %d, %s, detail containing %q", ve, tt.line, tt.kind, tt.detail)
			}
		})
	}
	if res, err := Verify([]string{orig}, VerifyOptions{}); err != nil || res.Records != 20 {
		t.Fatalf("untouched trail: %v, %d records", err, res.Records)
	}
}

// A sink that fails like a full disk.
func TestBlockModeFailingSinkLosesNothing(t *testing.T) {
	sink := &memSink{}
	sink.fail.Store(true)
	var c counts
	w := NewWriter(sink, Options{QueueSize: 64, OnFailure: Block, Counters: c.hooks()})
	const n = 40
	for i := range n {
		r := sample(i)
		if !w.Admit(&r) {
			// The first batch already failed: requests are now refused.
			break
		}
		if err := w.Enqueue(&r); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the writer to report unhealthy", func() bool { return !w.Healthy() })
	if r := sample(99); w.Admit(&r) {
		t.Fatal("Admit returned true while the sink fails")
	}
	if c.dropped.Load() != 0 || c.written.Load() != 0 {
		t.Fatalf("while failing: written %d, dropped %d; want 0, 0", c.written.Load(), c.dropped.Load())
	}
	admitted := n - int(w.Depth()) // what is not queued any more is being retried
	_ = admitted
	sink.fail.Store(false)
	waitFor(t, "recovery", w.Healthy)
	for i := range 10 {
		r := sample(100 + i)
		enqueueBlocking(t, w, &r)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if c.dropped.Load() != 0 || c.errors.Load() == 0 {
		t.Fatalf("dropped %d, write errors %d; want 0 and > 0", c.dropped.Load(), c.errors.Load())
	}
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(file, sink.buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := Verify([]string{file}, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if int64(res.Records) != c.written.Load() || res.Records < 11 {
		t.Fatalf("verified %d records, written counter %d", res.Records, c.written.Load())
	}
}

// /dev/full fails every write with ENOSPC, as a full filesystem does. The
// audit path is a symlink to it; "freeing space" points the link at a
// real file and reopens (as SIGHUP does).
func TestBlockModeDevFullRecovers(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	if err := os.Symlink("/dev/full", path); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var c counts
	w := NewWriter(f, Options{QueueSize: 128, OnFailure: Block, Counters: c.hooks()})
	admitted := 0
	for i := range 100 {
		r := sample(i)
		if w.Admit(&r) {
			admitted++
			if err := w.Enqueue(&r); err != nil {
				t.Fatal(err)
			}
		}
		if i == 0 {
			waitFor(t, "the writer to report unhealthy", func() bool { return !w.Healthy() })
		}
	}
	if admitted == 0 || admitted == 100 {
		t.Fatalf("admitted %d of 100 while the disk is full; want the first and none after the failure", admitted)
	}
	real := filepath.Join(dir, "audit-real.jsonl")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, path); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "recovery", w.Healthy)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if c.dropped.Load() != 0 || c.written.Load() != int64(admitted) {
		t.Fatalf("written %d, dropped %d; want %d, 0", c.written.Load(), c.dropped.Load(), admitted)
	}
	if res, err := Verify([]string{real}, VerifyOptions{}); err != nil || res.Records != admitted {
		t.Fatalf("verify: %v, %d records, want %d", err, res.Records, admitted)
	}
}

func TestDropModeDevFullCountsEveryRecord(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	f, err := Open("/dev/full", FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var c counts
	w := NewWriter(f, Options{QueueSize: 64, OnFailure: Drop, Counters: c.hooks()})
	const producers, each = 4, 2500
	var wg sync.WaitGroup
	var refused atomic.Int64
	for range producers {
		wg.Go(func() {
			for i := range each {
				r := sample(i)
				if !w.Admit(&r) {
					t.Error("drop mode refused a request")
				}
				if w.Enqueue(&r) != nil {
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if c.written.Load() != 0 || c.dropped.Load() != producers*each {
		t.Fatalf("written %d, dropped %d; want 0, %d", c.written.Load(), c.dropped.Load(), producers*each)
	}
	if refused.Load() == 0 && c.errors.Load() == 0 {
		t.Fatal("nothing failed")
	}
}

// Written + dropped = enqueued at every moment the queue is empty, while
// the sink flaps; the records that were written still form one chain and
// say how many were lost between them.
func TestDropModeCountsExactlyAndChainHolds(t *testing.T) {
	sink := &memSink{}
	var c counts
	w := NewWriter(sink, Options{QueueSize: 32, OnFailure: Drop, Counters: c.hooks()})
	var attempts atomic.Int64
	stop := make(chan struct{})
	var flap sync.WaitGroup
	flap.Go(func() {
		for {
			select {
			case <-stop:
				sink.fail.Store(false)
				return
			case <-time.After(200 * time.Microsecond):
				sink.fail.Store(!sink.fail.Load())
			}
		}
	})
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			for i := range 5000 {
				r := sample(p*5000 + i)
				attempts.Add(1)
				_ = w.Enqueue(&r)
			}
		})
	}
	wg.Wait()
	close(stop)
	flap.Wait()
	// One record written after the last failure reports the last drops.
	for {
		r := sample(0)
		attempts.Add(1)
		if w.Enqueue(&r) == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := c.written.Load() + c.dropped.Load(); got != attempts.Load() {
		t.Fatalf("written %d + dropped %d = %d, want %d", c.written.Load(), c.dropped.Load(), got, attempts.Load())
	}
	if c.dropped.Load() == 0 || c.written.Load() == 0 {
		t.Fatalf("written %d, dropped %d: the test did not exercise both", c.written.Load(), c.dropped.Load())
	}
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(file, sink.buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := Verify([]string{file}, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var lost uint64
	_ = Read([]string{file}, func(_ Position, _ []byte, r *Record) error { lost += r.DroppedBefore; return nil })
	if int64(res.Records) != c.written.Load() || int64(lost) != c.dropped.Load() {
		t.Fatalf("%d records verify, written %d; dropped_before sums to %d, dropped %d", res.Records, c.written.Load(), lost, c.dropped.Load())
	}
}

func TestAdmitHoldsAPlace(t *testing.T) {
	release := make(chan struct{})
	w := NewWriter(&blockingSink{release: release}, Options{QueueSize: 4, OnFailure: Block})
	first := sample(0)
	enqueueBlocking(t, w, &first) // taken by the goroutine, stuck in Write
	waitFor(t, "the first record to leave the queue", func() bool { return w.Depth() == 0 })
	var admitted []Record
	for i := range 4 {
		r := sample(i + 1)
		if !w.Admit(&r) {
			t.Fatalf("admit %d refused with free places", i)
		}
		admitted = append(admitted, r)
	}
	if r := sample(9); w.Admit(&r) {
		t.Fatal("admitted a fifth record into a queue of 4")
	}
	if r := sample(10); !errors.Is(w.Enqueue(&r), ErrQueueFull) {
		t.Fatal("an unadmitted record took a held place")
	}
	for i := range admitted {
		if err := w.Enqueue(&admitted[i]); err != nil {
			t.Fatalf("admitted record %d: %v", i, err)
		}
	}
	close(release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTornLastLineIsCutOffAndTheChainContinues(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	writeTrail(t, path, 100)
	b, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(b), "\n")
	half := lines[50][:len(lines[50])/2]
	fh, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	fh.WriteString(half)
	fh.Close()
	if _, err := Verify([]string{path}, VerifyOptions{}); err != nil {
		t.Fatalf("a torn last line alone should verify (as incomplete): %v", err)
	}

	f, err := Open(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, aside := f.Recovered()
	if n != int64(len(half)) || aside == "" {
		t.Fatalf("recovered %d bytes to %q, want %d", n, aside, len(half))
	}
	if got, _ := os.ReadFile(aside); string(got) != half {
		t.Fatalf("aside file holds %q", got)
	}
	if l := f.Resume(); l.Seq != 100 {
		t.Fatalf("resume at %+v, want seq 100", l)
	}
	w := NewWriter(f, Options{})
	for i := range 50 {
		r := sample(200 + i)
		enqueueBlocking(t, w, &r)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := Verify([]string{path}, VerifyOptions{})
	if err != nil || res.Records != 150 || res.Incomplete != "" {
		t.Fatalf("verify after recovery: %v, %+v", err, res)
	}
}

// The helper process of TestKillNineUnderLoad: writes records until it is
// killed.
func TestHelperWriteForever(t *testing.T) {
	path := os.Getenv("AUDIT_HELPER_FILE")
	if path == "" {
		t.Skip("helper process only")
	}
	f, err := Open(path, FileOptions{MaxBytes: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(f, Options{SyncInterval: 10 * time.Millisecond})
	for i := 0; ; i++ {
		r := sample(i)
		enqueueBlocking(t, w, &r)
	}
}

func TestKillNineUnderLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriteForever$")
		cmd.Env = append(os.Environ(), "AUDIT_HELPER_FILE="+path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the helper to write", func() bool {
			st, err := os.Stat(path + ".1")
			return err == nil && st.Size() > 0 && round == 0 || err == nil && round > 0 && func() bool {
				st2, err := os.Stat(path + "." + fmt.Sprint(round+1))
				return err == nil && st2.Size() > 0
			}()
		})
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
	}
	f, err := Open(path, FileOptions{MaxBytes: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(f, Options{})
	for i := range 10 {
		r := sample(i)
		enqueueBlocking(t, w, &r)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files := trailFiles(t, dir)
	res, err := Verify(files, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if uint64(res.Records) != res.Last.Seq || res.Records < 10 {
		t.Fatalf("%d records, last seq %d", res.Records, res.Last.Seq)
	}
	t.Logf("%d records in %d files survive three kill -9", res.Records, len(files))
}

func TestRotationUnderLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	f, err := Open(path, FileOptions{MaxBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var c counts
	w := NewWriter(f, Options{QueueSize: 512, Counters: c.hooks()})
	const producers, each = 4, 5000
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				r := sample(p*each + i)
				enqueueBlocking(t, w, &r)
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files := trailFiles(t, dir)
	if len(files) < 10 {
		t.Fatalf("only %d files: rotation did not happen", len(files))
	}
	for _, file := range files {
		if st, _ := os.Stat(file); st.Size() > 64<<10 {
			t.Errorf("%s is %d bytes, more than max_bytes", file, st.Size())
		}
	}
	res, err := Verify(files, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != producers*each || countLines(t, files...) != producers*each {
		t.Fatalf("%d records verify, %d lines, want %d", res.Records, countLines(t, files...), producers*each)
	}
}

// External rotation (logrotate's create method): rename, then SIGHUP,
// here Reopen, while records keep coming.
func TestReopenUnderLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	f, err := Open(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(f, Options{QueueSize: 256})
	const producers, each = 4, 5000
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				r := sample(p*each + i)
				enqueueBlocking(t, w, &r)
			}
		})
	}
	done := make(chan struct{})
	var rot sync.WaitGroup
	rot.Go(func() {
		for n := 1; ; n++ {
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if err := os.Rename(path, fmt.Sprintf("%s-%04d", path, n)); err != nil {
				t.Error(err)
				return
			}
			if err := w.Reopen(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	close(done)
	rot.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files := trailFiles(t, dir)
	res, err := Verify(files, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != producers*each {
		t.Fatalf("%d records verify in %d files, want %d", res.Records, len(files), producers*each)
	}
}

func TestRetentionKeepsNFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	f, err := Open(path, FileOptions{MaxBytes: 16 << 10, Keep: 3})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(f, Options{})
	for i := range 2000 {
		r := sample(i)
		enqueueBlocking(t, w, &r)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files := trailFiles(t, dir)
	if len(files) != 4 {
		t.Fatalf("files %v, want the current one and 3 rotated", files)
	}
	if _, err := Verify(files, VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "-partial") {
		t.Fatalf("verify without -partial: %v", err)
	}
	res, err := Verify(files, VerifyOptions{Partial: true})
	if err != nil || res.Last.Seq != 2000 {
		t.Fatalf("verify -partial: %v, %+v", err, res)
	}
}

func BenchmarkWriterThroughput(b *testing.B) {
	path := filepath.Join(b.TempDir(), "audit.jsonl")
	f, err := Open(path, FileOptions{MaxBytes: 256 << 20})
	if err != nil {
		b.Fatal(err)
	}
	w := NewWriter(f, Options{QueueSize: 8192})
	r := sample(1)
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		enqueueBlocking(b, w, &r)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

func BenchmarkAdmitEnqueue(b *testing.B) {
	w := NewWriter(&memSink{}, Options{QueueSize: 1 << 16, OnFailure: Block})
	defer w.Close()
	r := sample(1)
	b.ReportAllocs()
	for b.Loop() {
		if w.Admit(&r) {
			_ = w.Enqueue(&r)
		}
	}
}
