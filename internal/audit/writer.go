package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ErrQueueFull is returned by Enqueue when the queue has no room.
var ErrQueueFull = errors.New("audit: queue full")

// ErrClosed is returned by Enqueue after Close.
var ErrClosed = errors.New("audit: writer closed")

// Sink is where encoded records go. Sync makes written records durable.
type Sink interface {
	io.Writer
	Sync() error
	Close() error
}

// Counters are the writer's hooks into metrics; nil fields are skipped.
type Counters struct {
	Written     func(n int)
	Dropped     func(n int)
	WriteErrors func()
}

// Options configure a Writer.
type Options struct {
	QueueSize    int           // records buffered; default 8192
	SyncInterval time.Duration // how often written records are synced; default 1s
	Counters     Counters
	Log          *slog.Logger
}

// Writer queues records and writes them from one goroutine.
type Writer struct {
	sink     Sink
	queue    chan Record
	opts     Options
	done     chan struct{}
	closing  sync.Once
	closed   atomic.Bool
	mu       sync.RWMutex // held for reading by Enqueue, for writing by Close
	seq      atomic.Uint64
	idPrefix string
}

// NewWriter starts a writer draining into sink.
func NewWriter(sink Sink, opts Options) *Writer {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 8192
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	w := &Writer{
		sink:     sink,
		queue:    make(chan Record, opts.QueueSize),
		opts:     opts,
		done:     make(chan struct{}),
		idPrefix: fmt.Sprintf("%08x", uint32(time.Now().UnixNano())),
	}
	go w.run()
	return w
}

// NextID returns a record id unique within this process: a start-time
// prefix and a sequence number, cheap enough for every request.
func (w *Writer) NextID() string {
	return w.idPrefix + "-" + fmt.Sprint(w.seq.Add(1))
}

// Enqueue copies r into the queue without blocking. It fails when the queue
// is full or the writer is closed; the record is then counted as dropped.
func (w *Writer) Enqueue(r *Record) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed.Load() {
		w.count(w.opts.Counters.Dropped, 1)
		return ErrClosed
	}
	r.Schema = Schema
	select {
	case w.queue <- *r:
		return nil
	default:
		w.count(w.opts.Counters.Dropped, 1)
		return ErrQueueFull
	}
}

// Depth is the number of records waiting to be written.
func (w *Writer) Depth() int { return len(w.queue) }

// Close stops accepting records, writes every queued one, syncs and closes
// the sink.
func (w *Writer) Close() error {
	w.closing.Do(func() {
		w.mu.Lock()
		w.closed.Store(true)
		close(w.queue)
		w.mu.Unlock()
	})
	<-w.done
	return w.sink.Close()
}

func (w *Writer) run() {
	defer close(w.done)
	var batch bytes.Buffer
	enc := json.NewEncoder(&batch)
	enc.SetEscapeHTML(false)
	tick := time.NewTicker(w.opts.SyncInterval)
	defer tick.Stop()
	dirty := false
	for {
		select {
		case r, ok := <-w.queue:
			if !ok {
				w.sync(&dirty)
				return
			}
			// This record and whatever else is queued already go out as
			// one write.
			n := w.encode(enc, &r)
			for drained := false; !drained && n < maxBatch; {
				select {
				case r, ok := <-w.queue:
					if !ok {
						drained = true
						continue
					}
					n += w.encode(enc, &r)
				default:
					drained = true
				}
			}
			w.write(batch.Bytes(), n)
			batch.Reset()
			dirty = true
		case <-tick.C:
			w.sync(&dirty)
		}
	}
}

// maxBatch bounds how many records one write carries.
const maxBatch = 1024

// write hands one batch of n records to the sink. A failed batch is counted
// as dropped, so that written + dropped always equals records enqueued.
func (w *Writer) write(p []byte, n int) {
	if n == 0 {
		return
	}
	if _, err := w.sink.Write(p); err != nil {
		w.failed("write", err)
		w.count(w.opts.Counters.Dropped, n)
		return
	}
	w.count(w.opts.Counters.Written, n)
}

func (w *Writer) sync(dirty *bool) {
	if !*dirty {
		return
	}
	if err := w.sink.Sync(); err != nil {
		w.failed("sync", err)
		return
	}
	*dirty = false
}

func (w *Writer) encode(enc *json.Encoder, r *Record) int {
	if err := enc.Encode(r); err != nil {
		w.opts.Log.Error("audit: encoding a record failed", "error", err.Error())
		w.count(w.opts.Counters.Dropped, 1)
		return 0
	}
	return 1
}

func (w *Writer) failed(op string, err error) {
	if w.opts.Counters.WriteErrors != nil {
		w.opts.Counters.WriteErrors()
	}
	w.opts.Log.Error("audit: "+op+" of the audit trail failed", "error", err.Error())
}

func (w *Writer) count(f func(int), n int) {
	if f != nil && n > 0 {
		f(n)
	}
}

// File is a Sink appending to a file.
type File struct{ *os.File }

// OpenFile opens path for appending, creating it with mode 0600.
func OpenFile(path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	return &File{f}, nil
}

// Stdout is a Sink writing to standard output; Close leaves it open.
type Stdout struct{ io.Writer }

// Sync implements Sink.
func (Stdout) Sync() error { return nil }

// Close implements Sink.
func (Stdout) Close() error { return nil }
