package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// listener is one [[listener]] of a gateway.toml.
type listener struct {
	name       string
	mode       string // inbound | outbound
	address    string
	upstream   string
	policy     string // inbound: file name in the gateway's directory
	upstreamID spiffeid.ID
	extra      string // more keys of the [[listener]] table, as TOML lines
}

// gateway is one svidgate process with its own identity: its own copy of the
// binary, selected by a unix:path entry.
type gateway struct {
	name      string
	id        spiffeid.ID
	agent     *spireAgent
	ttl       time.Duration // X509-SVID lifetime of its entry; 0: the server's default
	listeners []listener
	policies  map[string]string // policy file name → content
	extra     string            // more tables of gateway.toml (e.g. [ratelimit]), as TOML
	// auditPath, when set, is the [audit] path (absolute) instead of
	// audit.jsonl in the gateway's directory; auditExtra holds more keys
	// of the [audit] table, as TOML lines.
	auditPath, auditExtra string

	dir    string
	bin    string
	config string
	admin  string // host:port
	audit  string

	proc *proc
	err  error // why the last start did not make it ready (waitReady)
}

// addr returns the address of the named listener.
func (g *gateway) addr(name string) string {
	for _, l := range g.listeners {
		if l.name == name {
			return l.address
		}
	}
	panic("no listener " + name + " on " + g.name)
}

func (g *gateway) adminURL(path string) string { return "http://" + g.admin + path }

// gatewayTOML renders the gateway.toml of g, as documented in docs/CONFIG.md.
func (g *gateway) gatewayTOML(initialTimeout string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "shutdown_timeout = %q\n\n", "5s")
	fmt.Fprintf(&b, "[identity]\nsocket = %q\ninitial_timeout = %q\n\n", g.agent.workloadSocket(), initialTimeout)
	fmt.Fprintf(&b, "[log]\nlevel = %q\nformat = %q\n\n", "info", "json")
	fmt.Fprintf(&b, "[admin]\naddress = %q\n\n", g.admin)
	auditPath := "audit.jsonl"
	if g.auditPath != "" {
		auditPath = g.auditPath
	}
	fmt.Fprintf(&b, "[audit]\npath = %q\n%s", auditPath, g.auditExtra)
	for _, l := range g.listeners {
		fmt.Fprintf(&b, "\n[[listener]]\nname = %q\nmode = %q\naddress = %q\nupstream = %q\n", l.name, l.mode, l.address, l.upstream)
		if l.policy != "" {
			fmt.Fprintf(&b, "policy = %q\n", l.policy)
		}
		if !l.upstreamID.IsZero() {
			fmt.Fprintf(&b, "upstream_spiffe_id = %q\n", l.upstreamID.String())
		}
		b.WriteString(l.extra)
	}
	if g.extra != "" {
		b.WriteString("\n" + g.extra + "\n")
	}
	return b.String()
}

// prepare creates the gateway's directory, binary copy, config and policies.
func (h *harness) prepare(g *gateway, initialTimeout string) error {
	g.dir = filepath.Join(h.dir, "gw", g.name)
	if err := os.MkdirAll(g.dir, 0o755); err != nil {
		return err
	}
	g.bin = filepath.Join(g.dir, "svidgate")
	if err := copyFile(h.svidgate, g.bin); err != nil {
		return err
	}
	if g.admin == "" {
		var err error
		if g.admin, err = freeAddr(); err != nil {
			return err
		}
	}
	for name, content := range g.policies {
		if err := os.WriteFile(filepath.Join(g.dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	g.config = filepath.Join(g.dir, "gateway.toml")
	g.audit = filepath.Join(g.dir, "audit.jsonl")
	if g.auditPath != "" {
		g.audit = g.auditPath
	}
	return os.WriteFile(g.config, []byte(g.gatewayTOML(initialTimeout)), 0o644)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// launch starts the gateway process.
func (h *harness) launch(g *gateway) error {
	p, err := startProc(g.name, h.logPath(g.name), nil, g.bin, "run", "-config", g.config)
	if err != nil {
		return err
	}
	g.proc = p
	return nil
}

// waitReady waits until /readyz answers 200 and /v1/status names the
// expected SPIFFE ID; it records the outcome in g.err.
func (g *gateway) waitReady(timeout time.Duration) {
	c := &http.Client{Timeout: 2 * time.Second}
	err := poll(timeout, 100*time.Millisecond, func() error {
		if g.proc.exited() {
			return permanent(fmt.Errorf("exited with %v", g.proc.err))
		}
		code, err := getJSON(c, g.adminURL("/readyz"), nil)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("/readyz: %d", code)
		}
		return nil
	})
	if err == nil {
		var st gwStatus
		if _, err = getJSON(c, g.adminURL("/v1/status"), &st); err == nil && st.SPIFFEID != g.id.String() {
			err = fmt.Errorf("/v1/status: spiffe_id %q, want %q (is the unix:path entry wrong?)", st.SPIFFEID, g.id)
		}
	}
	if err != nil {
		g.err = fmt.Errorf("gateway %s (%s) not ready within %v: %v\nconfig %s, log %s:\n%s",
			g.name, g.id, timeout, err, g.config, g.proc.log, indent(g.proc.tail(25)))
	}
}

// diagnose adds to err what became of the gateway process, if it ended.
func (g *gateway) diagnose(err error) error {
	if g.proc != nil && g.proc.wait(300*time.Millisecond) {
		return permanent(fmt.Errorf("%w\ngateway %s has exited (%v); log %s:\n%s", err, g.name, g.proc.err, g.proc.log, indent(g.proc.tail(25))))
	}
	return err
}

// restart stops a running gateway with SIGTERM, which it must survive with
// exit code 0, and starts it again (relaunch). Use it only on a gateway no
// other test uses at the same time.
func (h *harness) restart(g *gateway, timeout time.Duration) error {
	if !g.proc.stop(syscall.SIGTERM, 20*time.Second) {
		return fmt.Errorf("gateway %s did not exit within 20s of SIGTERM; log %s:\n%s", g.name, g.proc.log, indent(g.proc.tail(15)))
	}
	if c := g.proc.exitCode(); c != 0 {
		return fmt.Errorf("gateway %s exited %d on SIGTERM, want 0; log %s:\n%s", g.name, c, g.proc.log, indent(g.proc.tail(15)))
	}
	return h.relaunch(g, timeout)
}

// relaunch starts a gateway that has ended again, from the same binary and
// config (same identity, ports and audit file), and waits up to timeout
// for it to be ready. Teardown already knows the gateway.
func (h *harness) relaunch(g *gateway, timeout time.Duration) error {
	if !g.proc.exited() {
		return fmt.Errorf("gateway %s still runs", g.name)
	}
	g.err = nil
	if err := h.launch(g); err != nil {
		return err
	}
	g.waitReady(timeout)
	return g.err
}

// gwStatus is the JSON of GET /v1/status.
type gwStatus struct {
	SPIFFEID      string   `json:"spiffe_id"`
	SVIDExpiresAt string   `json:"svid_expires_at"`
	SVIDSerial    string   `json:"svid_serial"`
	TrustDomains  []string `json:"trust_domains"`
	Listeners     []struct {
		Name    string `json:"name"`
		Mode    string `json:"mode"`
		Address string `json:"address"`
		Policy  *struct {
			File       string          `json:"file"`
			SHA256     string          `json:"sha256"`
			Rules      json.RawMessage `json:"rules"`
			LastReload *struct {
				Time   string `json:"time"`
				Result string `json:"result"`
				Error  string `json:"error"`
			} `json:"last_reload"`
		} `json:"policy"`
	} `json:"listeners"`
}

func (g *gateway) status() (*gwStatus, error) {
	var st gwStatus
	code, err := getJSON(&http.Client{Timeout: 5 * time.Second}, g.adminURL("/v1/status"), &st)
	if err != nil {
		return nil, g.diagnose(err)
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s /v1/status: %d", g.name, code)
	}
	if st.SVIDSerial == "" {
		return nil, fmt.Errorf("%s /v1/status: empty svid_serial", g.name)
	}
	return &st, nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
