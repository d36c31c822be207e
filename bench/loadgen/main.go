// Command loadgen is svidgate's open-loop load generator. wrk and h2load
// cannot present client certificates, so the benchmark brings its own.
//
// Requests are scheduled at a fixed rate from a start time; request i is due
// at start + i/rate whether or not earlier requests have finished, and its
// latency is measured from that intended send time. A server that stalls
// therefore shows the stall in every request scheduled behind it (no
// coordinated omission).
//
//	loadgen run   -target 127.0.0.1:8443 -proto h1|h2|grpc -rate 5000 -duration 10s [-tls ...]
//	loadgen knee  (same flags) -start 2000 -max 100000     highest rate served with >=99% achieved, <0.1% errors
//	loadgen idle  -target ... -n 10000 -pids PID           RSS per idle mTLS connection
//
// -pids names the processes of the server under test: their CPU time
// (utime+stime from /proc/PID/stat) over the measured window and their RSS
// are reported with the results.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func usage() {
	fmt.Fprintln(os.Stderr, "usage: loadgen run|knee|idle [flags]; loadgen <cmd> -h for flags")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "run", "knee", "idle":
		err = runCmd(cmd, args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type options struct {
	Target   string
	Proto    string
	Path     string
	TLS      bool
	CA       string
	Cert     string
	Key      string
	ServerID string
	Curve    string

	Rate     float64
	Duration time.Duration
	Warmup   time.Duration
	Conns    int
	Streams  int
	NewConn  bool
	Resume   bool
	Timeout  time.Duration
	BodySize int
	PIDs     []int

	// knee
	Start, Max, Factor float64
	Bisect             int
	Step               time.Duration

	// idle
	N    int
	Hold time.Duration

	Headers []string // "Name: value", sent with every request

	JSON  bool
	Label string
}

type headerList []string

func (h *headerList) String() string { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error {
	if !strings.Contains(v, ":") {
		return fmt.Errorf("header %q: want \"Name: value\"", v)
	}
	*h = append(*h, v)
	return nil
}

func runCmd(cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	var o options
	var pids string
	fs.StringVar(&o.Target, "target", "127.0.0.1:8443", "server `host:port`")
	fs.StringVar(&o.Proto, "proto", "h1", "h1 | h2 | grpc")
	fs.StringVar(&o.Path, "path", "/bench/1k", "request path (HTTP)")
	fs.BoolVar(&o.TLS, "tls", false, "mTLS (needs -ca, -cert, -key)")
	fs.StringVar(&o.CA, "ca", "", "trust bundle PEM that verifies the server")
	fs.StringVar(&o.Cert, "cert", "", "client SVID certificate PEM")
	fs.StringVar(&o.Key, "key", "", "client SVID key PEM")
	fs.StringVar(&o.ServerID, "server-id", "", "SPIFFE ID the server must present (empty: any ID the bundle verifies)")
	fs.StringVar(&o.Curve, "curve", "X25519", "the only key-exchange group offered: X25519 | P256")
	fs.Float64Var(&o.Rate, "rate", 1000, "requests (or connections) per second")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "measured window")
	fs.DurationVar(&o.Warmup, "warmup", time.Second, "unmeasured load before the window")
	fs.IntVar(&o.Conns, "conns", 100, "connections (with -newconn: concurrent connection attempts)")
	fs.IntVar(&o.Streams, "streams", 1, "concurrent requests per connection (h2, grpc)")
	fs.BoolVar(&o.NewConn, "newconn", false, "h1: a new connection (and TLS handshake) per request")
	fs.BoolVar(&o.Resume, "resume", false, "with -newconn: offer TLS session resumption")
	fs.DurationVar(&o.Timeout, "timeout", 3*time.Second, "per-request timeout")
	fs.IntVar(&o.BodySize, "body", 1024, "expected response body size (-1: do not check)")
	fs.StringVar(&pids, "pids", "", "comma-separated PIDs of the server under test (CPU and RSS)")
	fs.Float64Var(&o.Start, "start", 2000, "knee: first rate")
	fs.Float64Var(&o.Max, "max", 200000, "knee: highest rate tried")
	fs.Float64Var(&o.Factor, "factor", 1.6, "knee: growth factor until the first failure")
	fs.IntVar(&o.Bisect, "bisect", 3, "knee: bisection steps after the first failure")
	fs.DurationVar(&o.Step, "step", 3*time.Second, "knee: measured window per step")
	fs.IntVar(&o.N, "n", 10000, "idle: connections to open and hold")
	fs.DurationVar(&o.Hold, "hold", 2*time.Second, "idle: how long to hold them after the last one is up")
	fs.BoolVar(&o.JSON, "json", false, "print one JSON object instead of text")
	fs.StringVar(&o.Label, "label", "", "free text copied into the output")
	var hdrs headerList
	fs.Var(&hdrs, "H", "extra request header \"Name: value\" (repeatable; gRPC: metadata)")
	_ = fs.Parse(args)
	o.Headers = hdrs
	for _, p := range strings.Split(pids, ",") {
		if p = strings.TrimSpace(p); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				return fmt.Errorf("-pids: %q is not a PID", p)
			}
			o.PIDs = append(o.PIDs, n)
		}
	}
	switch o.Proto {
	case "h1", "h2", "grpc":
	default:
		return fmt.Errorf("-proto %q: want h1, h2 or grpc", o.Proto)
	}
	if o.NewConn && o.Proto != "h1" {
		return fmt.Errorf("-newconn is only for -proto h1")
	}

	var out any
	var err error
	switch cmd {
	case "run":
		out, err = runFixed(o)
	case "knee":
		out, err = runKnee(o)
	case "idle":
		out, err = runIdle(o)
	}
	if err != nil {
		return err
	}
	if o.JSON {
		enc := json.NewEncoder(os.Stdout)
		return enc.Encode(out)
	}
	if s, ok := out.(fmt.Stringer); ok {
		fmt.Println(s.String())
	} else {
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Println(string(b))
	}
	return nil
}
