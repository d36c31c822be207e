package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// Result is one measured window.
type Result struct {
	Label     string  `json:"label,omitempty"`
	Proto     string  `json:"proto"`
	NewConn   bool    `json:"newconn"`
	Resume    bool    `json:"resume"`
	Conns     int     `json:"conns"`
	Rate      float64 `json:"rate"`       // target
	Achieved  float64 `json:"achieved"`   // completed within the window / window
	Ratio     float64 `json:"ratio"`      // achieved / rate
	Sent      int64   `json:"sent"`       // requests due within the window
	Done      int64   `json:"done"`       // completed (ok or error)
	Errors    int64   `json:"errors"`     // failed requests
	ErrorRate float64 `json:"error_rate"` // errors / done
	ErrSample string  `json:"error_sample,omitempty"`
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
	P999      float64 `json:"p999_ms"`
	Max       float64 `json:"max_ms"`
	// Server under test, over the window (when -pids is given).
	CPUSec   float64 `json:"cpu_s,omitempty"`
	CPUPer1k float64 `json:"cpu_ms_per_1k,omitempty"` // CPU milliseconds per 1000 completed requests
	CPUUtil  float64 `json:"cpu_util,omitempty"`      // CPU seconds per second of window
	CPUError string  `json:"cpu_error,omitempty"`     // why CPU was not measured
	RSSKB    int64   `json:"rss_kb"`                  // at the end of the window
	// TLS, as negotiated.
	Handshakes int64  `json:"handshakes"`
	Resumed    int64  `json:"resumed"`
	Curve      string `json:"curve,omitempty"`
	Suite      string `json:"suite,omitempty"`
}

// Pass is the knee criterion: at least 99% of the rate achieved and fewer
// than 0.1% errors.
func (r *Result) Pass() bool { return r.Ratio >= 0.99 && r.ErrorRate < 0.001 }

func (r *Result) String() string {
	s := fmt.Sprintf("%s rate %.0f/s achieved %.0f/s (%.1f%%) done %d errors %d | p50 %.3f ms p99 %.3f ms p99.9 %.3f ms max %.3f ms",
		r.Proto, r.Rate, r.Achieved, 100*r.Ratio, r.Done, r.Errors, r.P50, r.P99, r.P999, r.Max)
	if r.CPUSec > 0 || r.RSSKB > 0 {
		s += fmt.Sprintf(" | server CPU %.1f ms/1k req, %.0f%% of a core, RSS %.1f MB", r.CPUPer1k, 100*r.CPUUtil, float64(r.RSSKB)/1024)
	}
	if r.Handshakes > 0 {
		s += fmt.Sprintf(" | TLS %s %s, %d handshakes, %d resumed", r.Suite, r.Curve, r.Handshakes, r.Resumed)
	}
	if r.ErrSample != "" {
		s += " | first error: " + r.ErrSample
	}
	return s
}

// load is a set of workers, each owning one doer, fed by one pacer.
type load struct {
	o     options
	doers []doer
	tls   *tlsStats
	stop  func()
}

func newLoad(o options) (*load, error) {
	l := &load{o: o, tls: &tlsStats{}}
	alpn := map[string][]string{"h1": {"http/1.1"}, "h2": {"h2"}, "grpc": {"h2"}}[o.Proto]
	cfg, err := maybeTLS(o, alpn, l.tls)
	if err != nil {
		return nil, err
	}
	conns := max(o.Conns, 1)
	streams := max(o.Streams, 1)
	switch o.Proto {
	case "h1":
		for range conns {
			l.doers = append(l.doers, newH1(o, cfg))
		}
	case "h2":
		scheme := "http://"
		if cfg != nil {
			scheme = "https://"
		}
		for range conns {
			t := newH2Transport(o, cfg)
			h := &h2Client{o: o, t: t, url: scheme + o.Target + o.Path}
			h.c = &http.Client{Transport: t}
			for range streams {
				l.doers = append(l.doers, h)
			}
		}
	case "grpc":
		var closers []func()
		for range conns {
			cc, err := newGRPCConn(o, cfg)
			if err != nil {
				return nil, err
			}
			closers = append(closers, func() { cc.Close() })
			g := &grpcClient{o: o, cli: testpb.NewTestServiceClient(cc)}
			for range streams {
				l.doers = append(l.doers, g)
			}
		}
		l.stop = func() {
			for _, f := range closers {
				f()
			}
		}
	}
	return l, nil
}

func (l *load) close() {
	for _, d := range l.doers {
		d.close()
	}
	if l.stop != nil {
		l.stop()
	}
}

// phase runs the load at rate for dur and measures it. Requests still queued
// when the window closes get grace to finish; what is left after that is
// abandoned (it counts against the achieved rate, not as an error).
func (l *load) phase(rate float64, dur time.Duration, pids []int) *Result {
	n := int64(rate * dur.Seconds())
	due := make(chan int64, min(n+16, 1<<22))
	var done, errs atomic.Int64
	var firstErr atomic.Value
	lat := make([][]int64, len(l.doers))
	var abandon atomic.Bool
	var wg sync.WaitGroup
	start := time.Now().Add(2 * time.Millisecond)
	end := start.Add(dur)
	endNS := end.UnixNano()
	var inWindow atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i, d := range l.doers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]int64, 0, n/int64(len(l.doers))+16)
			for t := range due {
				if abandon.Load() {
					continue
				}
				if w := time.Until(time.Unix(0, t)); w > 0 {
					time.Sleep(w)
				}
				err := d.do(ctx)
				now := time.Now().UnixNano()
				done.Add(1)
				if now <= endNS {
					inWindow.Add(1)
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				mine = append(mine, now-t)
			}
			lat[i] = mine
		}()
	}
	cpu0, err0 := procCPU(pids)
	// The pacer: release every request whose time has come, then nap.
	interval := float64(time.Second) / rate
	startNS := start.UnixNano()
	var i int64
	for i < n {
		now := time.Now().UnixNano()
		for i < n {
			t := startNS + int64(float64(i)*interval)
			if t > now+int64(200*time.Microsecond) {
				break
			}
			due <- t
			i++
		}
		time.Sleep(100 * time.Microsecond)
	}
	close(due)
	if w := time.Until(end); w > 0 {
		time.Sleep(w)
	}
	cpu1, err1 := procCPU(pids)
	grace := time.AfterFunc(2*time.Second, func() { abandon.Store(true); cancel() })
	wg.Wait()
	grace.Stop()

	all := slices.Concat(lat...)
	slices.Sort(all)
	r := &Result{
		Proto: l.o.Proto, NewConn: l.o.NewConn, Resume: l.o.Resume, Conns: l.o.Conns,
		Rate: rate, Sent: n, Done: done.Load(), Errors: errs.Load(),
	}
	r.Achieved = float64(inWindow.Load()-min(errs.Load(), inWindow.Load())) / dur.Seconds()
	r.Ratio = r.Achieved / rate
	if r.Done > 0 {
		r.ErrorRate = float64(r.Errors) / float64(r.Done)
	}
	if s, ok := firstErr.Load().(string); ok {
		r.ErrSample = s
	}
	r.P50, r.P99, r.P999 = pct(all, 0.50), pct(all, 0.99), pct(all, 0.999)
	if len(all) > 0 {
		r.Max = float64(all[len(all)-1]) / 1e6
	}
	if len(pids) > 0 {
		if err := errors.Join(err0, err1); err != nil {
			r.CPUError = err.Error() // shown as "–", never as a figure
		} else {
			r.CPUSec = cpu1 - cpu0
			r.CPUUtil = r.CPUSec / dur.Seconds()
			if inWindow.Load() > 0 {
				r.CPUPer1k = 1e6 * r.CPUSec / float64(inWindow.Load())
			}
		}
		r.RSSKB = procRSS(pids)
	}
	r.Handshakes, r.Resumed = l.tls.handshakes.Load(), l.tls.resumed.Load()
	r.Curve, r.Suite = l.tls.str(&l.tls.curve), l.tls.str(&l.tls.suite)
	return r
}

func pct(sorted []int64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = min(max(i, 0), len(sorted)-1)
	return float64(sorted[i]) / 1e6
}

func runFixed(o options) (*Result, error) {
	l, err := newLoad(o)
	if err != nil {
		return nil, err
	}
	defer l.close()
	if o.Warmup > 0 {
		l.phase(o.Rate, o.Warmup, nil)
	}
	hs0, res0 := l.tls.handshakes.Load(), l.tls.resumed.Load()
	r := l.phase(o.Rate, o.Duration, o.PIDs)
	r.Handshakes -= hs0
	r.Resumed -= res0
	r.Label = o.Label
	return r, nil
}

// KneeResult is the outcome of a knee search.
type KneeResult struct {
	Label string    `json:"label,omitempty"`
	Knee  float64   `json:"knee"` // highest passing rate; 0 if even -start failed
	At    *Result   `json:"at"`   // the measurement at the knee
	Steps []*Result `json:"steps"`
}

func (k *KneeResult) String() string {
	var b strings.Builder
	for _, s := range k.Steps {
		verdict := "FAIL"
		if s.Pass() {
			verdict = "pass"
		}
		fmt.Fprintf(&b, "  %s %s\n", verdict, s)
	}
	fmt.Fprintf(&b, "knee: %.0f/s", k.Knee)
	return b.String()
}

// runKnee grows the rate by -factor until a step fails, then bisects
// between the last pass and the first failure.
func runKnee(o options) (*KneeResult, error) {
	l, err := newLoad(o)
	if err != nil {
		return nil, err
	}
	defer l.close()
	if o.Warmup > 0 {
		l.phase(o.Start, o.Warmup, nil)
	}
	k := &KneeResult{Label: o.Label}
	try := func(rate float64) bool {
		hs0, res0 := l.tls.handshakes.Load(), l.tls.resumed.Load()
		r := l.phase(rate, o.Step, o.PIDs)
		r.Handshakes -= hs0
		r.Resumed -= res0
		r.Label = o.Label
		k.Steps = append(k.Steps, r)
		if r.Pass() && rate > k.Knee {
			k.Knee, k.At = rate, r
		}
		time.Sleep(300 * time.Millisecond) // let queues drain between steps
		return r.Pass()
	}
	lo, hi := 0.0, 0.0
	for rate := o.Start; rate <= o.Max; rate *= o.Factor {
		if !try(rate) {
			hi = rate
			break
		}
		lo = rate
	}
	if hi == 0 {
		return k, nil // never failed up to -max
	}
	for lo == 0 { // even -start failed: come down until a rate passes
		rate := hi / o.Factor
		if rate < 50 {
			return k, nil
		}
		if try(rate) {
			lo = rate
		} else {
			hi = rate
		}
	}
	for range o.Bisect {
		mid := (lo + hi) / 2
		if try(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return k, nil
}

// IdleResult is the memory held by idle mTLS connections.
type IdleResult struct {
	Label      string  `json:"label,omitempty"`
	N          int     `json:"n"`
	Opened     int     `json:"opened"`
	Failed     int     `json:"failed"`
	ErrSample  string  `json:"error_sample,omitempty"`
	RSSBeforeK int64   `json:"rss_before_kb"`
	RSSAfterK  int64   `json:"rss_after_kb"`
	PerConnKB  float64 `json:"per_conn_kb"`
	Seconds    float64 `json:"open_seconds"`
}

func (r *IdleResult) String() string {
	return fmt.Sprintf("idle: %d/%d connections open in %.1fs (%d failed%s); server RSS %.1f MB -> %.1f MB: %.1f KB per connection",
		r.Opened, r.N, r.Seconds, r.Failed, map[bool]string{true: ": " + r.ErrSample, false: ""}[r.ErrSample != ""],
		float64(r.RSSBeforeK)/1024, float64(r.RSSAfterK)/1024, r.PerConnKB)
}

// runIdle opens -n connections, sends one request on each (so the server
// holds a fully set-up keep-alive connection), leaves them idle and reads the
// server's RSS.
func runIdle(o options) (*IdleResult, error) {
	st := &tlsStats{}
	cfg, err := maybeTLS(o, []string{"http/1.1"}, st)
	if err != nil {
		return nil, err
	}
	r := &IdleResult{Label: o.Label, N: o.N}
	r.RSSBeforeK = procRSS(o.PIDs)
	conns := make([]*h1Conn, o.N)
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	t0 := time.Now()
	for range max(o.Conns, 1) {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(o.N) {
					return
				}
				h := newH1(o, cfg)
				if err := h.do(context.Background()); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					h.close()
					continue
				}
				conns[i] = h
			}
		})
	}
	wg.Wait()
	r.Seconds = time.Since(t0).Seconds()
	time.Sleep(o.Hold)
	r.RSSAfterK = procRSS(o.PIDs)
	for _, h := range conns {
		if h != nil && h.conn != nil {
			r.Opened++
			h.close()
		}
	}
	r.Failed = int(failed.Load())
	if s, ok := firstErr.Load().(string); ok {
		r.ErrSample = s
	}
	if r.Opened > 0 {
		r.PerConnKB = float64(r.RSSAfterK-r.RSSBeforeK) / float64(r.Opened)
	}
	return r, nil
}

// procCPU is the CPU time (user+system, seconds) of the processes, from
// /proc/PID/stat. Clock ticks are 100 Hz on Linux. A process it cannot read
// is an error: a partial sum would be a wrong figure.
func procCPU(pids []int) (float64, error) {
	var ticks int64
	for _, p := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
		if err != nil {
			return 0, fmt.Errorf("CPU of PID %d: %w", p, err)
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 > len(s) {
			return 0, fmt.Errorf("CPU of PID %d: unexpected /proc/%d/stat", p, p)
		}
		f := strings.Fields(s[i+2:])
		if len(f) <= 12 {
			return 0, fmt.Errorf("CPU of PID %d: unexpected /proc/%d/stat", p, p)
		}
		u, err1 := strconv.ParseInt(f[11], 10, 64)
		k, err2 := strconv.ParseInt(f[12], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return 0, fmt.Errorf("CPU of PID %d: %w", p, err)
		}
		ticks += u + k
	}
	return float64(ticks) / 100, nil
}

// procRSS is the summed VmRSS of the processes, in KiB.
func procRSS(pids []int) int64 {
	var kb int64
	for _, p := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				f := strings.Fields(v)
				if len(f) > 0 {
					n, _ := strconv.ParseInt(f[0], 10, 64)
					kb += n
				}
			}
		}
	}
	return kb
}
