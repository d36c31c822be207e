package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/svidgate/svidgate/internal/audit"
	"github.com/svidgate/svidgate/internal/normalize"
	"github.com/svidgate/svidgate/policy"
)

// policySuggest writes a policy that allows what an audit trail shows.
func policySuggest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("policy suggest", flag.ContinueOnError)
	out := fs.String("o", "", "write the policy to `file` instead of standard output")
	listener := fs.String("listener", "", "use only the records of this `listener` (a policy belongs to one listener)")
	denied := fs.Bool("include-denied", false, `also allow requests that were denied only because no rule matched (a trail recorded under a deny-all or dry-run policy); never those an explicit deny rule refused`)
	collapse := fs.Int("collapse", 3, "replace a path or SPIFFE ID segment by * where at least `N` different values were seen in its place")
	files, code, ok := parseFiles(fs, args, stderr)
	if !ok {
		return code
	}
	if *collapse < 2 {
		fmt.Fprintf(stderr, "svidgate policy suggest: -collapse %d: want 2 or more\n", *collapse)
		return 2
	}
	s := newSuggester(*collapse, *listener, *denied)
	if err := audit.Read(files, func(_ audit.Position, _ []byte, r *audit.Record) error {
		s.add(r)
		return nil
	}); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	doc, rules := s.policy(files)
	if _, err := policy.Parse("suggested.toml", doc); err != nil {
		fmt.Fprintf(stderr, "svidgate policy suggest: the suggested policy does not load (a bug; please report it):\n%v\n", err)
		return 1
	}
	if *out != "" {
		if err := os.WriteFile(*out, doc, 0o644); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	} else if _, err := stdout.Write(doc); err != nil {
		return 1
	}
	fmt.Fprintf(stderr, "%d records used, %d skipped (%s); %d rules\n", s.used, s.skipped(), s.skipReasons(), rules)
	if len(s.listeners) > 1 && *listener == "" {
		fmt.Fprintf(stderr, "note: the records come from %d listeners (%s); a policy belongs to one: pass -listener\n", len(s.listeners), strings.Join(sortedKeys(s.listeners), ", "))
	}
	return 0
}

type callerSeen struct {
	http        map[string]map[string]bool // method → paths
	grpc        map[string]bool
	n           int
	first, last time.Time
}

type suggester struct {
	min       int
	listener  string
	denied    bool
	callers   map[string]*callerSeen
	listeners map[string]bool
	used      int
	skips     map[string]int
}

func newSuggester(min int, listener string, denied bool) *suggester {
	return &suggester{min: min, listener: listener, denied: denied,
		callers: map[string]*callerSeen{}, listeners: map[string]bool{}, skips: map[string]int{}}
}

func (s *suggester) skip(why string) { s.skips[why]++ }

func (s *suggester) skipped() int {
	n := 0
	for _, v := range s.skips {
		n += v
	}
	return n
}

func (s *suggester) skipReasons() string {
	if len(s.skips) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range sortedKeys(s.skips) {
		parts = append(parts, fmt.Sprintf("%d %s", s.skips[k], k))
	}
	return strings.Join(parts, ", ")
}

func (s *suggester) add(r *audit.Record) {
	switch {
	case s.listener != "" && r.Listener != s.listener:
		s.skip("other listener")
		return
	case r.Mode != "inbound":
		s.skip("not inbound")
		return
	case r.Source.SPIFFEID == "":
		s.skip("without caller")
		return
	}
	switch r.Decision.Result {
	case audit.ResultAllow, audit.ResultLimited:
	case audit.ResultDeny:
		if !s.denied || r.Decision.Reason != policy.ReasonNoMatch {
			s.skip("denied")
			return
		}
	default:
		s.skip("not decided")
		return
	}
	c := s.callers[r.Source.SPIFFEID]
	if c == nil {
		c = &callerSeen{http: map[string]map[string]bool{}, grpc: map[string]bool{}}
		s.callers[r.Source.SPIFFEID] = c
	}
	if g := r.Request.GRPCMethod; g != "" && validGRPCName(g) {
		c.grpc[g] = true
	} else {
		p, m := r.Request.Path, r.Request.Method
		if n, err := normalize.Path(p); err != nil || n != p || strings.Contains(p, "*") || !validMethod(m) {
			s.skip("not expressible as a pattern")
			return
		}
		if c.http[m] == nil {
			c.http[m] = map[string]bool{}
		}
		c.http[m][p] = true
	}
	c.n++
	if c.first.IsZero() || r.Time.Before(c.first) {
		c.first = r.Time
	}
	if r.Time.After(c.last) {
		c.last = r.Time
	}
	s.listeners[r.Listener] = true
	s.used++
}

// suggestedRule is one [[rule]] before it is named.
type suggestedRule struct {
	methods []string // nil for a gRPC rule
	paths   []string
	grpc    []string
}

func (r suggestedRule) key() string {
	return strings.Join(r.methods, ",") + "|" + strings.Join(r.paths, ",") + "|" + strings.Join(r.grpc, ",")
}

// rulesOf turns what one caller did into rules: per method the paths seen,
// collapsed; methods with the same paths share a rule.
func (s *suggester) rulesOf(c *callerSeen) []suggestedRule {
	byPaths := map[string]*suggestedRule{}
	var out []*suggestedRule
	for _, m := range sortedKeys(c.http) {
		t := &segTrie{}
		for p := range c.http[m] {
			t.insert(strings.Split(p[1:], "/"))
		}
		t.collapse(s.min, 0)
		var paths []string
		t.patterns("", &paths)
		slices.Sort(paths)
		k := strings.Join(paths, "\n")
		if r := byPaths[k]; r != nil {
			r.methods = append(r.methods, m)
			continue
		}
		r := &suggestedRule{methods: []string{m}, paths: paths}
		byPaths[k] = r
		out = append(out, r)
	}
	if len(c.grpc) > 0 {
		byService := map[string][]string{}
		for g := range c.grpc {
			svc, m, _ := strings.Cut(g[1:], "/")
			byService[svc] = append(byService[svc], m)
		}
		var pats []string
		for _, svc := range sortedKeys(byService) {
			if ms := byService[svc]; len(ms) >= s.min {
				pats = append(pats, "/"+svc+"/*")
			} else {
				for _, m := range ms {
					pats = append(pats, "/"+svc+"/"+m)
				}
			}
		}
		slices.Sort(pats)
		out = append(out, &suggestedRule{grpc: pats})
	}
	rs := make([]suggestedRule, len(out))
	for i, r := range out {
		rs[i] = *r
	}
	return rs
}

type callerGroup struct {
	callers     []string
	rules       []suggestedRule
	n           int
	first, last time.Time
}

// policy renders the suggestion as TOML and counts its rules. Callers
// that did exactly the same share rules, and their IDs are collapsed
// into a pattern where enough of them differ in one segment only.
func (s *suggester) policy(files []string) ([]byte, int) {
	groups := map[string]*callerGroup{}
	for _, id := range sortedKeys(s.callers) {
		c := s.callers[id]
		rules := s.rulesOf(c)
		var ks []string
		for _, r := range rules {
			ks = append(ks, r.key())
		}
		k := strings.Join(ks, "\n")
		g := groups[k]
		if g == nil {
			g = &callerGroup{rules: rules, first: c.first}
			groups[k] = g
		}
		g.callers = append(g.callers, id)
		g.n += c.n
		if c.first.Before(g.first) {
			g.first = c.first
		}
		if c.last.After(g.last) {
			g.last = c.last
		}
	}
	var list []*callerGroup
	for _, g := range groups {
		g.callers = collapseIDs(g.callers, s.min)
		list = append(list, g)
	}
	slices.SortFunc(list, func(a, b *callerGroup) int { return strings.Compare(a.callers[0], b.callers[0]) })

	var b strings.Builder
	fmt.Fprintf(&b, "# Suggested by svidgate policy suggest from %d audit records in %s.\n", s.used, strings.Join(files, ", "))
	b.WriteString("# It allows the callers, methods and paths that were seen (allowed requests")
	if s.denied {
		b.WriteString(", and requests denied because no rule matched")
	}
	b.WriteString(");\n# everything else is denied. Review it, then run svidgate validate.\nversion = 1\n")
	ids := map[string]bool{}
	rules := 0
	for _, g := range list {
		for _, r := range g.rules {
			rules++
			id := ruleID(g.callers[0], r, ids)
			fmt.Fprintf(&b, "\n[[rule]]\nid          = %s\n", tomlString(id))
			fmt.Fprintf(&b, "description = %s\n", tomlString(fmt.Sprintf("seen: these callers made %d requests between %s and %s", g.n,
				g.first.UTC().Format(time.RFC3339), g.last.UTC().Format(time.RFC3339))))
			b.WriteString("effect      = \"allow\"\n")
			fmt.Fprintf(&b, "callers     = %s\n", tomlList(g.callers))
			if r.grpc != nil {
				fmt.Fprintf(&b, "grpc        = %s\n", tomlList(r.grpc))
				continue
			}
			fmt.Fprintf(&b, "methods     = %s\n", tomlList(r.methods))
			fmt.Fprintf(&b, "paths       = %s\n", tomlList(r.paths))
		}
	}
	return []byte(b.String()), rules
}

// segTrie holds "/"-separated names by segment.
type segTrie struct {
	end  bool
	kids map[string]*segTrie
}

func (t *segTrie) insert(segs []string) {
	for _, s := range segs {
		if t.kids == nil {
			t.kids = map[string]*segTrie{}
		}
		k := t.kids[s]
		if k == nil {
			k = &segTrie{}
			t.kids[s] = k
		}
		t = k
	}
	t.end = true
}

func (t *segTrie) merge(o *segTrie) {
	t.end = t.end || o.end
	for s, k := range o.kids {
		if t.kids == nil {
			t.kids = map[string]*segTrie{}
		}
		if mine := t.kids[s]; mine != nil {
			mine.merge(k)
		} else {
			t.kids[s] = k
		}
	}
}

// collapse replaces the children of a node by one "*" child when at least
// min of them were seen, or at least two that all look like identifiers
// (numbers, UUIDs, hashes). The first segment (depth 0) is never
// collapsed: it usually names the API, not an instance.
func (t *segTrie) collapse(min, depth int) {
	var lits []string
	for s := range t.kids {
		if s != "" && s != "*" {
			lits = append(lits, s)
		}
	}
	if depth > 0 && (len(lits) >= min || len(lits) >= 2 && all(lits, looksLikeID)) {
		star := t.kids["*"]
		if star == nil {
			star = &segTrie{}
		}
		for _, s := range lits {
			star.merge(t.kids[s])
			delete(t.kids, s)
		}
		t.kids["*"] = star
	}
	for _, k := range t.kids {
		k.collapse(min, depth+1)
	}
}

func (t *segTrie) patterns(prefix string, out *[]string) {
	if t.end {
		*out = append(*out, prefix)
	}
	for _, s := range sortedKeys(t.kids) {
		t.kids[s].patterns(prefix+"/"+s, out)
	}
}

// collapseIDs collapses SPIFFE IDs of one trust domain into patterns.
func collapseIDs(ids []string, min int) []string {
	byTD := map[string]*segTrie{}
	for _, id := range ids {
		rest := strings.TrimPrefix(id, "spiffe://")
		td, path, _ := strings.Cut(rest, "/")
		if byTD[td] == nil {
			byTD[td] = &segTrie{}
		}
		byTD[td].insert(strings.Split(path, "/"))
	}
	var out []string
	for _, td := range sortedKeys(byTD) {
		t := byTD[td]
		t.collapse(min, 0)
		t.patterns("spiffe://"+td, &out)
	}
	slices.Sort(out)
	return out
}

func all(ss []string, f func(string) bool) bool {
	for _, s := range ss {
		if !f(s) {
			return false
		}
	}
	return true
}

// looksLikeID is true for a segment that names an instance rather than a
// kind: all digits, or 8 or more hex digits and dashes with a digit.
func looksLikeID(s string) bool {
	digits, hex := 0, true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			digits++
		case 'a' <= c && c <= 'f', 'A' <= c && c <= 'F', c == '-':
		default:
			hex = false
		}
	}
	return digits == len(s) || hex && digits > 0 && len(s) >= 8
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validGRPCName is true for "/package.Service/Method" of identifiers.
func validGRPCName(g string) bool {
	svc, m, ok := strings.Cut(strings.TrimPrefix(g, "/"), "/")
	if !strings.HasPrefix(g, "/") || !ok || !isIdent(m) {
		return false
	}
	for _, part := range strings.Split(svc, ".") {
		if !isIdent(part) {
			return false
		}
	}
	return true
}

func isIdent(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// ruleID names a rule after its caller's last literal segment and what it
// allows: "frontend-get-head", "checkout-grpc".
func ruleID(caller string, r suggestedRule, taken map[string]bool) string {
	base := "caller"
	segs := strings.Split(strings.TrimPrefix(caller, "spiffe://"), "/")
	for i := len(segs) - 1; i >= 1; i-- {
		if segs[i] != "*" && segs[i] != "**" {
			base = segs[i]
			break
		}
	}
	what := "grpc"
	if r.grpc == nil {
		what = strings.Join(r.methods, "-")
	}
	id := sanitizeID(base + "-" + what)
	for n := 2; taken[id]; n++ {
		id = sanitizeID(fmt.Sprintf("%s-%s-%d", base, what, n))
	}
	taken[id] = true
	return id
}

func sanitizeID(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	id := b.String()
	if id == "" || !('a' <= id[0] && id[0] <= 'z' || '0' <= id[0] && id[0] <= '9') {
		id = "r" + id
	}
	return id
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, c)
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func tomlList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = tomlString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
