package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// spireEnv is a SPIRE server with its agents, configured from the templates
// in spire/ that the demo uses too.
type spireEnv struct {
	bin       string // directory holding spire-server and spire-agent
	templates string // spire/ of the repository
	dir       string
	port      int
	td        spiffeid.TrustDomain
	server    *proc

	mu     sync.Mutex
	agents map[string]*spireAgent
	minted map[string]*mintedSVID
}

type spireAgent struct {
	name   string
	nodeID spiffeid.ID
	conf   string
	sock   string
	proc   *proc
}

type mintedSVID struct {
	svid   *x509svid.SVID
	bundle *x509bundle.Bundle
}

func (s *spireEnv) serverSock() string { return filepath.Join(s.dir, "server.sock") }

func (s *spireEnv) render(tmpl, agent string) (string, error) {
	b, err := os.ReadFile(filepath.Join(s.templates, tmpl+".conf.tmpl"))
	if err != nil {
		return "", err
	}
	r := strings.NewReplacer("@DIR@", s.dir, "@SERVER_PORT@", strconv.Itoa(s.port),
		"@TRUST_DOMAIN@", s.td.Name(), "@AGENT@", agent)
	name := tmpl
	if agent != "" {
		name = agent
	}
	out := filepath.Join(s.dir, name+".conf")
	return out, os.WriteFile(out, []byte(r.Replace(string(b))), 0o644)
}

// startSPIREServer starts the server and waits until it is healthy.
func startSPIREServer(bin, templates, dir string, td spiffeid.TrustDomain) (*spireEnv, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &spireEnv{bin: bin, templates: templates, dir: dir, port: port, td: td,
		agents: map[string]*spireAgent{}, minted: map[string]*mintedSVID{}}
	if err := os.MkdirAll(filepath.Join(dir, "data", "server"), 0o755); err != nil {
		return nil, err
	}
	conf, err := s.render("server", "")
	if err != nil {
		return nil, err
	}
	s.server, err = startProc("spire-server", filepath.Join(dir, "server.log"), nil,
		filepath.Join(bin, "spire-server"), "run", "-config", conf)
	if err != nil {
		return nil, err
	}
	if err := s.waitHealthy("spire-server", s.server, s.serverSock()); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *spireEnv) waitHealthy(what string, p *proc, sock string) error {
	exe := filepath.Join(s.bin, what)
	err := poll(30*time.Second, 200*time.Millisecond, func() error {
		if p.exited() {
			return permanent(fmt.Errorf("exited: %v", p.err))
		}
		_, err := s.run(exe, "healthcheck", "-socketPath", sock)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s not healthy within 30s: %v\nlog %s:\n%s", what, err, p.log, indent(p.tail(20)))
	}
	return nil
}

// run runs a SPIRE command with a bounded time and returns its stdout.
func (s *spireEnv) run(exe string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s%s", filepath.Base(exe), strings.Join(args, " "), err,
			strings.TrimSpace(stderr.String()), strings.TrimSpace(stdout.String()))
	}
	return stdout.Bytes(), nil
}

// serverCLI runs `spire-server <sub...> -socketPath <server> <args...>`.
func (s *spireEnv) serverCLI(sub []string, args ...string) ([]byte, error) {
	all := append(append(append([]string{}, sub...), "-socketPath", s.serverSock()), args...)
	return s.run(filepath.Join(s.bin, "spire-server"), all...)
}

// startAgent attests a new agent called name with a join token.
func (s *spireEnv) startAgent(name string) (*spireAgent, error) {
	nodeID, err := spiffeid.FromPath(s.td, "/node/"+name)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(s.dir, "data", name), 0o755); err != nil {
		return nil, err
	}
	conf, err := s.render("agent", name)
	if err != nil {
		return nil, err
	}
	out, err := s.serverCLI([]string{"token", "generate"}, "-spiffeID", nodeID.String(), "-ttl", "600")
	if err != nil {
		return nil, err
	}
	token, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "Token: ")
	if !ok || token == "" {
		return nil, fmt.Errorf("spire-server token generate: unexpected output %q", out)
	}
	a := &spireAgent{name: name, nodeID: nodeID, conf: conf, sock: filepath.Join(s.dir, name+".sock")}
	if err := s.runAgent(a, "-joinToken", token); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.agents[name] = a
	s.mu.Unlock()
	return a, nil
}

func (s *spireEnv) runAgent(a *spireAgent, extra ...string) error {
	args := append([]string{"run", "-config", a.conf}, extra...)
	p, err := startProc(a.name, filepath.Join(s.dir, a.name+".log"), nil, filepath.Join(s.bin, "spire-agent"), args...)
	if err != nil {
		return err
	}
	a.proc = p
	return s.waitHealthy("spire-agent", p, a.sock)
}

// killAgent ends the agent with SIGKILL: no chance to clean up.
func (s *spireEnv) killAgent(a *spireAgent) {
	a.proc.kill()
}

// restartAgent starts a killed agent again from its data_dir, without a join
// token: the disk KeyManager and the stored agent SVID must suffice.
func (s *spireEnv) restartAgent(a *spireAgent) error {
	if !a.proc.exited() {
		return fmt.Errorf("agent %s still runs", a.name)
	}
	return s.runAgent(a)
}

// workloadSocket returns the Workload API address of an agent.
func (a *spireAgent) workloadSocket() string { return "unix://" + a.sock }

// register creates an entry for a workload under agent a.
func (s *spireEnv) register(a *spireAgent, id spiffeid.ID, ttl time.Duration, selectors ...string) error {
	args := []string{"-parentID", a.nodeID.String(), "-spiffeID", id.String()}
	for _, sel := range selectors {
		args = append(args, "-selector", sel)
	}
	if ttl > 0 {
		args = append(args, "-x509SVIDTTL", strconv.Itoa(int(ttl.Seconds())))
	}
	_, err := s.serverCLI([]string{"entry", "create"}, args...)
	return err
}

// mint returns an X509-SVID for id signed by the server, valid for an hour,
// with the trust bundle; one per ID, cached.
func (s *spireEnv) mint(id spiffeid.ID) (*mintedSVID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.minted[id.String()]; ok {
		return m, nil
	}
	dir, err := os.MkdirTemp(s.dir, "mint-")
	if err != nil {
		return nil, err
	}
	if _, err := s.serverCLI([]string{"x509", "mint"}, "-spiffeID", id.String(), "-ttl", "1h", "-write", dir); err != nil {
		return nil, err
	}
	svid, err := x509svid.Load(filepath.Join(dir, "svid.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		return nil, err
	}
	bundle, err := x509bundle.Load(s.td, filepath.Join(dir, "bundle.pem"))
	if err != nil {
		return nil, err
	}
	m := &mintedSVID{svid: svid, bundle: bundle}
	s.minted[id.String()] = m
	return m, nil
}
