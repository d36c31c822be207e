package integration

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// The topologies of the audit-trail tests (issue 5): one gateway each,
// one per test, so that each test knows every record of its trail. The
// topology, the gateway's listener and its SPIFFE ID path /gw/<name> are
// named alike; gw-aud-<x> is inbound to httpecho. Callers are minted SVIDs
// under spiffe://example.org/aud/<test>/…
//
//	gw-aud-load     aud-load     the 100,000-request run
//	gw-aud-tamper   aud-tamper   a small trail to edit, delete and swap lines of
//	gw-aud-block    aud-block    on_failure = "block", trail on a full disk (auditDisk)
//	                aud-block-grpc ──▶ grpcecho
//	gw-aud-drop     aud-drop     on_failure = "drop", trail on a full disk (auditDisk)
//	gw-aud-kill     aud-kill     killed with SIGKILL under load and restarted
//	gw-aud-rot      aud-rot      max_bytes = 64 KiB, keep = 1000, SIGHUP under load
//	gw-aud-hup      aud-hup      renamed away + SIGHUP under load (logrotate "create")
//	gw-aud-suggest  aud-suggest  broad policy, replaced by `policy suggest`'s output
//	gw-aud-graph    aud-graph    /graph and `audit graph`
const (
	audRotMaxBytes = 64 << 10
	audRotKeep     = 1000
)

func audID(path string) spiffeid.ID { return spiffeid.RequireFromPath(td, "/aud/"+path) }

// audPolicy lets every caller under /aud/ GET and POST under /aud/.
const audPolicy = `version = 1

[[rule]]
id      = "aud-any"
effect  = "allow"
mode    = "enforce"
callers = ["spiffe://example.org/aud/**"]
methods = ["GET", "POST"]
paths   = ["/aud/**"]
`

const audGRPCPolicy = `version = 1

[[rule]]
id      = "aud-grpc"
effect  = "allow"
mode    = "enforce"
callers = ["spiffe://example.org/aud/**"]
grpc    = ["/grpc.testing.TestService/UnaryCall"]
`

// audSuggestPolicy is as broad as a policy gets: the trail it produces is
// the evidence `policy suggest` narrows it down from.
const audSuggestPolicy = `version = 1

[[rule]]
id      = "anything-goes"
effect  = "allow"
mode    = "enforce"
callers = ["spiffe://example.org/**"]
methods = ["GET", "POST", "PUT", "DELETE"]
paths   = ["/**"]
`

// audGraphPolicy allows /aud/** and explicitly denies /aud/secret/**, so
// that the graph has denials to count.
const audGraphPolicy = `version = 1

[[rule]]
id      = "graph-secret"
effect  = "deny"
mode    = "enforce"
callers = ["spiffe://example.org/**"]
paths   = ["/aud/secret/**"]

[[rule]]
id      = "graph-any"
effect  = "allow"
mode    = "enforce"
callers = ["spiffe://example.org/aud/**"]
methods = ["GET"]
paths   = ["/aud/**"]
`

// auditDisk is where a full-disk test keeps its gateway's trail: a tmpfs
// of its own (1 MiB) that fill fills up with a filler file and free
// empties again, so that the gateway must recover by itself; or, where
// tmpfs cannot be mounted (not root) or SVIDGATE_IT_AUDIT_DEVFULL is set,
// a symlink that fill points at /dev/full and free at a new real file,
// each followed by SIGHUP (reopen).
type auditDisk struct {
	dir   string
	tmpfs bool
	path  string // the [audit] path the gateway is given
	swaps int    // devfull: trail files made so far
}

// audDisks are the disks of gw-aud-block and gw-aud-drop, made by their
// topologies.
var audDisks struct {
	sync.Mutex
	m map[string]*auditDisk
}

// audDisk returns the disk of the named gateway.
func audDisk(name string) *auditDisk {
	audDisks.Lock()
	defer audDisks.Unlock()
	return audDisks.m[name]
}

// audMakeDisk makes the disk of the named gateway: a tmpfs of its own
// (unmounted at teardown) or, failing that, the /dev/full symlink.
func (h *harness) audMakeDisk(name string) (*auditDisk, error) {
	d := &auditDisk{dir: filepath.Join(h.dir, "auditdisk", name)}
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return nil, err
	}
	d.path = filepath.Join(d.dir, "audit.jsonl")
	if os.Getenv("SVIDGATE_IT_AUDIT_DEVFULL") == "" && syscall.Mount("tmpfs", d.dir, "tmpfs", 0, "size=1m,mode=0755") == nil {
		d.tmpfs = true
		h.atTeardown(func() {
			if err := syscall.Unmount(d.dir, 0); err != nil {
				_ = syscall.Unmount(d.dir, syscall.MNT_DETACH)
			}
		})
	} else if err := d.point(d.nextTrail()); err != nil {
		return nil, err
	}
	audDisks.Lock()
	if audDisks.m == nil {
		audDisks.m = map[string]*auditDisk{}
	}
	audDisks.m[name] = d
	audDisks.Unlock()
	return d, nil
}

// nextTrail names a new real file for the devfull variant.
func (d *auditDisk) nextTrail() string {
	d.swaps++
	return filepath.Join(d.dir, fmt.Sprintf("trail-%d.jsonl", d.swaps))
}

// point makes the audit path a symlink to target, atomically.
func (d *auditDisk) point(target string) error {
	tmp := d.path + ".new"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, d.path)
}

func (d *auditDisk) kind() string {
	if d.tmpfs {
		return "1 MiB tmpfs"
	}
	return "symlink to /dev/full, SIGHUP"
}

func (d *auditDisk) filler() string { return filepath.Join(d.dir, "filler") }

// fill leaves no room for the trail of g.
func (d *auditDisk) fill(g *gateway) error {
	if !d.tmpfs {
		if err := d.point("/dev/full"); err != nil {
			return err
		}
		g.proc.signal(syscall.SIGHUP)
		return nil
	}
	f, err := os.OpenFile(d.filler(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for range 1 << 12 {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return err
		}
	}
	return errors.New("the tmpfs did not fill up")
}

// free gives the trail of g room again.
func (d *auditDisk) free(g *gateway) error {
	if !d.tmpfs {
		if err := d.point(d.nextTrail()); err != nil {
			return err
		}
		g.proc.signal(syscall.SIGHUP)
		return nil
	}
	return os.Remove(d.filler())
}

// files are the files that hold the trail, for `audit verify`.
func (d *auditDisk) files() []string {
	if d.tmpfs {
		return []string{d.path}
	}
	var out []string
	for i := 1; i <= d.swaps; i++ {
		p := filepath.Join(d.dir, fmt.Sprintf("trail-%d.jsonl", i))
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func init() {
	gw := func(name, policy, auditExtra string) func(h *harness) ([]*gateway, error) {
		return func(h *harness) ([]*gateway, error) {
			g, err := inboundGateway(h, name, "http://"+h.httpecho, policy)
			if err != nil {
				return nil, err
			}
			g.auditExtra = auditExtra
			return []*gateway{g}, nil
		}
	}
	defineTopology("aud-load", gw("aud-load", audPolicy, ""))
	defineTopology("aud-tamper", gw("aud-tamper", audPolicy, ""))
	defineTopology("aud-block", func(h *harness) ([]*gateway, error) {
		return audFullDiskGateway(h, "aud-block", "on_failure = \"block\"\nsync_interval = \"200ms\"\n")
	})
	defineTopology("aud-drop", func(h *harness) ([]*gateway, error) {
		return audFullDiskGateway(h, "aud-drop", "on_failure = \"drop\"\nsync_interval = \"200ms\"\n")
	})
	defineTopology("aud-kill", gw("aud-kill", audPolicy, "sync_interval = \"100ms\"\n"))
	defineTopology("aud-rot", gw("aud-rot", audPolicy, fmt.Sprintf("max_bytes = %d\nkeep = %d\n", audRotMaxBytes, audRotKeep)))
	defineTopology("aud-hup", gw("aud-hup", audPolicy, ""))
	defineTopology("aud-suggest", gw("aud-suggest", audSuggestPolicy, ""))
	defineTopology("aud-graph", gw("aud-graph", audGraphPolicy, ""))
}

// audFullDiskGateway is gw-<name> with its trail on a disk of its own
// (auditDisk); gw-aud-block also has a gRPC listener <name>-grpc.
func audFullDiskGateway(h *harness, name, auditExtra string) ([]*gateway, error) {
	disk, err := h.audMakeDisk("gw-" + name)
	if err != nil {
		return nil, err
	}
	g, err := inboundGateway(h, name, "http://"+h.httpecho, audPolicy)
	if err != nil {
		return nil, err
	}
	g.auditPath, g.auditExtra = disk.path, auditExtra
	if name == "aud-block" {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		g.listeners = append(g.listeners, listener{name: name + "-grpc", mode: "inbound", address: addr,
			upstream: "http://" + h.grpcecho, policy: "grpc.toml"})
		g.policies["grpc.toml"] = audGRPCPolicy
	}
	return []*gateway{g}, nil
}
