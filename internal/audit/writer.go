package audit

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrQueueFull is returned by Enqueue when the queue has no room.
var ErrQueueFull = errors.New("audit: queue full")

// ErrClosed is returned by Enqueue after Close.
var ErrClosed = errors.New("audit: writer closed")

// Sink is where encoded records go. Sync makes written records durable.
//
// The writer hands Write whole lines. A Write that fails should report in
// n how many bytes it did write, ending on a line boundary (File truncates
// a partial line away), so that a retry writes p[n:] and nothing twice.
type Sink interface {
	io.Writer
	Sync() error
	Close() error
}

// A Resumer is a Sink that already holds records; the writer continues
// the chain from Resume's link instead of starting a new trail.
type Resumer interface {
	Resume() Link
}

// A Reopener is a Sink that can reopen its file after an external tool
// has rotated it.
type Reopener interface {
	Reopen() error
}

// Counters are the writer's hooks into metrics; nil fields are skipped.
// Every record given to Enqueue is counted exactly once, as Written or as
// Dropped, so that written + dropped = records enqueued at all times
// (records still queued or being retried are in neither).
type Counters struct {
	Written     func(n int)
	Dropped     func(n int)
	WriteErrors func()
}

// FailureMode says what the writer does when the sink fails.
type FailureMode string

// The failure modes.
const (
	// Block keeps every record: a failed batch is retried, with backoff,
	// until the sink takes it, and meanwhile Healthy and Admit report
	// false so that requests are refused rather than served unaudited.
	Block FailureMode = "block"
	// Drop keeps traffic flowing: a batch the sink refuses is dropped and
	// counted, and the next record says how many were lost before it.
	Drop FailureMode = "drop"
)

// Defaults for the zero values of Options.
const (
	DefaultQueueSize    = 8192
	DefaultSyncInterval = time.Second
)

// Options configure a Writer.
type Options struct {
	QueueSize    int           // records buffered; default DefaultQueueSize
	SyncInterval time.Duration // how often written records are synced; default DefaultSyncInterval
	// OnFailure is Block (the default) or Drop.
	OnFailure FailureMode
	// CloseTimeout bounds how long Close keeps retrying a failing sink
	// in Block mode before it drops what is left; default 5s.
	CloseTimeout time.Duration
	// Graph, if set, is fed every record once it is written.
	Graph    *Graph
	Counters Counters
	Log      *slog.Logger
}

// Writer queues records and writes them from one goroutine.
type Writer struct {
	sink     Sink
	queue    chan Record
	opts     Options
	capacity int64
	done     chan struct{}
	abort    chan struct{} // closed CloseTimeout after Close
	abortMu  sync.Once
	closing  sync.Once
	closed   atomic.Bool
	mu       sync.RWMutex // held for reading by Enqueue, for writing by Close
	seq      atomic.Uint64
	idPrefix string

	used         atomic.Int64  // queue places taken: queued plus admitted records not yet enqueued
	writeFailing atomic.Bool   // the last write failed
	syncFailing  atomic.Bool   // the last sync failed
	lost         atomic.Uint64 // records dropped since the last one written, for dropped_before

	// Owned by the writer goroutine.
	chain  *chainer
	buf    []byte
	ends   []int        // end offset in buf of each record of the batch
	states []chainState // the chain after each record of the batch
	batch  []Record
	dirty  bool
	// abandoned counts records Close gave up on in Block mode; read
	// after the goroutine ends.
	abandoned int
}

// NewWriter starts a writer draining into sink. If sink is a Resumer, the
// chain continues from the records it holds.
func NewWriter(sink Sink, opts Options) *Writer {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = 5 * time.Second
	}
	if opts.OnFailure != Drop {
		opts.OnFailure = Block
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	var start Link
	if r, ok := sink.(Resumer); ok {
		start = r.Resume()
	}
	w := &Writer{
		sink:     sink,
		queue:    make(chan Record, opts.QueueSize),
		opts:     opts,
		capacity: int64(opts.QueueSize),
		done:     make(chan struct{}),
		abort:    make(chan struct{}),
		idPrefix: fmt.Sprintf("%08x", uint32(time.Now().UnixNano())),
		chain:    newChainer(start),
	}
	go w.run()
	return w
}

// NextID returns a record id unique within this process: a start-time
// prefix and a sequence number, cheap enough for every request.
func (w *Writer) NextID() string {
	var b [32]byte
	s := append(b[:0], w.idPrefix...)
	s = append(s, '-')
	s = strconv.AppendUint(s, w.seq.Add(1), 10)
	return string(s)
}

// Admit is called before a request is served. In Block mode it reports
// whether the trail can take the request's record: false while the sink
// is failing, the queue has no free place, or the writer is closed, and
// the request must then be refused (503). When it returns true it holds a
// queue place for r, which the Enqueue of r uses, so an admitted request
// is never served unaudited: every admitted record must be enqueued.
//
// In Drop mode Admit always returns true and holds nothing.
func (w *Writer) Admit(r *Record) bool {
	if w.opts.OnFailure != Block || r.admitted {
		return true
	}
	if w.closed.Load() || w.writeFailing.Load() || w.syncFailing.Load() || !w.take() {
		return false
	}
	r.admitted = true
	return true
}

// Healthy reports whether the trail is taking records: the sink's last
// write and sync succeeded, the queue has room, and the writer is open.
func (w *Writer) Healthy() bool {
	return !w.closed.Load() && !w.writeFailing.Load() && !w.syncFailing.Load() && w.used.Load() < w.capacity
}

// Mode returns the writer's failure mode.
func (w *Writer) Mode() FailureMode { return w.opts.OnFailure }

func (w *Writer) take() bool {
	if w.used.Add(1) > w.capacity {
		w.used.Add(-1)
		return false
	}
	return true
}

// Enqueue copies r into the queue without blocking. It fails when the
// queue is full or the writer is closed; the record is then counted as
// dropped. A record admitted by Admit always finds its place.
func (w *Writer) Enqueue(r *Record) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	admitted := r.admitted
	r.admitted = false
	if w.closed.Load() {
		if admitted {
			w.used.Add(-1)
		}
		w.drop(1)
		return ErrClosed
	}
	if !admitted && !w.take() {
		w.drop(1)
		return ErrQueueFull
	}
	r.Schema = Schema
	// A place is held, so the send cannot block: every queued record
	// holds one of capacity places.
	w.queue <- *r
	return nil
}

// Depth is the number of records waiting to be written.
func (w *Writer) Depth() int { return len(w.queue) }

// Reopen reopens the sink's file if it is a Reopener (SIGHUP, after an
// external tool rotated the file); the chain continues in the new file.
func (w *Writer) Reopen() error {
	if r, ok := w.sink.(Reopener); ok {
		return r.Reopen()
	}
	return nil
}

// Close stops accepting records, writes every queued one, syncs and
// closes the sink. In Block mode it retries a failing sink for at most
// CloseTimeout, then drops and counts what is left and says so.
func (w *Writer) Close() error {
	w.closing.Do(func() {
		w.mu.Lock()
		w.closed.Store(true)
		close(w.queue)
		w.mu.Unlock()
		t := time.AfterFunc(w.opts.CloseTimeout, w.stop)
		go func() { <-w.done; t.Stop() }()
	})
	<-w.done
	err := w.sink.Close()
	if n := w.abandoned; n > 0 {
		return errors.Join(fmt.Errorf("audit: %d records could not be written before close", n), err)
	}
	return err
}

func (w *Writer) stop() { w.abortMu.Do(func() { close(w.abort) }) }

func (w *Writer) drop(n int) {
	w.lost.Add(uint64(n))
	w.count(w.opts.Counters.Dropped, n)
}

func (w *Writer) run() {
	defer close(w.done)
	tick := time.NewTicker(w.opts.SyncInterval)
	defer tick.Stop()
	linger := time.NewTimer(maxLinger)
	linger.Stop()
	for {
		select {
		case r, ok := <-w.queue:
			if !ok {
				w.sync()
				return
			}
			// A record leaves the queue's count as it leaves the channel:
			// lingering in the batch, it holds no place in the queue.
			w.used.Add(-1)
			w.batch = append(w.batch[:0], r)
			linger.Reset(maxLinger)
		collect:
			for len(w.batch) < maxBatch {
				select {
				case r, ok := <-w.queue:
					if !ok {
						break collect // the next receive sees the close
					}
					w.used.Add(-1)
					w.batch = append(w.batch, r)
				case <-linger.C:
					break collect
				}
			}
			linger.Stop()
			w.writeBatch()
		case <-tick.C:
			w.sync()
		}
	}
}

// maxBatch bounds how many records one write carries.
const maxBatch = 1024

// maxLinger is how long a record may wait for others to share its write:
// one write syscall per few milliseconds instead of one per request keeps
// the writer's cost flat under load. Durability is unchanged: records are
// fsynced every sync_interval, and until written they are in memory either
// way.
const maxLinger = 5 * time.Millisecond

// writeBatch encodes and chains w.batch and hands it to the sink.
func (w *Writer) writeBatch() {
	before := w.chain.st
	w.buf, w.ends, w.states = w.buf[:0], w.ends[:0], w.states[:0]
	var reported uint64
	for i := range w.batch {
		r := &w.batch[i]
		r.DroppedBefore = 0
		if i == 0 {
			r.DroppedBefore = w.lost.Swap(0)
			reported = r.DroppedBefore
		}
		w.buf = w.chain.appendLine(w.buf, r)
		w.ends = append(w.ends, len(w.buf))
		w.states = append(w.states, w.chain.st)
	}
	n := w.writeAll()
	// k records are on the sink, the rest never will be.
	k := 0
	for k < len(w.ends) && w.ends[k] <= n {
		k++
	}
	if k < len(w.batch) {
		if k == 0 {
			w.chain.st = before
			w.lost.Add(reported)
		} else {
			w.chain.st = w.states[k-1]
		}
		w.drop(len(w.batch) - k)
		if w.opts.OnFailure == Block {
			w.abandoned += len(w.batch) - k
		}
	}
	if k > 0 {
		w.dirty = true
		w.count(w.opts.Counters.Written, k)
		if w.opts.Graph != nil {
			w.opts.Graph.AddAll(w.batch[:k])
		}
	}
	clear(w.batch)
}

// writeAll writes w.buf and returns how many bytes the sink took. In Drop
// mode it tries once; in Block mode until the sink takes everything or
// Close gives up.
func (w *Writer) writeAll() int {
	p, done := w.buf, 0
	backoff := 10 * time.Millisecond
	for {
		n, err := w.sink.Write(p)
		done += n
		if err == nil {
			if w.writeFailing.Swap(false) {
				w.opts.Log.Info("audit: the audit trail is being written again")
			}
			return done
		}
		p = p[n:]
		if !w.writeFailing.Swap(true) {
			w.opts.Log.Error("audit: writing the audit trail failed", "error", err.Error(), "on_failure", string(w.opts.OnFailure))
		}
		w.writeError()
		if w.opts.OnFailure != Block {
			return done
		}
		select {
		case <-time.After(backoff):
		case <-w.abort:
			return done
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (w *Writer) writeError() {
	if w.opts.Counters.WriteErrors != nil {
		w.opts.Counters.WriteErrors()
	}
}

func (w *Writer) sync() {
	if !w.dirty && !w.syncFailing.Load() {
		return
	}
	if err := w.sink.Sync(); err != nil {
		w.writeError()
		if !w.syncFailing.Swap(true) {
			w.opts.Log.Error("audit: syncing the audit trail failed", "error", err.Error())
		}
		return
	}
	w.syncFailing.Store(false)
	w.dirty = false
}

func (w *Writer) count(f func(int), n int) {
	if f != nil && n > 0 {
		f(n)
	}
}

// Stdout is a Sink writing to standard output; Close leaves it open.
type Stdout struct{ io.Writer }

// Sync implements Sink.
func (Stdout) Sync() error { return nil }

// Close implements Sink.
func (Stdout) Close() error { return nil }
