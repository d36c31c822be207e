package policy

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/svidgate/svidgate/internal/tomlpos"
)

// Error is one problem found in a policy file. [Parse] and [Load] return
// every problem they find, each an *Error, joined with [errors.Join]; their
// text is one "file:line:col: message" line per problem.
type Error struct {
	File string
	Line int // 1-based
	Col  int // 1-based, in bytes
	Msg  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Load reads the policy file filename and parses it with [Parse].
func Load(filename string) (*Policy, error) {
	data, err := os.ReadFile(filename)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(filename, data)
}

// Parse parses and compiles the TOML policy in data. filename is used in
// error messages only.
//
// Parse is strict: unknown keys, values of the wrong type, unknown enum
// values, malformed SPIFFE IDs and patterns, duplicate rule ids, empty lists
// and missing required keys are all errors. It reports every problem it
// finds (see [Error]); a policy with any problem is not returned.
func Parse(filename string, data []byte) (*Policy, error) {
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: filename, Line: pe.Position.Line, Col: syntaxCol(data, pe.Position),
				Msg: "invalid TOML: " + pe.Message}
		}
		return nil, fmt.Errorf("policy: %s: %w", filename, err)
	}
	c := &checker{file: filename, loc: tomlpos.Locate(string(data)), ids: map[string]string{}}
	rules := c.document(doc)
	if len(c.errs) > 0 {
		slices.SortStableFunc(c.errs, func(a, b *Error) int {
			return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
		})
		errs := make([]error, len(c.errs))
		for i, e := range c.errs {
			errs[i] = e
		}
		return nil, errors.Join(errs...)
	}
	sum := sha256.Sum256(data)
	return compile(rules, hex.EncodeToString(sum[:])), nil
}

// syntaxCol returns the column of a TOML syntax error. BurntSushi/toml
// v1.6 reports a wrong offset for some errors (a duplicate key inside an
// array of tables points past the end of its line); then the column of the
// line's first non-blank character is used instead.
func syntaxCol(data []byte, p toml.Position) int {
	lines := strings.Split(string(data), "\n")
	if p.Line < 1 || p.Line > len(lines) {
		return 1
	}
	line := lines[p.Line-1]
	if p.Col >= 1 && p.Col <= len(line)+1 {
		return p.Col
	}
	return len(line) - len(strings.TrimLeft(line, " \t")) + 1
}

func compile(rules []rule, sum string) *Policy {
	p := &Policy{rules: rules, sha256: sum}
	p.callers.build(rules)
	return p
}

// checker validates a decoded document and collects every error.
type checker struct {
	file string
	loc  *tomlpos.Locator
	errs []*Error
	ids  map[string]string // rule id → where it was first defined
}

func (c *checker) errAt(p tomlpos.Pos, format string, args ...any) {
	c.errs = append(c.errs, &Error{File: c.file, Line: p.Line, Col: p.Col, Msg: fmt.Sprintf(format, args...)})
}

// keyErr reports a problem with the key at path; valErr one with its value.
func (c *checker) keyErr(path, format string, args ...any) {
	c.errAt(c.loc.Key(path), format, args...)
}

func (c *checker) valErr(path, format string, args ...any) {
	c.errAt(c.loc.Value(path), format, args...)
}

var topKeys = []string{"version", "rule"}

func (c *checker) document(doc map[string]any) []rule {
	for _, k := range sortedKeys(doc) {
		if !slices.Contains(topKeys, k) {
			c.keyErr(k, "unknown key %q%s; allowed keys: %s", k, suggest(k, topKeys), strings.Join(topKeys, ", "))
		}
	}
	switch v, ok := doc["version"]; {
	case !ok:
		c.errAt(tomlpos.Pos{Line: 1, Col: 1}, "missing required key %q: write version = 1 at the top of the file", "version")
	case typeName(v) != "integer":
		c.valErr("version", "version must be an integer, got %s", describe(v))
	case v.(int64) != 1:
		c.valErr("version", "version %d is not supported; want 1", v)
	}
	v, ok := doc["rule"]
	if !ok {
		return nil
	}
	var tables []map[string]any
	switch v := v.(type) {
	case []map[string]any:
		tables = v
	case []any:
		for i, e := range v {
			t, ok := e.(map[string]any)
			if !ok {
				c.valErr(tomlpos.Index("rule", i), "rule must be an array of tables ([[rule]]), but element %d is %s", i, describe(e))
				continue
			}
			tables = append(tables, t)
		}
	default:
		c.valErr("rule", "rule must be an array of tables: write [[rule]], not [rule] or rule = ...; got %s", describe(v))
		return nil
	}
	rules := make([]rule, 0, len(tables))
	for i, t := range tables {
		rules = append(rules, c.rule(tomlpos.Index("rule", i), i, t))
	}
	return rules
}

// A field is one key of a [[rule]] table. Adding a key (such as a future
// [rule.jwt] or [rule.rate] table) is adding an entry to ruleFields and a
// field to rule.
type field struct {
	key      string
	required bool
	check    func(c *checker, r *ruleCtx, path string, v any)
}

// ruleCtx is a rule being checked.
type ruleCtx struct {
	rule
	name      string // `rule "id"` or `rule #n` for messages
	hasMethod bool
	hasPath   bool
}

var ruleFields = []field{
	{"id", true, checkID},
	{"description", false, checkDescription},
	{"effect", true, checkEffect},
	{"mode", false, checkMode},
	{"callers", true, checkCallers},
	{"methods", false, checkMethods},
	{"paths", false, checkPaths},
	{"hosts", false, checkHosts},
	{"grpc", false, checkGRPC},
	{"jwt", false, checkJWT},
	{"rate", false, checkRate},
}

func ruleKeys() []string {
	keys := make([]string, len(ruleFields))
	for i, f := range ruleFields {
		keys[i] = f.key
	}
	return keys
}

func (c *checker) rule(path string, n int, t map[string]any) rule {
	r := &ruleCtx{name: fmt.Sprintf("rule #%d", n+1)}
	if id, ok := t["id"].(string); ok && validID(id) {
		r.name = fmt.Sprintf("rule %q", id)
	}
	known := ruleKeys()
	for _, k := range sortedKeys(t) {
		if slices.Contains(known, k) {
			continue
		}
		hint := suggest(k, known)
		c.keyErr(tomlpos.Join(path, k), "%s: unknown key %q%s; allowed keys: %s",
			r.name, k, hint, strings.Join(known, ", "))
	}
	for _, f := range ruleFields {
		v, ok := t[f.key]
		if !ok {
			if f.required {
				c.keyErr(path, "%s: missing required key %q", r.name, f.key)
			}
			continue
		}
		f.check(c, r, tomlpos.Join(path, f.key), v)
	}
	if r.grpc && r.hasMethod {
		c.keyErr(tomlpos.Join(path, "methods"), "%s: a rule with grpc cannot also have methods: "+
			"every gRPC call is a POST, so grpc already says which calls match; remove methods", r.name)
	}
	if r.grpc && r.hasPath {
		c.keyErr(tomlpos.Join(path, "paths"), "%s: a rule with grpc cannot also have paths: "+
			"a gRPC call's path is its method name, which grpc already matches; remove paths", r.name)
	}
	if r.effect == Deny && (r.jwt != nil || r.rate != nil) {
		c.keyErr(path, "%s: a deny rule cannot have [rule.jwt] or [rule.rate]: they qualify what an allow rule lets through", r.name)
	}
	return r.rule
}

func checkID(c *checker, r *ruleCtx, path string, v any) {
	id, ok := c.str(r, path, v)
	if !ok {
		return
	}
	if !validID(id) {
		c.valErr(path, "%s: id %q is not valid: want a lower-case letter or digit, then lower-case letters, digits, %q, %q or %q",
			r.name, id, ".", "_", "-")
		return
	}
	p := c.loc.Value(path)
	if first, dup := c.ids[id]; dup {
		c.valErr(path, "%s: duplicate id %q (first used at %s)", r.name, id, first)
		return
	}
	c.ids[id] = fmt.Sprintf("%s:%d:%d", c.file, p.Line, p.Col)
	r.id = id
}

func validID(id string) bool {
	if id == "" {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		switch {
		case 'a' <= ch && ch <= 'z', '0' <= ch && ch <= '9':
		case i > 0 && (ch == '.' || ch == '_' || ch == '-'):
		default:
			return false
		}
	}
	return true
}

func checkDescription(c *checker, r *ruleCtx, path string, v any) {
	c.str(r, path, v)
}

func checkEffect(c *checker, r *ruleCtx, path string, v any) {
	switch s, _ := c.enum(r, path, v, "allow", "deny"); s {
	case "allow":
		r.effect = Allow
	case "deny":
		r.effect = Deny
	}
}

func checkMode(c *checker, r *ruleCtx, path string, v any) {
	s, _ := c.enum(r, path, v, "enforce", "dry-run")
	r.dryRun = s == "dry-run"
}

func checkCallers(c *checker, r *ruleCtx, path string, v any) {
	for _, it := range c.list(r, path, v, `callers = [] would match no caller; use "spiffe://<trust-domain>/**" for every workload of a trust domain`) {
		if g, err := compileCaller(it.s); err != nil {
			c.valErr(tomlpos.Index(path, it.i), "%s: callers[%d] %q: %v", r.name, it.i, it.s, err)
		} else {
			r.callers = append(r.callers, g)
		}
	}
}

func checkMethods(c *checker, r *ruleCtx, path string, v any) {
	r.hasMethod = true
	r.methods.restricted = true
	for _, it := range c.list(r, path, v, "methods = [] would match no request; omit methods to match any method") {
		if err := checkMethod(it.s); err != nil {
			c.valErr(tomlpos.Index(path, it.i), "%s: methods[%d] %q: %v", r.name, it.i, it.s, err)
			continue
		}
		if bit := methodBitOf(it.s); bit != 0 {
			r.methods.bits |= bit
		} else {
			r.methods.other = append(r.methods.other, it.s)
		}
	}
}

func checkPaths(c *checker, r *ruleCtx, path string, v any) {
	r.hasPath = true
	list := c.list(r, path, v, "paths = [] would match no request; omit paths to match any path")
	if list != nil {
		r.paths = []glob{}
	}
	for _, it := range list {
		if err := checkPathPattern(it.s); err != nil {
			c.valErr(tomlpos.Index(path, it.i), "%s: paths[%d] %q: %v", r.name, it.i, it.s, err)
			continue
		}
		r.paths = append(r.paths, compileGlob(it.s, 0))
	}
}

func checkHosts(c *checker, r *ruleCtx, path string, v any) {
	list := c.list(r, path, v, "hosts = [] would match no request; omit hosts to match any host")
	if list != nil {
		r.hosts = []hostPattern{}
	}
	for _, it := range list {
		h, err := compileHost(it.s)
		if err != nil {
			c.valErr(tomlpos.Index(path, it.i), "%s: hosts[%d] %q: %v", r.name, it.i, it.s, err)
			continue
		}
		r.hosts = append(r.hosts, h)
	}
}

func checkGRPC(c *checker, r *ruleCtx, path string, v any) {
	r.grpc = true
	r.paths = []glob{}
	for _, it := range c.list(r, path, v, "grpc = [] would match no call; omit grpc for a rule that is not only for gRPC") {
		if err := checkGRPCPattern(it.s); err != nil {
			c.valErr(tomlpos.Index(path, it.i), "%s: grpc[%d] %q: %v", r.name, it.i, it.s, err)
			continue
		}
		r.paths = append(r.paths, compileGlob(it.s, 0))
	}
}

// str returns v as a string, or reports that it is not one.
func (c *checker) str(r *ruleCtx, path string, v any) (string, bool) {
	s, ok := v.(string)
	if !ok {
		c.valErr(path, "%s: %s must be a string, got %s", r.name, lastKey(path), describe(v))
	}
	return s, ok
}

// enum returns v if it is one of allowed, or reports what was allowed.
func (c *checker) enum(r *ruleCtx, path string, v any, allowed ...string) (string, bool) {
	s, ok := v.(string)
	if !ok {
		c.valErr(path, "%s: %s must be a string (%s), got %s", r.name, lastKey(path), quoteList(allowed), describe(v))
		return "", false
	}
	if !slices.Contains(allowed, s) {
		c.valErr(path, "%s: %s %q is not valid; want %s", r.name, lastKey(path), s, quoteList(allowed))
		return "", false
	}
	return s, true
}

// item is a string element of a list and its index in the list.
type item struct {
	i int
	s string
}

// list returns v as a non-empty list of strings. Elements that are not
// strings are reported and left out; the others keep their index.
func (c *checker) list(r *ruleCtx, path string, v any, ifEmpty string) []item {
	key := lastKey(path)
	arr, ok := v.([]any)
	if !ok {
		c.valErr(path, "%s: %s must be a list of strings, got %s", r.name, key, describe(v))
		return nil
	}
	if len(arr) == 0 {
		c.valErr(path, "%s: %s must not be empty: %s", r.name, key, ifEmpty)
		return nil
	}
	out := make([]item, 0, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			c.valErr(tomlpos.Index(path, i), "%s: %s[%d] must be a string, got %s", r.name, key, i, describe(e))
			continue
		}
		out = append(out, item{i, s})
	}
	return out
}

func lastKey(path string) string { return path[strings.LastIndexByte(path, '.')+1:] }

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case time.Time:
		return "datetime"
	case []map[string]any:
		return "array of tables"
	case []any:
		return "array"
	case map[string]any:
		return "table"
	}
	return fmt.Sprintf("%T", v)
}

// describe names v's type and, for scalars, quotes its value.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case int64, float64, bool:
		return fmt.Sprintf("%s %v", typeName(v), v)
	}
	return typeName(v)
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = fmt.Sprintf("%q", s)
	}
	if len(q) == 2 {
		return q[0] + " or " + q[1]
	}
	return "one of " + strings.Join(q, ", ")
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// suggest returns ` (did you mean "x"?)` when key is a near miss of one of
// known.
func suggest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
