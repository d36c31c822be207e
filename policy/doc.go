// Package policy parses svidgate's TOML authorization policy, compiles it,
// and decides requests against it.
//
// A policy is a list of rules. Each rule names the callers it applies to
// (SPIFFE ID patterns) and, optionally, the methods, paths, hosts or gRPC
// methods; it allows or denies, and it is enforced or only reported
// (dry-run):
//
//	version = 1
//
//	[[rule]]
//	id      = "web-reads-orders"
//	effect  = "allow"
//	callers = ["spiffe://example.org/ns/web/sa/*"]
//	methods = ["GET", "HEAD"]
//	paths   = ["/orders", "/orders/**"]
//
// In patterns, a "*" segment matches exactly one non-empty segment and a
// final "**" segment matches one or more segments. Literal segments match
// whole segments only, so "spiffe://example.org/web" never matches
// "spiffe://example.org/webx" and "spiffe://example.org/**" never matches
// "spiffe://example.org.evil/x".
//
// Evaluation does not depend on rule order except for which rule is named:
// any matching enforced deny rule denies; otherwise the first matching
// enforced allow rule allows; otherwise the request is denied by default.
// docs/POLICY.md describes the file format in full.
//
// [Parse] is strict and reports every problem with its file, line and
// column. [Policy.Decide] is for the request path: it works on structures
// prepared at load time and does not allocate unless a dry-run rule
// matches. [Policy.Explain] says, rule by rule, why a request was decided
// as it was.
//
// Inputs are expected in canonical form: the path as returned by
// normalize.Path and the host as returned by normalize.Host, from
// svidgate's internal/normalize package.
package policy
