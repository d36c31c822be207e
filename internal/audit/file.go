package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FileOptions configure a File sink.
type FileOptions struct {
	// MaxBytes rotates the file before a write would make it larger;
	// 0 never rotates. Files are cut between records only; a single
	// record larger than MaxBytes gets a file of its own.
	MaxBytes int64
	// Keep is how many rotated files are kept (PATH.1 the newest …
	// PATH.Keep the oldest); 0 keeps them all.
	Keep int
	Log  *slog.Logger
}

// File is a Sink appending JSON Lines to a file, with size-based rotation
// and Reopen for external rotation. It is safe for concurrent use: Reopen
// may be called from a signal handler while the writer writes.
type File struct {
	mu   sync.Mutex
	path string
	opts FileOptions
	f    *os.File
	size int64
	// regular is false for a device or pipe (/dev/stdout, /dev/full):
	// no size, no fsync.
	regular bool
	resume  Link
	torn    int64
	aside   string
}

// Open opens path for appending, creating it with mode 0600. A last line
// without its newline (the writer was killed mid-write) is moved to a
// file beside it, PATH-without-extension.torn-UNIXTIME, and cut off, so
// that the trail continues from the last complete record; Resume returns
// that record's link (or, for an empty file, the link of the last record
// of PATH.1).
func Open(path string, opts FileOptions) (*File, error) {
	if opts.MaxBytes < 0 || opts.Keep < 0 {
		return nil, fmt.Errorf("audit: max_bytes %d and keep %d must not be negative", opts.MaxBytes, opts.Keep)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	f := &File{path: path, opts: opts}
	if err := f.openLocked(); err != nil {
		return nil, err
	}
	if err := f.recover(); err != nil {
		f.f.Close()
		return nil, err
	}
	return f, nil
}

// Resume implements Resumer.
func (f *File) Resume() Link { return f.resume }

// Recovered reports what Open cut off a torn last line: how many bytes,
// and the file they were moved to ("" when nothing was torn).
func (f *File) Recovered() (bytes int64, aside string) { return f.torn, f.aside }

// Path is the file's name.
func (f *File) Path() string { return f.path }

func (f *File) openLocked() error {
	fh, err := os.OpenFile(f.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit: open %s: %w", f.path, err)
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return fmt.Errorf("audit: open %s: %w", f.path, err)
	}
	f.f, f.size, f.regular = fh, 0, st.Mode().IsRegular()
	if f.regular {
		f.size = st.Size()
	}
	return nil
}

// recover cuts a torn last line off and finds the link to continue from.
func (f *File) recover() error {
	if f.size == 0 {
		f.resume = lastLink(f.path+".1", f.opts.Log)
		return nil
	}
	last, end, err := lastLine(f.f, f.size)
	if err != nil {
		return fmt.Errorf("audit: reading the end of %s: %w", f.path, err)
	}
	if end < f.size {
		torn := make([]byte, f.size-end)
		if _, err := f.f.ReadAt(torn, end); err != nil {
			return fmt.Errorf("audit: reading the torn last line of %s: %w", f.path, err)
		}
		aside := strings.TrimSuffix(f.path, filepath.Ext(f.path)) + ".torn-" + strconv.FormatInt(time.Now().Unix(), 10)
		if err := appendFile(aside, torn); err != nil {
			return fmt.Errorf("audit: moving the torn last line of %s aside: %w", f.path, err)
		}
		if err := f.f.Truncate(end); err != nil {
			return fmt.Errorf("audit: cutting the torn last line off %s: %w", f.path, err)
		}
		if err := f.f.Sync(); err != nil {
			return fmt.Errorf("audit: %s: %w", f.path, err)
		}
		f.torn, f.aside, f.size = f.size-end, aside, end
		f.opts.Log.Warn("audit: the last line of the audit trail was incomplete (killed mid-write?); moved it aside",
			"file", f.path, "bytes", f.torn, "moved_to", aside)
	}
	if last == nil {
		f.resume = lastLink(f.path+".1", f.opts.Log)
		return nil
	}
	l, err := linkOf(last)
	if err != nil {
		f.opts.Log.Warn("audit: the last record of the audit trail carries no chain; a new chain starts", "file", f.path, "error", err.Error())
		return nil
	}
	f.resume = l
	return nil
}

// lastLink is the link of the last complete record of a rotated file, or
// the zero Link.
func lastLink(path string, log *slog.Logger) Link {
	fh, err := os.Open(path)
	if err != nil {
		return Link{}
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return Link{}
	}
	last, _, err := lastLine(fh, st.Size())
	if err != nil || last == nil {
		return Link{}
	}
	l, err := linkOf(last)
	if err != nil {
		log.Warn("audit: the last record of the rotated audit file carries no chain; a new chain starts", "file", path)
		return Link{}
	}
	return l
}

// lastLine returns the last complete line of the first size bytes of r
// (without its newline; nil if there is none) and the offset just past
// its newline.
func lastLine(r io.ReaderAt, size int64) ([]byte, int64, error) {
	for chunk := int64(64 << 10); ; chunk *= 2 {
		off := max(0, size-chunk)
		buf := make([]byte, size-off)
		if _, err := r.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, err
		}
		nl := bytes.LastIndexByte(buf, '\n')
		if nl < 0 {
			if off == 0 {
				return nil, 0, nil
			}
			continue
		}
		start := bytes.LastIndexByte(buf[:nl], '\n') + 1
		if start == 0 && off > 0 {
			continue
		}
		return buf[start:nl], off + int64(nl) + 1, nil
	}
}

// linkOf reads the seq and chain of one audit line.
func linkOf(line []byte) (Link, error) {
	canonical, chain, err := SplitChain(line)
	if err != nil {
		return Link{}, err
	}
	var head struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal(canonical, &head); err != nil {
		return Link{}, err
	}
	return Link{Seq: head.Seq, Chain: chain}, nil
}

func appendFile(path string, p []byte) error {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := fh.Write(p); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// Write appends whole lines, rotating first where MaxBytes says so. On an
// error, n counts the bytes of complete lines written; a partly written
// chunk is truncated away, so that a retry of p[n:] duplicates nothing.
func (f *File) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		if err := f.openLocked(); err != nil {
			return 0, err
		}
	}
	written := 0
	for len(p) > 0 {
		chunk := p
		if lim := f.opts.MaxBytes; lim > 0 && f.size+int64(len(p)) > lim {
			room := int(min(lim-f.size, int64(len(p))))
			cut := 0
			if room > 0 {
				cut = bytes.LastIndexByte(p[:room], '\n') + 1
			}
			if cut == 0 {
				if f.size > 0 {
					if err := f.rotateLocked(); err != nil {
						return written, err
					}
					continue
				}
				// A record larger than MaxBytes: a file of its own.
				if cut = bytes.IndexByte(p, '\n') + 1; cut == 0 {
					cut = len(p)
				}
			}
			chunk = p[:cut]
		}
		n, err := f.f.Write(chunk)
		if err != nil {
			if n > 0 {
				if terr := f.f.Truncate(f.size); terr != nil {
					f.opts.Log.Error("audit: cutting a partial write off failed; the file may hold a torn line", "file", f.path, "error", terr.Error())
				}
			}
			return written, fmt.Errorf("audit: write %s: %w", f.path, err)
		}
		f.size += int64(n)
		written += n
		p = p[n:]
	}
	return written, nil
}

// rotateLocked renames PATH.i to PATH.i+1, PATH to PATH.1, dropping what
// Keep does not keep, and opens a new PATH.
func (f *File) rotateLocked() error {
	if err := f.closeLocked(); err != nil {
		return err
	}
	name := func(i int) string { return f.path + "." + strconv.Itoa(i) }
	top := f.opts.Keep - 1
	if f.opts.Keep == 0 {
		for top = 0; ; top++ {
			if _, err := os.Lstat(name(top + 1)); err != nil {
				break
			}
		}
	} else if err := os.Remove(name(f.opts.Keep)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("audit: rotate: %w", err)
	}
	for i := top; i >= 1; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("audit: rotate: %w", err)
		}
	}
	if err := os.Rename(f.path, name(1)); err != nil {
		return fmt.Errorf("audit: rotate: %w", err)
	}
	if err := f.openLocked(); err != nil {
		return err
	}
	syncDir(filepath.Dir(f.path))
	f.opts.Log.Info("audit: rotated the audit trail", "file", f.path, "rotated_to", name(1))
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

func (f *File) closeLocked() error {
	if f.f == nil {
		return nil
	}
	var err error
	if f.regular {
		err = f.f.Sync()
	}
	err = errors.Join(err, f.f.Close())
	f.f = nil
	if err != nil {
		return fmt.Errorf("audit: close %s: %w", f.path, err)
	}
	return nil
}

// Reopen syncs and closes the file and opens PATH again (creating it):
// after an external tool renamed the file, writing continues in a new
// one, and the chain continues across them. Use logrotate's "create"
// method, not "copytruncate", which can lose or duplicate records.
func (f *File) Reopen() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.closeLocked(); err != nil {
		f.opts.Log.Warn("audit: closing the audit file before reopening it failed", "error", err.Error())
	}
	return f.openLocked()
}

// Sync implements Sink.
func (f *File) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return fmt.Errorf("audit: %s is not open", f.path)
	}
	if !f.regular {
		return nil
	}
	if err := f.f.Sync(); err != nil {
		return fmt.Errorf("audit: sync %s: %w", f.path, err)
	}
	return nil
}

// Close implements Sink.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closeLocked()
}
