// Package audit holds svidgate's audit record, the writer that gets
// records from the request path to a sink without making requests wait on
// the disk, the file sink, and the readers behind svidgate audit.
//
// Requests hand a Record to Writer.Enqueue, which copies it into a bounded
// queue; in block mode Writer.Admit is asked first, and holds the record's
// place. One goroutine drains the queue, encodes the records as JSON Lines
// (AppendRecord), chains them (each record's chain is SHA-256 of the
// previous chain and its canonical bytes) and writes them in batches. File
// rotates, reopens and recovers from a torn last line; Verify checks a
// trail's chain; Graph aggregates who calls whom, for /graph. The record
// schema is documented in docs/AUDIT.md; it never holds a token or a key.
package audit
