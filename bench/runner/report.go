package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

type row struct {
	Round   int            `json:"round"`
	Variant string         `json:"variant"`
	Cell    string         `json:"cell"`
	Result  map[string]any `json:"result"`
}

var variantNames = map[string]string{
	"a": "(a) direct", "b": "(b) svidgate 1 rule", "c": "(c) svidgate 100 rules+JWT+rate+audit",
	"d": "(d) nginx", "e": "(e) HAProxy",
}

// metric extracts one number from a cell's result.
type metric struct {
	name  string
	cell  string
	get   func(r map[string]any) (float64, bool)
	delta bool // subtract (a)'s value of the same round
	fmt   string
}

func num(r map[string]any, path ...string) (float64, bool) {
	var cur any = r
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return 0, false
		}
		cur = m[p]
	}
	f, ok := cur.(float64)
	return f, ok
}

func field(path ...string) func(map[string]any) (float64, bool) {
	return func(r map[string]any) (float64, bool) { return num(r, path...) }
}

func scaled(k float64, path ...string) func(map[string]any) (float64, bool) {
	return func(r map[string]any) (float64, bool) {
		v, ok := num(r, path...)
		return v * k, ok
	}
}

// cpuPerReq names the proxy CPU per request of the cells at a fixed rate
// (h1, h2, grpc, rss1k).
const cpuPerReq = "  proxy CPU ms / 1000 req"

var metrics = []metric{
	{"HTTP/1.1 keep-alive 5k rps: p50 ms", "h1", field("p50_ms"), false, "%.3f"},
	{"  p99 ms", "h1", field("p99_ms"), false, "%.3f"},
	{"  p99.9 ms", "h1", field("p999_ms"), false, "%.3f"},
	{"  added p50 over (a), ms", "h1", field("p50_ms"), true, "%.3f"},
	{"  added p99 over (a), ms", "h1", field("p99_ms"), true, "%.3f"},
	{"  added p99.9 over (a), ms", "h1", field("p999_ms"), true, "%.3f"},
	{"  achieved %", "h1", scaled(100, "ratio"), false, "%.1f"},
	{cpuPerReq, "h1", field("cpu_ms_per_1k"), false, "%.1f"},
	{"  proxy RSS MB", "h1", scaled(1.0/1024, "rss_kb"), false, "%.1f"},
	{"HTTP/1.1 keep-alive knee, req/s", "h1knee", field("knee"), false, "%.0f"},
	{"  proxy CPU ms / 1000 req at knee", "h1knee", field("at", "cpu_ms_per_1k"), false, "%.1f"},
	{"HTTP/2 1k rps: p50 ms", "h2", field("p50_ms"), false, "%.3f"},
	{"  p99 ms", "h2", field("p99_ms"), false, "%.3f"},
	{"  added p99 over (a), ms", "h2", field("p99_ms"), true, "%.3f"},
	{cpuPerReq, "h2", field("cpu_ms_per_1k"), false, "%.1f"},
	{"gRPC unary 1k rps: p50 ms", "grpc", field("p50_ms"), false, "%.3f"},
	{"  p99 ms", "grpc", field("p99_ms"), false, "%.3f"},
	{"  added p99 over (a), ms", "grpc", field("p99_ms"), true, "%.3f"},
	{cpuPerReq, "grpc", field("cpu_ms_per_1k"), false, "%.1f"},
	{"New mTLS connection per request: full handshakes/s", "hs", field("knee"), false, "%.0f"},
	{"  proxy CPU ms / 1000 conns at knee", "hs", field("at", "cpu_ms_per_1k"), false, "%.1f"},
	{"Resumption offered: connections/s", "hsres", field("knee"), false, "%.0f"},
	{"  share resumed at knee %", "hsres", func(r map[string]any) (float64, bool) {
		h, ok1 := num(r, "at", "handshakes")
		s, ok2 := num(r, "at", "resumed")
		if !ok1 || !ok2 || h == 0 {
			return 0, false
		}
		return 100 * s / h, true
	}, false, "%.0f"},
	{"10k idle mTLS connections: KB each", "idle", field("per_conn_kb"), false, "%.1f"},
	{"  proxy RSS MB with them", "idle", scaled(1.0/1024, "rss_after_kb"), false, "%.1f"},
	{"1k rps over 100 connections: proxy RSS MB", "rss1k", scaled(1.0/1024, "rss_kb"), false, "%.1f"},
	{cpuPerReq, "rss1k", field("cpu_ms_per_1k"), false, "%.1f"},
}

type stat struct {
	med, lo, hi float64
	n           int
}

func summarize(v []float64) (stat, bool) {
	if len(v) == 0 {
		return stat{}, false
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{med, s[0], s[len(s)-1], len(s)}, true
}

func (s stat) format(f string) string {
	if s.n == 1 || s.lo == s.hi {
		return fmt.Sprintf(f, s.med)
	}
	return fmt.Sprintf(f+" ("+f+"–"+f+")", s.med, s.lo, s.hi)
}

// results is a results.jsonl: the run's meta line and one row per round,
// variant and cell.
type results struct {
	meta map[string]any
	rows []row
}

func readResults(path string) (results, error) {
	f, err := os.Open(path)
	if err != nil {
		return results{}, err
	}
	defer f.Close()
	var res results
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			continue
		}
		if m["meta"] == true {
			res.meta = m
			continue
		}
		var r row
		_ = json.Unmarshal(sc.Bytes(), &r)
		res.rows = append(res.rows, r)
	}
	return res, sc.Err()
}

// stats are the medians (min–max) over rounds of every metric, keyed by the
// metric's name and cell, then by variant.
type stats map[string]map[string]stat

func (st stats) get(name, cell, v string) (float64, bool) {
	s, ok := st[name+cell][v]
	return s.med, ok
}

// statsOf summarizes every metric for every variant in rows; a delta metric
// subtracts (a)'s value of the same round.
func statsOf(rows []row) stats {
	type key struct {
		cell  string
		round int
	}
	direct := map[key]map[string]any{}
	for _, r := range rows {
		if r.Variant == "a" {
			direct[key{r.Cell, r.Round}] = r.Result
		}
	}
	st := stats{}
	for _, m := range metrics {
		vals := map[string][]float64{}
		for _, r := range rows {
			if r.Cell != m.cell {
				continue
			}
			x, ok := m.get(r.Result)
			if ok && m.delta {
				bx, found := m.get(direct[key{m.cell, r.Round}])
				x, ok = x-bx, found && r.Variant != "a"
			}
			if ok {
				vals[r.Variant] = append(vals[r.Variant], x)
			}
		}
		st[m.name+m.cell] = map[string]stat{}
		for v, xs := range vals {
			if s, ok := summarize(xs); ok {
				st[m.name+m.cell][v] = s
			}
		}
	}
	return st
}

// present is the variants among vs that have results, in the order of vs.
func present(rows []row, vs ...string) []string {
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r.Variant] = true
	}
	var out []string
	for _, v := range vs {
		if seen[v] {
			out = append(out, v)
		}
	}
	return out
}

func printReport(path string, w io.Writer) error {
	res, err := readResults(path)
	if err != nil {
		return err
	}
	st := statsOf(res.rows)
	if meta := res.meta; meta != nil {
		fmt.Fprintf(w, "Machine: %v, %v cores; kernel %v; load average at start %v\n", meta["cpu"], meta["cores"], meta["kernel"], meta["loadavg_start"])
		fmt.Fprintf(w, "Versions: %v; %v; %v; svidgate %v. Rounds: %v%s\n\n", meta["go"], meta["nginx"], meta["haproxy"], meta["svidgate"], meta["rounds"],
			map[bool]string{true: " (BENCH_QUICK: short windows, indicative only)", false: ""}[meta["quick"] == true])
	}
	fmt.Fprintf(w, "Median (min–max) over rounds. Proxy on core 0 with one worker/thread; loadgen and backend on core 1.\n\n")
	printTable(w, st, present(res.rows, "a", "b", "c", "d", "e"))
	printRatios(w, st)
	printTargets(w, st)
	var twins []string
	for _, t := range present(res.rows, "b"+baseSuffix, "c"+baseSuffix) {
		twins = append(twins, kind(t))
	}
	if len(twins) > 0 {
		name, ok := res.meta["baseline"].(string)
		if !ok {
			name = "of -baseline"
		}
		printBaseline(w, st, name, twins)
	}
	return nil
}

// printTable prints every metric's median (min–max) for the variants vs.
func printTable(w io.Writer, st stats, vs []string) {
	fmt.Fprintf(w, "| cell |")
	for _, v := range vs {
		fmt.Fprintf(w, " %s |", variantNames[v])
	}
	fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---|", len(vs)))
	for _, m := range metrics {
		fmt.Fprintf(w, "| %s |", m.name)
		for _, v := range vs {
			fmt.Fprintf(w, " %s |", st.text(m, v))
		}
		fmt.Fprintln(w)
	}
}

// text is metric m's median (min–max) for variant v, or "–".
func (st stats) text(m metric, v string) string {
	if s, ok := st[m.name+m.cell][v]; ok {
		return s.format(m.fmt)
	}
	return "–"
}

// printBaseline prints the svidgate variants vs next to their twins, which
// ran the baseline binary, with the ratio of medians current / baseline, for
// the metrics the twins measured.
func printBaseline(w io.Writer, st stats, baseline string, vs []string) {
	fmt.Fprintf(w, "\nAgainst the baseline (svidgate %s), same run: each twin ran the same config in the same shuffled rounds.\n", baseline)
	fmt.Fprintf(w, "Proxy CPU per request at a fixed rate is within 5%% when current / baseline is in [0.95, 1.05].\n\n| cell |")
	for _, v := range vs {
		fmt.Fprintf(w, " %s | (%s) baseline | (%s) current / baseline |", variantNames[v], v, v)
	}
	fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---|", 3*len(vs)))
	for _, m := range metrics {
		if !slices.ContainsFunc(vs, func(v string) bool { _, ok := st.get(m.name, m.cell, v+baseSuffix); return ok }) {
			continue
		}
		fmt.Fprintf(w, "| %s |", m.name)
		for _, v := range vs {
			fmt.Fprintf(w, " %s | %s | %s |", st.text(m, v), st.text(m, v+baseSuffix), baseRatio(st, m, v))
		}
		fmt.Fprintln(w)
	}
}

// baseRatio is current / baseline of metric m's medians for variant v and,
// for proxy CPU per request at a fixed rate, whether it is within 5%.
func baseRatio(st stats, m metric, v string) string {
	x, ok1 := st.get(m.name, m.cell, v)
	y, ok2 := st.get(m.name, m.cell, v+baseSuffix)
	if !ok1 || !ok2 || m.delta || y <= 0 {
		return "–"
	}
	r := x / y
	if m.name != cpuPerReq {
		return fmt.Sprintf("%.2f", r)
	}
	if math.Abs(r-1) <= 0.05 {
		return fmt.Sprintf("%.3f, within 5%%", r)
	}
	return fmt.Sprintf("%.3f, NOT within 5%%", r)
}

// printRatios prints ratios of medians, svidgate over nginx and HAProxy.
func printRatios(w io.Writer, st stats) {
	fmt.Fprintf(w, "\nRatios of medians (svidgate / other):\n\n| metric | (b)/nginx | (b)/HAProxy | (c)/nginx | (c)/HAProxy |\n|---|---|---|---|---|\n")
	for _, m := range []struct{ label, name, cell string }{
		{"keep-alive knee (higher is better)", "HTTP/1.1 keep-alive knee, req/s", "h1knee"},
		{"full handshakes/s (higher is better)", "New mTLS connection per request: full handshakes/s", "hs"},
		{"proxy CPU per request at 5k rps (lower is better)", cpuPerReq, "h1"},
		{"HTTP/2 CPU per request (lower is better)", cpuPerReq, "h2"},
		{"gRPC CPU per request (lower is better)", cpuPerReq, "grpc"},
		{"p99 at 5k rps (lower is better)", "  p99 ms", "h1"},
		{"RSS at 1k rps (lower is better)", "1k rps over 100 connections: proxy RSS MB", "rss1k"},
		{"KB per idle connection (lower is better)", "10k idle mTLS connections: KB each", "idle"},
	} {
		fmt.Fprintf(w, "| %s |", m.label)
		for _, pair := range [][2]string{{"b", "d"}, {"b", "e"}, {"c", "d"}, {"c", "e"}} {
			x, ok1 := st.get(m.name, m.cell, pair[0])
			y, ok2 := st.get(m.name, m.cell, pair[1])
			if ok1 && ok2 && y != 0 {
				fmt.Fprintf(w, " %.2f |", x/y)
			} else {
				fmt.Fprintf(w, " – |")
			}
		}
		fmt.Fprintln(w)
	}
}

// printTargets checks the medians against the targets of issue 7.
func printTargets(w io.Writer, st stats) {
	get := st.get
	fmt.Fprintf(w, "\nTargets (issue 7), from the medians above:\n\n")
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	check := func(desc string, f func() (string, bool, bool)) {
		detail, ok, have := f()
		if !have {
			fmt.Fprintf(w, "- %s: not measured\n", desc)
			return
		}
		fmt.Fprintf(w, "- %s: %s (%s)\n", desc, verdict(ok), detail)
	}
	for _, v := range []string{"b", "c"} {
		check("added p99 at 5,000 rps keep-alive ≤ 1 ms, "+variantNames[v], func() (string, bool, bool) {
			x, ok := get("  added p99 over (a), ms", "h1", v)
			return fmt.Sprintf("%.3f ms", x), x <= 1, ok
		})
	}
	for _, o := range []string{"d", "e"} {
		check("keep-alive knee ≥ 0.8 × "+variantNames[o]+", (b)", func() (string, bool, bool) {
			x, ok1 := get("HTTP/1.1 keep-alive knee, req/s", "h1knee", "b")
			y, ok2 := get("HTTP/1.1 keep-alive knee, req/s", "h1knee", o)
			return fmt.Sprintf("%.0f vs %.0f: %.2f×", x, y, x/y), x >= 0.8*y, ok1 && ok2
		})
	}
	check("full handshakes/s ≥ 0.9 × nginx, (b)", func() (string, bool, bool) {
		x, ok1 := get("New mTLS connection per request: full handshakes/s", "hs", "b")
		y, ok2 := get("New mTLS connection per request: full handshakes/s", "hs", "d")
		return fmt.Sprintf("%.0f vs %.0f: %.2f×", x, y, x/y), x >= 0.9*y, ok1 && ok2
	})
	check("(c) ≤ 1.25 × (b) proxy CPU per request at 5k rps", func() (string, bool, bool) {
		x, ok1 := get(cpuPerReq, "h1", "c")
		y, ok2 := get(cpuPerReq, "h1", "b")
		return fmt.Sprintf("%.1f vs %.1f ms/1k: %.2f×", x, y, x/y), x <= 1.25*y, ok1 && ok2
	})
	for _, v := range []string{"b", "c"} {
		check("RSS ≤ 40 MB at 1,000 rps over 100 connections, "+variantNames[v], func() (string, bool, bool) {
			x, ok := get("1k rps over 100 connections: proxy RSS MB", "rss1k", v)
			return fmt.Sprintf("%.1f MB", x), x <= 40, ok
		})
		check("≤ 50 KB per idle mTLS connection, "+variantNames[v], func() (string, bool, bool) {
			x, ok := get("10k idle mTLS connections: KB each", "idle", v)
			return fmt.Sprintf("%.1f KB", x), x <= 50, ok
		})
	}
	fmt.Fprintf(w, "- policy decision with 100 rules ≤ 1 µs and 0 allocs: see `make bench-micro`\n")
}
