package policy

import (
	"fmt"
	"slices"
	"strings"
)

// Input is one request as the policy sees it.
type Input struct {
	// Caller is the peer's SPIFFE ID as produced by spiffeid.ID.String, for
	// example "spiffe://example.org/ns/web/sa/frontend". An empty Caller
	// is an unauthenticated request; it matches no rule.
	Caller string `json:"caller"`
	// Host is the request's host, already passed through normalize.Host.
	Host string `json:"host"`
	// Method is the HTTP method, for example "GET".
	Method string `json:"method"`
	// Path is the request path, already passed through normalize.Path.
	// For a gRPC call it is the full method name, "/pkg.Service/Method".
	Path string `json:"path"`
	// GRPC is true when the request is a gRPC call.
	GRPC bool `json:"grpc"`
}

// Result is the outcome of a decision: [Allow] or [Deny].
type Result uint8

// The results of a decision. The zero Result is Deny.
const (
	Deny Result = iota
	Allow
)

// String returns "allow" or "deny".
func (r Result) String() string {
	if r == Allow {
		return "allow"
	}
	return "deny"
}

// MarshalText encodes r as "allow" or "deny".
func (r Result) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText decodes "allow" or "deny".
func (r *Result) UnmarshalText(b []byte) error {
	switch string(b) {
	case "allow":
		*r = Allow
	case "deny":
		*r = Deny
	default:
		return fmt.Errorf(`policy: result %q is not "allow" or "deny"`, b)
	}
	return nil
}

// Reasons given in [Decision.Reason]. They are constant, so they can be
// used as metric label values.
const (
	ReasonAllowed = "allowed by rule"
	ReasonDenied  = "denied by rule"
	ReasonNoMatch = "no rule matched"
)

// Decision is the answer of [Policy.Decide].
type Decision struct {
	// Result is Allow or Deny.
	Result Result `json:"result"`
	// Rule is the id of the deciding rule, or "" when no enforced rule
	// matched and the request is denied by default.
	Rule string `json:"rule"`
	// Reason is one of ReasonAllowed, ReasonDenied and ReasonNoMatch.
	Reason string `json:"reason"`
	// DryRun lists, in file order, the dry-run rules that matched. It is
	// nil unless one did.
	DryRun []DryRunOutcome `json:"dry_run,omitempty"`
	// JWT is the deciding allow rule's [rule.jwt], or nil: the request is
	// allowed only if its JWT-SVID passes JWT.Check.
	JWT *JWTRequirement `json:"-"`
	// Rate is the deciding allow rule's [rule.rate], or nil.
	Rate *RateSpec `json:"-"`
}

// DryRunOutcome reports a dry-run rule that matched a request: what the rule
// would have done had it been enforced. Dry-run rules never change the
// decision.
type DryRunOutcome struct {
	// Rule is the id of the dry-run rule.
	Rule string `json:"rule"`
	// Result is the rule's effect.
	Result Result `json:"result"`
}

// Outcome returns "would_allow" or "would_deny".
func (o DryRunOutcome) Outcome() string {
	if o.Result == Allow {
		return "would_allow"
	}
	return "would_deny"
}

// Policy is a compiled policy. It is immutable, and safe for concurrent use.
type Policy struct {
	rules   []rule
	sha256  string
	callers callerIndex
}

// SHA256 returns the hex-encoded SHA-256 of the policy file's bytes, for
// audit records and status pages.
func (p *Policy) SHA256() string { return p.sha256 }

// Rules returns the number of rules in the policy.
func (p *Policy) Rules() int { return len(p.rules) }

// Decide evaluates the policy for in.
//
// Any matching enforced deny rule denies the request, and the first such
// rule in file order is reported. Otherwise the first matching enforced
// allow rule in file order allows it. Otherwise the request is denied with
// Rule "" and ReasonNoMatch. Matching dry-run rules are listed in
// Decision.DryRun and do not change the result.
//
// Decide does not allocate unless a dry-run rule matches.
func (p *Policy) Decide(in Input) Decision {
	q := newQuery(&in)
	st := scanState{deny: noRule, allow: noRule}
	p.scan(p.callers.exact[in.Caller], &q, &st)
	if p.callers.depths != 0 && strings.HasPrefix(in.Caller, spiffeScheme) {
		// Look up the caller's prefixes that end in "/" after the trust
		// domain: "spiffe://td/", "spiffe://td/ns/", ...
		off := len(spiffeScheme)
		for depth := 0; ; depth++ {
			j := strings.IndexByte(in.Caller[off:], '/')
			if j < 0 {
				break
			}
			off += j + 1
			if p.callers.hasDepth(depth) {
				p.scan(p.callers.prefix[in.Caller[:off]], &q, &st)
			}
		}
	}
	allow, deny := int(st.allow), int(st.deny)
	if deny == noRule {
		deny = -1
	}
	if allow == noRule {
		allow = -1
	}
	return p.decision(allow, deny, p.dryRunOutcomes(st.dryRun))
}

// scan checks the candidate rules of one caller-index bucket.
func (p *Policy) scan(entries []callerEntry, q *query, st *scanState) {
	for k := range entries {
		e := &entries[k]
		if e.slots&q.slotBit == 0 {
			continue
		}
		r := &p.rules[e.rule]
		switch {
		case r.dryRun:
		case r.effect == Deny:
			if e.rule >= st.deny {
				continue
			}
		default:
			if e.rule >= st.allow || st.deny != noRule {
				continue
			}
		}
		if e.glob != nil && !e.glob.match(q.in.Caller) || !r.matchRest(q) {
			continue
		}
		switch {
		case r.dryRun:
			st.dryRun = append(st.dryRun, e.rule)
		case r.effect == Deny:
			st.deny = e.rule
		default:
			st.allow = e.rule
		}
	}
}

// dryRunOutcomes turns the matching dry-run rules, found bucket by bucket,
// into outcomes in file order, each rule once.
func (p *Policy) dryRunOutcomes(idx []int32) []DryRunOutcome {
	if len(idx) == 0 {
		return nil
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	out := make([]DryRunOutcome, len(idx))
	for i, n := range idx {
		out[i] = DryRunOutcome{Rule: p.rules[n].id, Result: p.rules[n].effect}
	}
	return out
}

func (p *Policy) decision(allow, deny int, dry []DryRunOutcome) Decision {
	switch {
	case deny >= 0:
		return Decision{Result: Deny, Rule: p.rules[deny].id, Reason: ReasonDenied, DryRun: dry}
	case allow >= 0:
		r := &p.rules[allow]
		return Decision{Result: Allow, Rule: r.id, Reason: ReasonAllowed, DryRun: dry, JWT: r.jwt, Rate: r.rate}
	default:
		return Decision{Result: Deny, Reason: ReasonNoMatch, DryRun: dry}
	}
}
