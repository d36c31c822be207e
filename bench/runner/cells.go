package main

import "fmt"

// cell is one measurement run against every variant.
type cell struct {
	id      string
	cmd     string // loadgen subcommand
	args    []string
	tlsOnly bool // not run against (a), the plaintext backend
}

func cellsFor(quick bool) []cell {
	dur, step, warm, bisect, idleN := "8s", "2s", "1s", "3", "10000"
	if quick {
		dur, step, warm, bisect, idleN = "2s", "1s", "500ms", "2", "2000"
	}
	return []cell{
		// First, on a fresh process: RSS at 1000 rps over 100 connections.
		{id: "rss1k", cmd: "run", args: []string{"-proto", "h1", "-rate", "1000", "-conns", "100", "-duration", dur, "-warmup", warm}},
		{id: "h1", cmd: "run", args: []string{"-proto", "h1", "-rate", "5000", "-conns", "100", "-duration", dur, "-warmup", warm}},
		{id: "h1knee", cmd: "knee", args: []string{"-proto", "h1", "-conns", "100", "-start", "4000", "-factor", "1.5",
			"-bisect", bisect, "-step", step, "-warmup", warm, "-timeout", "2s"}},
		{id: "h2", cmd: "run", args: []string{"-proto", "h2", "-rate", "1000", "-conns", "10", "-streams", "20", "-duration", dur, "-warmup", warm}},
		{id: "grpc", cmd: "run", args: []string{"-proto", "grpc", "-rate", "1000", "-conns", "10", "-streams", "20", "-duration", dur, "-warmup", warm}},
		{id: "hs", tlsOnly: true, cmd: "knee", args: []string{"-proto", "h1", "-newconn", "-conns", "64", "-start", "400", "-factor", "1.5",
			"-bisect", bisect, "-step", step, "-warmup", warm, "-timeout", "2s"}},
		{id: "hsres", tlsOnly: true, cmd: "knee", args: []string{"-proto", "h1", "-newconn", "-resume", "-conns", "64", "-start", "400", "-factor", "1.5",
			"-bisect", bisect, "-step", step, "-warmup", warm, "-timeout", "2s"}},
		// Last: it leaves the most memory behind.
		{id: "idle", tlsOnly: true, cmd: "idle", args: []string{"-n", idleN, "-conns", "50", "-hold", "2s", "-timeout", "10s"}},
	}
}

// summary is the one-line progress note for a cell's result.
func summary(id string, r map[string]any) string {
	g := func(path ...string) float64 { v, _ := num(r, path...); return v }
	switch id {
	case "h1knee", "hs", "hsres":
		s := fmt.Sprintf("knee %.0f/s", g("knee"))
		if steps, ok := r["steps"].([]any); ok {
			s += fmt.Sprintf(" (%d steps)", len(steps))
		}
		if at, ok := r["at"].(map[string]any); ok {
			s += fmt.Sprintf(" p99 %.2f ms cpu %.1f ms/1k resumed %.0f/%.0f", g("at", "p99_ms"), g("at", "cpu_ms_per_1k"), at["resumed"], at["handshakes"])
		}
		return s
	case "idle":
		return fmt.Sprintf("%.0f/%.0f open, %.1f KB/conn, RSS %.1f MB, failed %.0f %v", g("opened"), g("n"), g("per_conn_kb"), g("rss_after_kb")/1024, g("failed"), r["error_sample"])
	}
	s := fmt.Sprintf("achieved %.1f%% p50 %.3f p99 %.3f p99.9 %.3f ms, cpu %.1f ms/1k, rss %.1f MB, errors %.0f",
		100*g("ratio"), g("p50_ms"), g("p99_ms"), g("p999_ms"), g("cpu_ms_per_1k"), g("rss_kb")/1024, g("errors"))
	if e, ok := r["error_sample"].(string); ok {
		s += " (" + e + ")"
	}
	if c, ok := r["curve"].(string); ok && c != "" {
		s += " " + c + " " + r["suite"].(string)
	}
	return s
}
