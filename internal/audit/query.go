package audit

import (
	"fmt"
	"strings"
	"time"
)

// Filter selects records for svidgate audit query. Zero fields select
// everything.
type Filter struct {
	// Caller is a glob over the caller's SPIFFE ID (see MatchGlob).
	Caller string
	// Rule is the deciding rule's id, exactly.
	Rule string
	// Decision is ResultAllow, ResultDeny, ResultLimited or ResultError.
	Decision string
	// Since keeps records at or after this time.
	Since time.Time
}

// CheckDecision validates a -decision value.
func CheckDecision(s string) error {
	switch s {
	case "", ResultAllow, ResultDeny, ResultLimited, ResultError:
		return nil
	}
	return fmt.Errorf("decision %q is not valid; want %s, %s, %s or %s", s, ResultAllow, ResultDeny, ResultLimited, ResultError)
}

// Match reports whether r passes the filter.
func (f *Filter) Match(r *Record) bool {
	if f.Caller != "" {
		from, _ := EdgeOf(r)
		if !MatchGlob(f.Caller, from) {
			return false
		}
	}
	if f.Rule != "" && r.Decision.Rule != f.Rule {
		return false
	}
	if f.Decision != "" && r.Decision.Result != f.Decision {
		return false
	}
	if !f.Since.IsZero() && r.Time.Before(f.Since) {
		return false
	}
	return true
}

// MatchGlob matches s against pattern, where "**" matches any run of
// characters, "*" any run without "/", "?" one character other than "/",
// and every other character itself. So spiffe://example.org/ns/*/sa/web
// matches one namespace, and spiffe://example.org/** every workload.
func MatchGlob(pattern, s string) bool {
	p := pattern
	for len(p) > 0 {
		switch {
		case strings.HasPrefix(p, "**"):
			rest := strings.TrimLeft(p, "*")
			for i := 0; i <= len(s); i++ {
				if MatchGlob(rest, s[i:]) {
					return true
				}
			}
			return false
		case p[0] == '*':
			rest := p[1:]
			for i := 0; i <= len(s); i++ {
				if MatchGlob(rest, s[i:]) {
					return true
				}
				if i < len(s) && s[i] == '/' {
					break
				}
			}
			return false
		case len(s) == 0:
			return false
		case p[0] == '?':
			if s[0] == '/' {
				return false
			}
		case p[0] != s[0]:
			return false
		}
		p, s = p[1:], s[1:]
	}
	return len(s) == 0
}
