package reload

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/svidgate/svidgate/policy"
)

// Result is the outcome of the last load attempt.
type Result struct {
	Time  time.Time `json:"time"`
	OK    bool      `json:"-"`
	Error string    `json:"error,omitempty"`
}

// Holder holds the enforcing policy of one file.
type Holder struct {
	file    string
	current atomic.Pointer[policy.Policy]
	log     *slog.Logger
	// OnResult, if set, is called after every load attempt with the policy
	// enforcing afterwards (never nil) and the load error, if any.
	OnResult func(p *policy.Policy, err error)

	mu   sync.Mutex // serializes loads
	last Result
}

// New loads file and returns a holder enforcing it. A file that does not
// load is an error here: there is no last good policy to fall back on.
func New(file string, log *slog.Logger) (*Holder, error) {
	p, err := policy.Load(file)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Holder{file: file, log: log}
	h.current.Store(p)
	h.last = Result{Time: time.Now(), OK: true}
	return h, nil
}

// Policy returns the enforcing policy. It never returns nil.
func (h *Holder) Policy() *policy.Policy { return h.current.Load() }

// File is the policy file's path.
func (h *Holder) File() string { return h.file }

// Last returns the outcome of the most recent load attempt.
func (h *Holder) Last() Result {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// Reload loads the file again and swaps it in if it loads. An unchanged
// file (same SHA-256) is not swapped but still reports success.
func (h *Holder) Reload() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, err := policy.Load(h.file)
	h.last = Result{Time: time.Now(), OK: err == nil}
	if err != nil {
		p = h.current.Load()
		h.last.Error = err.Error()
		h.log.Error("policy reload failed; the last good policy stays in force",
			"file", h.file, "enforcing_sha256", h.current.Load().SHA256(), "error", err.Error())
	} else if old := h.current.Load(); old.SHA256() != p.SHA256() {
		h.current.Store(p)
		h.log.Info("policy reloaded", "file", h.file, "sha256", p.SHA256(), "rules", p.Rules())
	} else {
		p = old
	}
	if h.OnResult != nil {
		h.OnResult(p, err)
	}
	return err
}

// debounce gathers the events of one editor save or one rename into one
// reload.
const debounce = 100 * time.Millisecond

// Watch reloads the policy whenever its directory reports a change that may
// concern the file, until ctx ends. It watches the directory, not the file,
// because an atomic rename or a symlink swap replaces the inode a file
// watch would be attached to.
func (h *Holder) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	dir := filepath.Dir(h.file)
	if err := w.Add(dir); err != nil {
		w.Close()
		return err
	}
	// A symlinked file may point into another directory; watch that too.
	if target, err := filepath.EvalSymlinks(h.file); err == nil && filepath.Dir(target) != dir {
		_ = w.Add(filepath.Dir(target))
	}
	go func() {
		defer w.Close()
		var timer *time.Timer
		fire := make(chan struct{}, 1)
		// Where the file points, resolved again only after a change
		// that concerned it: events about other files in the directory
		// (an audit trail written there, say) then cost no syscalls.
		target, _ := filepath.EvalSymlinks(h.file)
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if ev.Op == fsnotify.Chmod || !h.concerns(ev.Name, target) {
					continue
				}
				if timer == nil {
					timer = time.AfterFunc(debounce, func() {
						select {
						case fire <- struct{}{}:
						default:
						}
					})
				} else {
					timer.Reset(debounce)
				}
			case <-fire:
				target, _ = filepath.EvalSymlinks(h.file)
				if _, err := os.Stat(h.file); err != nil {
					// Mid-swap, or removed: keep enforcing and wait for
					// the next event.
					continue
				}
				_ = h.Reload()
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				h.log.Warn("policy file watch error", "file", h.file, "error", err.Error())
			}
		}
	}()
	return nil
}

// concerns reports whether a change to name may change the file: the file
// itself, target (what it last pointed to, "" if unknown), or a ConfigMap's
// "..data" links.
func (h *Holder) concerns(name, target string) bool {
	name = filepath.Clean(name)
	return name == filepath.Clean(h.file) || strings.HasPrefix(filepath.Base(name), "..") ||
		(target != "" && name == target)
}
