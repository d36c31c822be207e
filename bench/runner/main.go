// Command runner is `make bench`: it starts the backend, the fake Workload
// API and each proxy under test in turn, drives them with bench/loadgen and
// prints a table of medians (min–max) over the rounds, with ratios against
// nginx and HAProxy and the targets of issue 7.
//
// The proxy under test runs on core 0 (taskset -c 0) with one worker or
// thread; loadgen, backend and fake agent share core 1. Every load is bounded
// in time and everything listens on 127.0.0.1.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type bench struct {
	dir, bin, certs, agentSock string
	token                      string // variant (c)'s JWT-SVID
	baseline, baseName         string // svidgate binary of the twins (-baseline) and what it is
	rounds                     int
	quick                      bool
	variants                   []string
	cells                      []cell
	out                        *os.File // results.jsonl
	started                    []*exec.Cmd
	names                      []string
}

func main() {
	b := &bench{}
	flag.StringVar(&b.dir, "dir", "bench/out", "working `directory` (configs, logs, results)")
	flag.StringVar(&b.bin, "bin", "bench/out/bin", "`directory` holding loadgen, backend, fakeagent, certs, svidgate")
	flag.IntVar(&b.rounds, "rounds", 3, "rounds; variants run in a new shuffled order each round")
	flag.BoolVar(&b.quick, "quick", os.Getenv("BENCH_QUICK") == "1", "short smoke run (BENCH_QUICK=1)")
	vs := flag.String("variants", "a,b,c,d,e", "variants to run")
	only := flag.String("cells", "", "comma-separated cells to run (default all)")
	report := flag.String("report", "", "only print the table of an existing results.jsonl")
	flag.StringVar(&b.baseline, "baseline", "", "svidgate `binary` to compare with: each svidgate variant (b, c) gets a twin (b@base, c@base) that runs it with the same config in the same rounds")
	flag.StringVar(&b.baseName, "baseline-name", "", "what the -baseline binary is (e.g. its git revision), for the report")
	flag.Parse()
	if *report != "" {
		if err := printReport(*report, os.Stdout); err != nil {
			fatal(err)
		}
		return
	}
	if b.quick && !flagSet("rounds") {
		b.rounds = 1
	}
	b.variants = strings.Split(*vs, ",")
	if b.baseline != "" {
		if err := b.addTwins(); err != nil {
			fatal(err)
		}
	}
	b.cells = cellsFor(b.quick)
	if *only != "" {
		keep := map[string]bool{}
		for _, c := range strings.Split(*only, ",") {
			keep[c] = true
		}
		var cs []cell
		for _, c := range b.cells {
			if keep[c.id] {
				cs = append(cs, c)
			}
		}
		b.cells = cs
	}
	if err := b.run(); err != nil {
		b.stopAll()
		fatal(err)
	}
}

// baseSuffix marks a twin: a svidgate variant run with the -baseline binary.
const baseSuffix = "@base"

// kind is the variant a twin stands for ("b" for "b@base").
func kind(v string) string { return strings.TrimSuffix(v, baseSuffix) }

// addTwins adds the twin of every svidgate variant selected; they are
// shuffled with the others in every round.
func (b *bench) addTwins() error {
	if _, err := exec.LookPath(b.baseline); err != nil {
		return fmt.Errorf("-baseline: %w", err)
	}
	var err error
	if b.baseline, err = filepath.Abs(b.baseline); err != nil {
		return err
	}
	if b.baseName == "" {
		b.baseName = b.baseline
	}
	n := len(b.variants)
	for _, v := range b.variants[:n] {
		if v == "b" || v == "c" {
			b.variants = append(b.variants, v+baseSuffix)
		}
	}
	if len(b.variants) == n {
		return fmt.Errorf("-baseline: no svidgate variant (b, c) among -variants %q", strings.Join(b.variants, ","))
	}
	return nil
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func (b *bench) run() error {
	var err error
	if b.dir, err = filepath.Abs(b.dir); err != nil {
		return err
	}
	if b.bin, err = filepath.Abs(b.bin); err != nil {
		return err
	}
	b.certs = filepath.Join(b.dir, "certs")
	b.agentSock = filepath.Join(b.dir, "agent.sock")
	if err := runCmd(filepath.Join(b.bin, "certs"), "-dir", b.certs, "-server-id", serverID, "-client-id", clientID); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if b.token, err = mintJWT(b.certs, clientID); err != nil {
		return fmt.Errorf("JWT-SVID: %w", err)
	}
	if err := b.writeConfigs(); err != nil {
		return err
	}
	resPath := filepath.Join(b.dir, "results.jsonl")
	if b.out, err = os.Create(resPath); err != nil {
		return err
	}
	defer b.out.Close()
	b.writeMeta()

	if _, err := b.start("backend", "1", nil, filepath.Join(b.bin, "backend"), "-addr", addr(portBackend), "-size", "1024"); err != nil {
		return err
	}
	if _, err := b.start("fakeagent", "1", nil, filepath.Join(b.bin, "fakeagent"), "-socket", b.agentSock,
		"-cert", filepath.Join(b.certs, "server.pem"), "-key", filepath.Join(b.certs, "server.key"),
		"-bundle", filepath.Join(b.certs, "ca.pem"), "-jwt-bundle", filepath.Join(b.certs, "jwt-bundle.json")); err != nil {
		return err
	}
	if err := waitTCP(addr(portBackend), 5*time.Second); err != nil {
		return err
	}
	if err := waitUnix(b.agentSock, 5*time.Second); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)
	if !isAlive(b.pidOf("backend")) || !isAlive(b.pidOf("fakeagent")) {
		return fmt.Errorf("backend or fakeagent exited (port %d or %s in use?); see %s/logs", portBackend, b.agentSock, b.dir)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "bench: interrupted; stopping what it started")
		b.stopAll()
		os.Exit(130)
	}()

	t0 := time.Now()
	for round := 1; round <= b.rounds; round++ {
		order := append([]string(nil), b.variants...)
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		fmt.Fprintf(os.Stderr, "== round %d/%d: %s (%.0fs elapsed)\n", round, b.rounds, strings.Join(order, " "), time.Since(t0).Seconds())
		for _, v := range order {
			if err := b.runVariant(round, v); err != nil {
				return fmt.Errorf("round %d variant %s: %w", round, v, err)
			}
		}
	}
	b.stopAll()
	fmt.Fprintf(os.Stderr, "== done in %.0fs; results in %s\n", time.Since(t0).Seconds(), resPath)
	b.out.Sync()
	f, err := os.Create(filepath.Join(b.dir, "table.md"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := printReport(resPath, f); err != nil {
		return err
	}
	return printReport(resPath, os.Stdout)
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// runVariant starts the variant's proxy, runs every cell against it, stops it.
func (b *bench) runVariant(round int, v string) error {
	target, pids, stop, err := b.startVariant(v)
	if err != nil {
		return err
	}
	defer stop()
	for _, c := range b.cells {
		if v == "a" && c.tlsOnly {
			continue
		}
		args := append([]string{c.cmd, "-json", "-target", target, "-label", v + "/" + c.id}, c.args...)
		args = append(args, variantArgs(kind(v), b.certs, b.token)...)
		if len(pids) > 0 {
			args = append(args, "-pids", joinInts(pids))
		}
		fmt.Fprintf(os.Stderr, "   %s %-7s ", v, c.id)
		t := time.Now()
		out, err := exec.Command("taskset", append([]string{"-c", "1", filepath.Join(b.bin, "loadgen")}, args...)...).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				err = fmt.Errorf("%w: %s", err, ee.Stderr)
			}
			return fmt.Errorf("loadgen %s: %w", c.id, err)
		}
		var raw map[string]any
		if err := json.Unmarshal(out, &raw); err != nil {
			return fmt.Errorf("loadgen %s output: %w", c.id, err)
		}
		line, _ := json.Marshal(map[string]any{"round": round, "variant": v, "cell": c.id, "result": raw})
		b.out.Write(append(line, '\n'))
		fmt.Fprintf(os.Stderr, "%5.1fs %s\n", time.Since(t).Seconds(), summary(c.id, raw))
		if !isAlive(pids) {
			return fmt.Errorf("the proxy of variant %s died during %s (see %s/logs)", v, c.id, b.dir)
		}
		time.Sleep(300 * time.Millisecond)
	}
	return nil
}

// variantArgs are the loadgen flags a variant needs: mTLS with the client
// SVID everywhere except (a), and (c)'s JWT-SVID on every request (gRPC:
// as authorization metadata).
func variantArgs(v, certs, token string) []string {
	if v == "a" {
		return nil
	}
	args := []string{"-tls", "-ca", filepath.Join(certs, "ca.pem"), "-cert", filepath.Join(certs, "client.pem"),
		"-key", filepath.Join(certs, "client.key"), "-server-id", serverID, "-curve", "X25519"}
	if v == "c" {
		args = append(args, "-H", "Authorization: Bearer "+token)
	}
	return args
}

func (b *bench) startVariant(v string) (target string, pids []int, stop func(), err error) {
	logs := filepath.Join(b.dir, "logs")
	switch kind(v) {
	case "a":
		return addr(portBackend), b.pidOf("backend"), func() {}, nil
	case "b", "c":
		return b.startSvidgate(v)
	case "d":
		cmd, err := b.start("nginx", "0", nil, "nginx", "-p", filepath.Join(b.dir, "nginx"), "-c",
			filepath.Join(b.dir, "nginx.conf"), "-g", "daemon off;")
		if err != nil {
			return "", nil, nil, err
		}
		if err := waitTCP(addr(portNginx), 10*time.Second); err != nil {
			b.stop(cmd)
			return "", nil, nil, fmt.Errorf("nginx: %w; see %s", err, logs)
		}
		time.Sleep(200 * time.Millisecond)
		pids := append([]int{cmd.Process.Pid}, children(cmd.Process.Pid)...)
		return addr(portNginx), pids, func() { b.stop(cmd) }, nil
	case "e":
		cmd, err := b.start("haproxy", "0", nil, "haproxy", "-db", "-f", filepath.Join(b.dir, "haproxy.cfg"))
		if err != nil {
			return "", nil, nil, err
		}
		if err := waitTCP(addr(portHAProxy), 10*time.Second); err != nil {
			b.stop(cmd)
			return "", nil, nil, fmt.Errorf("haproxy: %w; see %s", err, logs)
		}
		return addr(portHAProxy), []int{cmd.Process.Pid}, func() { b.stop(cmd) }, nil
	}
	return "", nil, nil, fmt.Errorf("unknown variant %q", v)
}

// startSvidgate starts variant (b) or (c) or, for a twin, the baseline
// binary with the same config.
func (b *bench) startSvidgate(v string) (target string, pids []int, stop func(), err error) {
	k, prog := kind(v), filepath.Join(b.bin, "svidgate")
	if k != v {
		if b.baseline == "" {
			return "", nil, nil, fmt.Errorf("variant %s needs -baseline", v)
		}
		prog = b.baseline
	}
	port, admin := portSvidB, adminSvidB
	if k == "c" {
		port, admin = portSvidC, adminSvidC
		os.Remove(b.auditC())
	}
	cmd, err := b.start("svidgate-"+v, "0", []string{"GOMAXPROCS=1"}, prog, "run",
		"-config", filepath.Join(b.dir, "svidgate-"+k+".toml"))
	if err != nil {
		return "", nil, nil, err
	}
	if err := waitHTTP("http://"+addr(admin)+"/readyz", 15*time.Second); err != nil {
		b.stop(cmd)
		return "", nil, nil, fmt.Errorf("svidgate (%s) not ready: %w; see %s/logs", v, err, b.dir)
	}
	return addr(port), []int{cmd.Process.Pid}, func() {
		b.stop(cmd)
		os.Remove(b.auditC())
	}, nil
}

// start runs a long-lived process pinned to core, logging to logs/NAME.log.
func (b *bench) start(name, core string, env []string, prog string, args ...string) (*exec.Cmd, error) {
	logf, err := os.OpenFile(filepath.Join(b.dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("taskset", append([]string{"-c", core, prog}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logf
	cmd.Stdout = nil // svidgate (b) writes its audit trail to stdout: discarded
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { cmd.Wait(); logf.Close() }()
	b.started = append(b.started, cmd)
	b.names = append(b.names, name)
	return cmd, nil
}

func (b *bench) pidOf(name string) []int {
	for i, n := range b.names {
		if n == name {
			return []int{b.started[i].Process.Pid}
		}
	}
	return nil
}

// stop sends SIGTERM to the process group it started, then SIGKILL after 5s.
func (b *bench) stop(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(pgid, 0) != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	time.Sleep(100 * time.Millisecond)
}

func (b *bench) stopAll() {
	for i := len(b.started) - 1; i >= 0; i-- {
		b.stop(b.started[i])
	}
	b.started, b.names = nil, nil
}

func children(pid int) []int {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func isAlive(pids []int) bool {
	for _, p := range pids {
		if syscall.Kill(p, 0) != nil {
			return false
		}
	}
	return true
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func runCmd(prog string, args ...string) error {
	out, err := exec.Command(prog, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

func waitTCP(a string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", a, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after %s", a, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitUnix(p string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("unix", p, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after %s", p, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitHTTP(url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	hostport := strings.TrimPrefix(url, "http://")
	hostport, path, _ := strings.Cut(hostport, "/")
	for {
		c, err := net.DialTimeout("tcp", hostport, 200*time.Millisecond)
		if err == nil {
			fmt.Fprintf(c, "GET /%s HTTP/1.0\r\nHost: x\r\n\r\n", path)
			c.SetReadDeadline(time.Now().Add(time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.Contains(line, " 200 ") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not 200 after %s", url, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writeMeta records the machine and versions as the first line of results.
func (b *bench) writeMeta() {
	meta := map[string]any{"meta": true, "time": time.Now().UTC().Format(time.RFC3339), "quick": b.quick, "rounds": b.rounds}
	if out, err := exec.Command("sh", "-c", "lscpu | sed -n 's/^Model name: *//p' | head -1").Output(); err == nil {
		meta["cpu"] = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("nproc").Output(); err == nil {
		meta["cores"] = strings.TrimSpace(string(out))
	}
	for k, c := range map[string][]string{
		"go": {"go", "version"}, "nginx": {"nginx", "-v"}, "haproxy": {"sh", "-c", "haproxy -v | head -1"},
		"svidgate": {"git", "describe", "--always", "--dirty"}, "kernel": {"uname", "-r"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err == nil {
			meta[k] = strings.TrimSpace(string(out))
		}
	}
	if b.baseline != "" {
		meta["baseline"] = b.baseName
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		meta["loadavg_start"] = strings.TrimSpace(string(la))
	}
	line, _ := json.Marshal(meta)
	b.out.Write(append(line, '\n'))
}
