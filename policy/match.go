package policy

import (
	"math"
	"math/bits"
	"strings"
)

// rule is one compiled [[rule]] table. Everything a request is matched
// against is prepared at load time; matching neither allocates nor splits.
type rule struct {
	id     string
	effect Result
	dryRun bool
	// grpc rules match only gRPC calls; their patterns are in paths.
	grpc    bool
	methods methodSet
	callers []glob
	hosts   []hostPattern   // nil: any host
	paths   []glob          // nil: any path
	jwt     *JWTRequirement // [rule.jwt]; checked by the caller after Decide
	rate    *RateSpec       // [rule.rate]; applied by the caller after Decide
}

// query is an Input prepared once per decision.
type query struct {
	in      *Input
	method  methodBit
	slotBit uint32 // 1 << slotOf(method, in.GRPC)
}

func newQuery(in *Input) query {
	m := methodBitOf(in.Method)
	return query{in: in, method: m, slotBit: 1 << slotOf(m, in.GRPC)}
}

// numMethodSlots is the number of standard methods plus one for any other
// method.
const numMethodSlots = len(standardMethods) + 1

// slotOf returns the index of a request kind: its method's bit number (or
// len(standardMethods) for other methods), twice, plus one for gRPC.
func slotOf(method methodBit, grpc bool) int {
	n := len(standardMethods)
	if method != 0 {
		n = bits.TrailingZeros16(uint16(method))
	}
	if grpc {
		return 2*n + 1
	}
	return 2 * n
}

// slotMethod is the inverse of slotOf.
func slotMethod(slot int) (methodBit, bool) {
	n := slot / 2
	if n == len(standardMethods) {
		return 0, slot%2 == 1
	}
	return 1 << n, slot%2 == 1
}

// callerIndex finds the rules whose caller patterns can match a caller
// without looking at the others. An exact pattern is filed under the ID
// itself; a wildcard pattern under its literal prefix, which always ends in
// "/" after the trust domain ("spiffe://example.org/ns/"), so a caller needs
// one lookup per "/" in it. Each bucket lists its rules in file order.
type callerIndex struct {
	exact  map[string][]callerEntry
	prefix map[string][]callerEntry
	// depths has bit d set when some prefix has d path segments (bit 63:
	// 63 or more).
	depths uint64
}

// callerEntry is one caller pattern of one rule.
type callerEntry struct {
	rule int32
	// slots has bit slotOf(m, g) set when the rule can match requests
	// of that method and gRPC-ness.
	slots uint32
	// glob is nil for an exact pattern, whose key is the whole ID.
	glob *glob
}

// noRule is larger than any rule index.
const noRule = math.MaxInt32

// scanState is what Decide has found so far.
type scanState struct {
	deny, allow int32 // lowest matching rule index, or noRule
	dryRun      []int32
}

func (ix *callerIndex) build(rules []rule) {
	ix.exact = make(map[string][]callerEntry)
	ix.prefix = make(map[string][]callerEntry)
	for i := range rules {
		r := &rules[i]
		var slots uint32
		for s := 0; s < 2*numMethodSlots; s++ {
			if bit, grpc := slotMethod(s); r.methods.mayHave(bit) && (grpc || !r.grpc) {
				slots |= 1 << s
			}
		}
		for k := range r.callers {
			g := &r.callers[k]
			if g.exact {
				ix.exact[g.raw] = append(ix.exact[g.raw], callerEntry{rule: int32(i), slots: slots})
				continue
			}
			ix.prefix[g.prefix] = append(ix.prefix[g.prefix], callerEntry{rule: int32(i), slots: slots, glob: g})
			// Slashes after "spiffe://": one ends the trust domain.
			depth := strings.Count(g.prefix[len(spiffeScheme):], "/") - 1
			ix.depths |= 1 << min(depth, 63)
		}
	}
}

func (ix *callerIndex) hasDepth(d int) bool {
	return ix.depths&(1<<min(d, 63)) != 0
}

// matchRest reports whether every condition of r but the caller holds for
// q. Cheap checks go first.
func (r *rule) matchRest(q *query) bool {
	if r.grpc && !q.in.GRPC {
		return false
	}
	if !r.methods.has(q.method, q.in.Method) {
		return false
	}
	if r.hosts != nil && !matchHosts(r.hosts, q.in.Host) {
		return false
	}
	return r.paths == nil || matchGlobs(r.paths, q.in.Path)
}

func matchGlobs(gs []glob, s string) bool {
	for i := range gs {
		if gs[i].match(s) {
			return true
		}
	}
	return false
}

func matchHosts(hs []hostPattern, h string) bool {
	for i := range hs {
		if hs[i].match(h) {
			return true
		}
	}
	return false
}

// glob is a compiled pattern of "/"-separated segments: a SPIFFE ID
// pattern, a path pattern or a gRPC method pattern. A "*" segment matches
// exactly one non-empty segment; a final "**" matches one or more segments,
// that is, everything after the preceding "/".
type glob struct {
	raw string
	// exact is true when the pattern has no wildcard; then it matches
	// raw only.
	exact bool
	// prefix is the literal text up to and including the "/" before the
	// first wildcard segment.
	prefix string
	// rest are the segments after prefix.
	rest []segment
}

type segment struct {
	lit  string
	kind segmentKind
}

type segmentKind uint8

const (
	literal  segmentKind = iota
	star                 // "*": one non-empty segment
	starStar             // "**": one or more segments, only last
)

// compileGlob compiles pattern, whose segments begin after the "/" at
// offset root. The pattern has been validated.
func compileGlob(pattern string, root int) glob {
	g := glob{raw: pattern}
	segs := strings.Split(pattern[root+1:], "/")
	first := len(segs)
	for i, s := range segs {
		if s == "*" || s == "**" {
			first = i
			break
		}
	}
	if first == len(segs) {
		g.exact = true
		return g
	}
	g.prefix = pattern[:root+1]
	for _, s := range segs[:first] {
		g.prefix += s + "/"
	}
	for _, s := range segs[first:] {
		switch s {
		case "*":
			g.rest = append(g.rest, segment{kind: star})
		case "**":
			g.rest = append(g.rest, segment{kind: starStar})
		default:
			g.rest = append(g.rest, segment{lit: s})
		}
	}
	return g
}

func (g *glob) match(s string) bool {
	if g.exact {
		return s == g.raw
	}
	if !strings.HasPrefix(s, g.prefix) {
		return false
	}
	s = s[len(g.prefix):]
	for i := range g.rest {
		sg := &g.rest[i]
		if sg.kind == starStar {
			return true
		}
		cur, next, more := strings.Cut(s, "/")
		switch sg.kind {
		case star:
			if cur == "" {
				return false
			}
		default:
			if cur != sg.lit {
				return false
			}
		}
		if more == (i == len(g.rest)-1) {
			return false // the path has more segments, or fewer
		}
		s = next
	}
	return true
}

// hostPattern is an exact host or, when wildcard is set, "*." followed by
// suffix-without-the-dot: exactly one leading label.
type hostPattern struct {
	raw      string
	wildcard bool
	suffix   string // ".example.com" for "*.example.com"
}

func (h *hostPattern) match(host string) bool {
	if !h.wildcard {
		return host == h.raw
	}
	if len(host) <= len(h.suffix) || !strings.HasSuffix(host, h.suffix) {
		return false
	}
	return strings.IndexByte(host[:len(host)-len(h.suffix)], '.') < 0
}

// methodBit identifies a standard HTTP method; 0 is any other method.
type methodBit uint16

// standardMethods are the methods that have a bit, in bit order.
var standardMethods = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}

func methodBitOf(m string) methodBit {
	switch m {
	case "GET":
		return 1 << 0
	case "HEAD":
		return 1 << 1
	case "POST":
		return 1 << 2
	case "PUT":
		return 1 << 3
	case "PATCH":
		return 1 << 4
	case "DELETE":
		return 1 << 5
	case "OPTIONS":
		return 1 << 6
	case "CONNECT":
		return 1 << 7
	case "TRACE":
		return 1 << 8
	}
	return 0
}

// methodSet is the methods of a rule; the zero value is any method.
type methodSet struct {
	restricted bool
	bits       methodBit
	other      []string // methods without a bit
}

// mayHave reports whether a request whose method has bit (0: any method
// without a bit) may be in ms.
func (ms *methodSet) mayHave(bit methodBit) bool {
	if !ms.restricted {
		return true
	}
	if bit != 0 {
		return ms.bits&bit != 0
	}
	return len(ms.other) > 0
}

func (ms *methodSet) has(bit methodBit, m string) bool {
	if !ms.restricted {
		return true
	}
	if bit != 0 {
		return ms.bits&bit != 0
	}
	for _, o := range ms.other {
		if o == m {
			return true
		}
	}
	return false
}
