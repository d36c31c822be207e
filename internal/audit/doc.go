// Package audit holds svidgate's audit record and the writer that gets
// records from the request path to a sink without making requests wait on
// the disk.
//
// Requests hand a Record to Writer.Enqueue, which copies it into a bounded
// queue; one goroutine drains the queue, encodes the records as JSON Lines
// and writes them in batches. The record schema is documented in
// docs/AUDIT.md; it never holds a token or a key.
package audit
