package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type memSink struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	fail   atomic.Bool
	syncs  atomic.Int32
	closed bool
}

func (m *memSink) Write(p []byte) (int, error) {
	if m.fail.Load() {
		return 0, errors.New("no space left on device")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.buf.Write(p)
}
func (m *memSink) Sync() error  { m.syncs.Add(1); return nil }
func (m *memSink) Close() error { m.closed = true; return nil }

func TestWriterWritesEveryRecordInOrder(t *testing.T) {
	sink := &memSink{}
	var written atomic.Int64
	w := NewWriter(sink, Options{QueueSize: 100000, Counters: Counters{Written: func(n int) { written.Add(int64(n)) }}})
	const n = 5000
	for i := range n {
		r := Record{ID: w.NextID(), Listener: "in", Status: i}
		if err := w.Enqueue(&r); err != nil {
			t.Fatalf("enqueue %d: %v", i, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !sink.closed {
		t.Error("sink not closed")
	}
	if written.Load() != n {
		t.Errorf("written counter = %d, want %d", written.Load(), n)
	}
	sc := bufio.NewScanner(&sink.buf)
	i := 0
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if r.Status != i || r.Schema != Schema {
			t.Fatalf("line %d: status %d schema %d, want %d and %d", i+1, r.Status, r.Schema, i, Schema)
		}
		i++
	}
	if i != n {
		t.Errorf("read %d lines, want %d", i, n)
	}
	if err := w.Enqueue(&Record{}); !errors.Is(err, ErrClosed) {
		t.Errorf("enqueue after close: %v, want ErrClosed", err)
	}
}

// Written plus dropped must equal enqueued, while the sink fails and after
// it recovers.
func TestWriterCountsFailedWritesAsDropped(t *testing.T) {
	sink := &memSink{}
	sink.fail.Store(true)
	var written, dropped, errs atomic.Int64
	w := NewWriter(sink, Options{QueueSize: 16, OnFailure: Drop, Counters: Counters{
		Written:     func(n int) { written.Add(int64(n)) },
		Dropped:     func(n int) { dropped.Add(int64(n)) },
		WriteErrors: func() { errs.Add(1) },
	}})
	settle := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for written.Load()+dropped.Load() != n {
			if time.Now().After(deadline) {
				t.Fatalf("written %d + dropped %d never reached %d", written.Load(), dropped.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	const failing = 20
	for i := range failing {
		if err := w.Enqueue(&Record{Listener: "in"}); err != nil {
			t.Fatal(err)
		}
		settle(int64(i + 1))
	}
	if dropped.Load() != failing || errs.Load() != failing || written.Load() != 0 {
		t.Fatalf("failing sink: written %d, dropped %d, errors %d; want 0, %d, %d", written.Load(), dropped.Load(), errs.Load(), failing, failing)
	}
	sink.fail.Store(false)
	for range 10 {
		if err := w.Enqueue(&Record{Listener: "in"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if written.Load() != 10 || dropped.Load() != failing {
		t.Errorf("after recovery: written %d, dropped %d; want 10, %d", written.Load(), dropped.Load(), failing)
	}
}

// A full queue refuses at once and counts the drop.
func TestWriterQueueFull(t *testing.T) {
	block := make(chan struct{})
	sink := &blockingSink{release: block}
	var dropped atomic.Int64
	w := NewWriter(sink, Options{QueueSize: 4, Counters: Counters{Dropped: func(n int) { dropped.Add(int64(n)) }}})
	refused := 0
	for range 100 {
		if err := w.Enqueue(&Record{}); errors.Is(err, ErrQueueFull) {
			refused++
		}
	}
	close(block)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if refused == 0 || int64(refused) != dropped.Load() {
		t.Errorf("refused %d, dropped counter %d: want both equal and > 0", refused, dropped.Load())
	}
}

type blockingSink struct {
	memSink
	release chan struct{}
}

func (b *blockingSink) Write(p []byte) (int, error) {
	<-b.release
	return b.memSink.Write(p)
}

func BenchmarkEnqueue(b *testing.B) {
	w := NewWriter(&memSink{}, Options{QueueSize: 1 << 16})
	defer w.Close()
	r := Record{Listener: "in", Mode: "inbound", Source: Source{SPIFFEID: "spiffe://example.org/web"},
		Request:  Request{Method: "GET", Host: "orders", Path: "/orders/1", Proto: "HTTP/2.0"},
		Decision: Decision{Result: "allow", Rule: "web-reads", Reason: "allowed by rule"}, Status: 200}
	b.ReportAllocs()
	for b.Loop() {
		_ = w.Enqueue(&r)
	}
}

// countingSink counts the writes it takes.
type countingSink struct {
	memSink
	writes atomic.Int32
}

func (c *countingSink) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.memSink.Write(p)
}

// Records arriving a little apart share writes: the writer waits up to
// maxLinger for company instead of writing each one on its own.
func TestWriterBatchesTrickle(t *testing.T) {
	sink := &countingSink{}
	w := NewWriter(sink, Options{})
	const n = 20
	for i := range n {
		r := sample(i)
		if err := w.Enqueue(&r); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Microsecond)
	}
	waitFor(t, "every record written", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return bytes.Count(sink.buf.Bytes(), []byte("\n")) == n
	})
	if got := sink.writes.Load(); got > n/2 {
		t.Errorf("%d records 200 µs apart took %d writes; want them batched (≤ %d)", n, got, n/2)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
