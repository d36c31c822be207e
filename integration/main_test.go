package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// env is the shared test environment, set up once by TestMain.
var env *harness

var td = spiffeid.RequireTrustDomainFromString("example.org")

// Identities of the test clients: SVIDs minted by the SPIRE server.
var (
	idAllowed  = spiffeid.RequireFromPath(td, "/test/allowed")
	idStranger = spiffeid.RequireFromPath(td, "/test/stranger")
)

type harness struct {
	root   string // repository root
	dir    string // working directory of this run
	binDir string
	// svidgate is the freshly built gateway binary; run copies of it only.
	svidgate string
	spire    *spireEnv
	agentA   *spireAgent // serves every gateway but those of topologies with an agent of their own

	httpecho     string // host:port
	httpechoSock string // unix socket path
	grpcecho     string // host:port

	mu       sync.Mutex
	tops     map[string]*topology // started (or starting) topologies, by name
	gateways []*gateway           // every gateway a topology started, for teardown
	// stops ends what topologies started besides gateways (a Redis, a
	// tmpfs), in reverse order, at teardown, after the gateways.
	stops []func()
	// starting counts topology starts in flight: teardown waits for them
	// (each is bounded) so that it stops every process they start.
	starting sync.WaitGroup
}

// afterTeardown lets a test file check the files of the run once every
// process has stopped (logs complete, audit trails flushed); an error
// fails the run.
var afterTeardown []func(h *harness) error

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) (code int) {
	h, err := setup()
	defer func() {
		if failed := teardown(h); failed && code == 0 {
			code = 1
		}
		if env != nil {
			for _, check := range afterTeardown {
				if err := check(h); err != nil {
					fmt.Fprintf(os.Stderr, "integration: after the run: %v\n", err)
					code = 1
				}
			}
		}
		if h != nil && h.dir != "" {
			if code != 0 || os.Getenv("SVIDGATE_IT_KEEP") != "" {
				fmt.Fprintf(os.Stderr, "integration: working directory kept: %s\n", h.dir)
			} else {
				_ = os.RemoveAll(h.dir)
			}
		}
	}()
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: setup failed: %v\n", err)
		return 1
	}
	env = h
	return m.Run()
}

func setup() (*harness, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return nil, fmt.Errorf("repository root not found at %s: %w", root, err)
	}
	spireBin := os.Getenv("SVIDGATE_SPIRE_BIN")
	if spireBin == "" {
		spireBin = filepath.Join(root, "bin", "spire")
	}
	for _, b := range []string{"spire-server", "spire-agent"} {
		if fi, err := os.Stat(filepath.Join(spireBin, b)); err != nil || fi.Mode()&0o111 == 0 {
			return nil, fmt.Errorf("SPIRE binary %s missing.\n"+
				"  The integration tests need a real SPIRE server and agent (v1.13.3, pinned in spire/tools/go.mod).\n"+
				"  Build them once with `make spire` (into bin/spire/), or point SVIDGATE_SPIRE_BIN at a directory holding them.\n"+
				"  `make test` does this for you", filepath.Join(spireBin, b))
		}
	}

	dir, err := os.MkdirTemp("", "svidgate-it-")
	if err != nil {
		return nil, err
	}
	// The unix attestor reports resolved executable paths.
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		return nil, err
	}
	h := &harness{root: root, dir: dir, binDir: filepath.Join(dir, "bin"), tops: map[string]*topology{}}
	for _, d := range []string{h.binDir, filepath.Join(dir, "spire"), filepath.Join(dir, "logs"), filepath.Join(dir, "gw")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return h, err
		}
	}

	// Build while SPIRE starts.
	t0 := time.Now()
	var wg sync.WaitGroup
	var buildErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		buildErr = h.build()
	}()
	h.spire, err = startSPIREServer(spireBin, filepath.Join(root, "spire"), filepath.Join(dir, "spire"), td)
	if err == nil {
		h.agentA, err = h.spire.startAgent("agent-a")
	}
	wg.Wait()
	if err != nil {
		return h, fmt.Errorf("SPIRE: %w", err)
	}
	if buildErr != nil {
		return h, buildErr
	}
	if err := h.startBackends(); err != nil {
		return h, err
	}
	fmt.Fprintf(os.Stderr, "integration: built, started SPIRE and the backends in %v (race=%v, dir %s); topologies start as tests declare them\n",
		time.Since(t0).Round(100*time.Millisecond), raceEnabled, dir)
	return h, nil
}

// build compiles svidgate (with -race when the tests use it) and the sample services.
func (h *harness) build() error {
	targets := []struct {
		out, pkg string
		race     bool
	}{
		{"svidgate", "./cmd/svidgate", raceEnabled},
		{"httpecho", "./examples/services/httpecho", false},
		{"grpcecho", "./examples/services/grpcecho", false},
	}
	for _, tg := range targets {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		args := []string{"build"}
		if tg.race {
			args = append(args, "-race")
		}
		args = append(args, "-o", filepath.Join(h.binDir, tg.out), tg.pkg)
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = h.root
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			return fmt.Errorf("go %s (in %s): %v\n%s", strings.Join(args, " "), h.root, err, indent(string(out)))
		}
	}
	h.svidgate = filepath.Join(h.binDir, "svidgate")
	return nil
}

func (h *harness) logPath(name string) string { return filepath.Join(h.dir, "logs", name+".log") }

func (h *harness) startBackends() error {
	var err error
	if h.httpecho, err = freeAddr(); err != nil {
		return err
	}
	if h.grpcecho, err = freeAddr(); err != nil {
		return err
	}
	h.httpechoSock = filepath.Join(h.dir, "httpecho.sock")
	type backend struct{ name, bin, listen string }
	for _, b := range []backend{
		{"httpecho", "httpecho", h.httpecho},
		{"httpecho-unix", "httpecho", "unix://" + h.httpechoSock},
		{"grpcecho", "grpcecho", h.grpcecho},
	} {
		p, err := startProc(b.name, h.logPath(b.name), nil, filepath.Join(h.binDir, b.bin), "-listen", b.listen, "-name", b.name)
		if err != nil {
			return err
		}
		if err := poll(10*time.Second, 50*time.Millisecond, func() error {
			if p.exited() {
				return permanent(fmt.Errorf("exited: %v", p.err))
			}
			if strings.Contains(p.tail(5), `"listening"`) {
				return nil
			}
			return errors.New("not listening yet")
		}); err != nil {
			return fmt.Errorf("%s: %v\n%s", b.name, err, indent(p.tail(10)))
		}
	}
	return nil
}

// teardown stops everything the run started. It reports a failure when a
// gateway had died or did not exit 0 on SIGTERM, or when the log of any
// child process (gateways, SPIRE, services) holds a data race report.
func teardown(h *harness) (failed bool) {
	if h != nil {
		h.starting.Wait()
		h.reportTopologies()
		h.mu.Lock()
		gws, stops := slices.Clone(h.gateways), slices.Clone(h.stops)
		h.mu.Unlock()
		if stopGateways(gws) {
			failed = true
		}
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	killAll()
	if racyLogs() {
		failed = true
	}
	return failed
}

// stopGateways sends SIGTERM to every gateway at once (each drains for up
// to a second) and reports whether one had died or did not exit 0.
func stopGateways(gws []*gateway) (failed bool) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, g := range gws {
		wg.Go(func() {
			msg := ""
			switch {
			case g.proc.exited():
				msg = fmt.Sprintf("integration: gateway %s had ended before teardown (%v); log tail:\n%s\n", g.name, g.proc.err, indent(g.proc.tail(15)))
			case !g.proc.stop(syscall.SIGTERM, 20*time.Second):
				msg = fmt.Sprintf("integration: gateway %s did not exit within 20s of SIGTERM\n", g.name)
			case g.proc.exitCode() != 0:
				msg = fmt.Sprintf("integration: gateway %s exited %d on SIGTERM, want 0; log tail:\n%s\n", g.name, g.proc.exitCode(), indent(g.proc.tail(15)))
			}
			if msg != "" {
				mu.Lock()
				fmt.Fprint(os.Stderr, msg)
				failed = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed
}

// racyLogs reports whether the log of any process the run started holds a
// report of the race detector: the gateways are built with -race when the
// tests run with it, and a race in a process that exited 0 shows only there.
func racyLogs() (found bool) {
	procs.Lock()
	all := slices.Clone(procs.all)
	procs.Unlock()
	checked := map[string]bool{}
	for _, p := range all {
		if checked[p.log] {
			continue // a restarted process appends to the same log
		}
		checked[p.log] = true
		if b, err := os.ReadFile(p.log); err == nil && bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			fmt.Fprintf(os.Stderr, "integration: DATA RACE detected in %s, see %s\n", p.name, p.log)
			found = true
		}
	}
	return found
}

// get fetches url with a bounded time and decodes a JSON answer into v when v
// is not nil; it returns the status code.
func getJSON(c *http.Client, url string, v any) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			return resp.StatusCode, fmt.Errorf("GET %s: %d, body is not the expected JSON: %v: %.300q", url, resp.StatusCode, err, b)
		}
	}
	return resp.StatusCode, nil
}
