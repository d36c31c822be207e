package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
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

// Written plus dropped must equal enqueued even while the sink fails.
func TestWriterCountsFailedWritesAsDropped(t *testing.T) {
	sink := &memSink{}
	sink.fail.Store(true)
	var written, dropped, errs atomic.Int64
	w := NewWriter(sink, Options{QueueSize: 16, Counters: Counters{
		Written:     func(n int) { written.Add(int64(n)) },
		Dropped:     func(n int) { dropped.Add(int64(n)) },
		WriteErrors: func() { errs.Add(1) },
	}})
	const n = 2000
	for range n {
		_ = w.Enqueue(&Record{Listener: "in"})
	}
	sink.fail.Store(false)
	for range 10 {
		_ = w.Enqueue(&Record{Listener: "in"})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := written.Load() + dropped.Load(); got != n+10 {
		t.Errorf("written %d + dropped %d = %d, want %d", written.Load(), dropped.Load(), got, n+10)
	}
	if dropped.Load() == 0 || errs.Load() == 0 {
		t.Errorf("dropped %d, write errors %d: want both > 0", dropped.Load(), errs.Load())
	}
	if written.Load() == 0 {
		t.Error("nothing written after the sink recovered")
	}
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
