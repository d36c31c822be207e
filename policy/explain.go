package policy

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Explanation is the result of [Policy.Explain]: the decision and, for every
// rule in file order, whether it matched and, if not, why. Its fields are
// meant to be encoded as JSON; [Explanation.String] is the report for people.
type Explanation struct {
	Input    Input             `json:"input"`
	Decision Decision          `json:"decision"`
	Rules    []RuleExplanation `json:"rules"`
}

// RuleExplanation says how one rule fared against the input.
type RuleExplanation struct {
	ID     string `json:"id"`
	Effect Result `json:"effect"`
	DryRun bool   `json:"dry_run"`
	// Matched is true when every condition of the rule holds.
	Matched bool `json:"matched"`
	// Deciding is true for the rule named in the decision.
	Deciding bool `json:"deciding"`
	// Mismatches lists every condition that does not hold.
	Mismatches []Mismatch `json:"mismatches,omitempty"`
}

// Mismatch is one condition of a rule that the input does not meet.
type Mismatch struct {
	// Field is the rule key: "callers", "methods", "hosts", "paths" or
	// "grpc".
	Field string `json:"field"`
	// Reason says what the input had and what the rule wanted, for
	// example `method "POST" not in [GET, HEAD]`.
	Reason string `json:"reason"`
}

// Explain evaluates the policy for in as [Policy.Decide] does, and says for
// every rule whether it matched and which conditions failed. It is meant for
// "svidgate policy explain" and for tests, not for the request path.
func (p *Policy) Explain(in Input) Explanation {
	q := newQuery(&in)
	e := Explanation{Input: in, Rules: make([]RuleExplanation, len(p.rules))}
	allow, deny := -1, -1
	var dry []DryRunOutcome
	for i := range p.rules {
		r := &p.rules[i]
		re := RuleExplanation{ID: r.id, Effect: r.effect, DryRun: r.dryRun, Mismatches: r.mismatches(&q)}
		re.Matched = len(re.Mismatches) == 0
		switch {
		case !re.Matched:
		case r.dryRun:
			dry = append(dry, DryRunOutcome{Rule: r.id, Result: r.effect})
		case r.effect == Deny && deny < 0:
			deny = i
		case r.effect == Allow && allow < 0:
			allow = i
		}
		e.Rules[i] = re
	}
	e.Decision = p.decision(allow, deny, dry)
	switch {
	case deny >= 0:
		e.Rules[deny].Deciding = true
	case allow >= 0:
		e.Rules[allow].Deciding = true
	}
	return e
}

// mismatches checks every condition of r, in the order match checks them.
func (r *rule) mismatches(q *query) []Mismatch {
	var ms []Mismatch
	add := func(field, format string, args ...any) {
		ms = append(ms, Mismatch{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if r.grpc && !q.in.GRPC {
		add("grpc", "request is not a gRPC call")
	}
	if !r.methods.has(q.method, q.in.Method) {
		add("methods", "method %q not in [%s]", q.in.Method, strings.Join(r.methods.list(), ", "))
	}
	if r.hosts != nil && !matchHosts(r.hosts, q.in.Host) {
		hs := make([]string, len(r.hosts))
		for i, h := range r.hosts {
			hs[i] = h.raw
		}
		add("hosts", "host %q not in [%s]", q.in.Host, strings.Join(hs, ", "))
	}
	if !matchGlobs(r.callers, q.in.Caller) {
		if q.in.Caller == "" {
			add("callers", "request is unauthenticated (no caller SPIFFE ID)")
		} else {
			add("callers", "caller %q not in [%s]", q.in.Caller, globList(r.callers))
		}
	}
	if r.paths != nil && !matchGlobs(r.paths, q.in.Path) {
		if r.grpc {
			add("grpc", "gRPC method %q not in [%s]", q.in.Path, globList(r.paths))
		} else {
			add("paths", "path %q not in [%s]", q.in.Path, globList(r.paths))
		}
	}
	return ms
}

func globList(gs []glob) string {
	s := make([]string, len(gs))
	for i := range gs {
		s[i] = gs[i].raw
	}
	return strings.Join(s, ", ")
}

// list returns the methods of ms in a stable order.
func (ms *methodSet) list() []string {
	var out []string
	for i, m := range standardMethods {
		if ms.bits&(1<<i) != 0 {
			out = append(out, m)
		}
	}
	return append(out, ms.other...)
}

// String returns the report written by [Explanation.WriteTo].
func (e Explanation) String() string {
	var b bytes.Buffer
	_, _ = e.WriteTo(&b)
	return b.String()
}

// WriteTo writes a report for people: the input, the decision, dry-run
// outcomes, and one line per rule saying "match" or why not.
func (e Explanation) WriteTo(w io.Writer) (int64, error) {
	var b bytes.Buffer
	in := e.Input
	caller := in.Caller
	if caller == "" {
		caller = "(unauthenticated)"
	}
	kind := "HTTP"
	if in.GRPC {
		kind = "gRPC"
	}
	fmt.Fprintf(&b, "request:  %s %s %s host %q caller %s\n", kind, in.Method, in.Path, in.Host, caller)
	d := e.Decision
	if d.Rule != "" {
		fmt.Fprintf(&b, "decision: %s by rule %q (%s)\n", d.Result, d.Rule, d.Reason)
	} else {
		fmt.Fprintf(&b, "decision: %s (%s)\n", d.Result, d.Reason)
	}
	for _, o := range d.DryRun {
		fmt.Fprintf(&b, "dry-run:  rule %q %s\n", o.Rule, o.Outcome())
	}
	if len(e.Rules) == 0 {
		b.WriteString("rules:    none (the policy denies every request)\n")
	} else {
		b.WriteString("rules:\n")
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, r := range e.Rules {
		mode := "enforce"
		if r.DryRun {
			mode = "dry-run"
		}
		mark := " "
		if r.Deciding {
			mark = "*"
		}
		verdict := "match"
		if !r.Matched {
			rs := make([]string, len(r.Mismatches))
			for i, m := range r.Mismatches {
				rs[i] = m.Reason
			}
			verdict = "no match: " + strings.Join(rs, "; ")
		}
		fmt.Fprintf(tw, "  %s %s\t%s\t%s\t%s\n", mark, r.ID, r.Effect, mode, verdict)
	}
	_ = tw.Flush()
	n, err := w.Write(b.Bytes())
	return int64(n), err
}
