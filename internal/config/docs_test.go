package config

import (
	"bufio"
	"encoding"
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// configDoc is docs/CONFIG.md, as errors name it; configDocPath is where the
// test reads it.
const (
	configDoc     = "docs/CONFIG.md"
	configDocPath = "../../" + configDoc
)

// A keyInfo is where the Config struct holds a key path of gateway.toml.
type keyInfo struct {
	field string // Config.Listeners[].UpstreamTimeout
	array bool   // a table: [[name]] rather than [name]
}

// structKeys walks t by reflection, as the TOML decoder does, and returns
// every key path it decodes (leaves) and every table it decodes (tables),
// each with the Go field that holds it.
func structKeys(t reflect.Type) (leaves, tables map[string]keyInfo) {
	leaves, tables = map[string]keyInfo{}, map[string]keyInfo{}
	var walk func(t reflect.Type, prefix, field string)
	walk = func(t reflect.Type, prefix, field string) {
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "-" {
				continue
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if f.Anonymous && name == "" && isTable(ft) {
				walk(ft, prefix, field) // embedded: its keys are the parent's
				continue
			}
			if name == "" {
				name = f.Name // the decoder's fallback
			}
			path, gofield := prefix+name, field+"."+f.Name
			switch {
			case isTable(ft):
				tables[path] = keyInfo{field: gofield}
				walk(ft, path+".", gofield)
			case ft.Kind() == reflect.Slice && isTable(ft.Elem()):
				tables[path] = keyInfo{field: gofield + "[]", array: true}
				walk(ft.Elem(), path+".", gofield+"[]")
			default:
				leaves[path] = keyInfo{field: gofield}
			}
		}
	}
	walk(t, "", t.Name())
	return leaves, tables
}

// isTable reports whether t decodes from a TOML table: a struct that does not
// decode itself from a value (Duration, SPIFFEID and the like are leaves).
func isTable(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return false
	}
	p := reflect.PointerTo(t)
	return !p.Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) && !p.Implements(reflect.TypeFor[toml.Unmarshaler]())
}

// A docKey is a key written in an example block of docs/CONFIG.md.
type docKey struct {
	path  string
	line  int
	def   string // the X of a "# default X" comment on its line, or ""
	array bool   // a [[table]] header
	table bool   // a header, not a key
}

var (
	// A table header, possibly commented out: [ratelimit.redis], [[listener]].
	docHeader = regexp.MustCompile(`^#?\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?\s*(#.*)?$`)
	// A key line, possibly commented out: key = value, # key = value.
	docKeyLine = regexp.MustCompile(`^#?\s*([A-Za-z0-9_.-]+)\s*=\s*(.*)$`)
	// The default named in a key line's comment: "# default 30s", "...; default: 5m".
	docDefault = regexp.MustCompile(`(?i)\bdefault:?\s+("[^"]*"|\S+)`)
)

// readConfigDoc returns the keys and table headers of the ```toml blocks of
// docs/CONFIG.md, and each block's text (its commented-out lines as they are).
func readConfigDoc(t *testing.T) (keys []docKey, blocks []string) {
	t.Helper()
	f, err := os.Open(configDocPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		in    bool
		table string
		block strings.Builder
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case !in && strings.HasPrefix(trimmed, "```toml"):
			in, table = true, ""
			block.Reset()
			continue
		case in && strings.HasPrefix(trimmed, "```"):
			in = false
			blocks = append(blocks, block.String())
			continue
		case !in:
			continue
		}
		block.WriteString(line + "\n")
		if m := docHeader.FindStringSubmatch(trimmed); m != nil {
			table = m[2]
			keys = append(keys, docKey{path: table, line: n, table: true, array: m[1] == "[["})
			continue
		}
		m := docKeyLine.FindStringSubmatch(trimmed)
		if m == nil {
			continue
		}
		path := m[1]
		if table != "" {
			path = table + "." + path
		}
		k := docKey{path: path, line: n}
		if d := docDefault.FindStringSubmatch(comment(m[2])); d != nil {
			k.def = strings.TrimRight(d[1], ".,;:)")
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if in {
		t.Fatalf("%s: a ```toml block is not closed", configDoc)
	}
	if len(keys) == 0 {
		t.Fatalf("%s: no keys found in ```toml blocks", configDoc)
	}
	return keys, blocks
}

// comment returns the comment of "value  # comment": what follows the first
// # outside quotes.
func comment(s string) string {
	var quote rune
	for i, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case r == '#':
			return s[i+1:]
		}
	}
	return ""
}

// TestConfigDocKeys checks that docs/CONFIG.md documents every key
// config.Config decodes, and nothing else.
func TestConfigDocKeys(t *testing.T) {
	leaves, tables := structKeys(reflect.TypeFor[Config]())
	keys, _ := readConfigDoc(t)
	documented := map[string]bool{}
	for _, k := range keys {
		documented[k.path] = true
		if k.table {
			s, ok := tables[k.path]
			switch {
			case !ok:
				t.Errorf("%s:%d documents table [%s], but config.Config has no table of that name", configDoc, k.line, k.path)
			case s.array != k.array:
				t.Errorf("%s:%d writes table %s as %s, but %s decodes it as %s", configDoc, k.line, k.path, header(k.path, k.array), s.field, header(k.path, s.array))
			}
			continue
		}
		if _, ok := leaves[k.path]; !ok {
			t.Errorf("%s:%d documents key %q, but config.Config has no field with that toml key", configDoc, k.line, k.path)
		}
	}
	for _, path := range slices.Sorted(maps.Keys(leaves)) {
		if !documented[path] {
			t.Errorf("config.Config decodes key %q (field %s), but %s does not document it", path, leaves[path].field, configDoc)
		}
	}
}

func header(name string, array bool) string {
	if array {
		return "[[" + name + "]]"
	}
	return "[" + name + "]"
}

// TestConfigDocDefaults checks every "# default X" written on a key's line
// in docs/CONFIG.md against the value Load gives that key when it is absent.
func TestConfigDocDefaults(t *testing.T) {
	c := &Config{File: "/etc/svidgate/gateway.toml", Listeners: []Listener{{}}}
	c.defaults()
	keys, _ := readConfigDoc(t)
	checked := 0
	for _, k := range keys {
		if k.def == "" {
			continue
		}
		v, ok := valueAt(reflect.ValueOf(c).Elem(), k.path)
		if !ok {
			continue // TestConfigDocKeys names it
		}
		if msg := sameDefault(v, k.def); msg != "" {
			t.Errorf("%s:%d: %s says default %s, but Load leaves it %s", configDoc, k.line, k.path, k.def, msg)
		}
		checked++
	}
	if checked == 0 {
		t.Errorf("%s: no \"# default X\" found; the test reads none", configDoc)
	}
}

// valueAt follows a key path through v by toml tags; an array of tables
// stands for its first element.
func valueAt(v reflect.Value, path string) (reflect.Value, bool) {
	for name := range strings.SplitSeq(path, ".") {
		for v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		if v.Kind() == reflect.Slice && isTable(v.Type().Elem()) {
			if v.Len() == 0 {
				return reflect.Value{}, false
			}
			v = v.Index(0)
		}
		var ok bool
		if v, ok = field(v, name); !ok {
			return reflect.Value{}, false
		}
	}
	return v, true
}

// field returns the field of struct v decoded from key name, looking into
// embedded structs as the decoder does.
func field(v reflect.Value, name string) (reflect.Value, bool) {
	if v.Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if f.Anonymous && tag == "" && isTable(f.Type) {
			if inner, ok := field(reflect.Indirect(v.Field(i)), name); ok {
				return inner, true
			}
			continue
		}
		if tag == name || tag == "" && f.Name == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// sameDefault compares a value with a documented default; it returns "" when
// they agree, and otherwise the value as it is.
func sameDefault(v reflect.Value, def string) string {
	def = strings.Trim(def, `"'`)
	if d, ok := v.Interface().(Duration); ok {
		want, err := time.ParseDuration(def)
		if err != nil || want != d.Duration {
			return d.Duration.String()
		}
		return ""
	}
	var got string
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		want, err := strconv.ParseInt(def, 0, 64)
		if err != nil || want != v.Int() {
			return strconv.FormatInt(v.Int(), 10)
		}
		return ""
	case reflect.Bool:
		got = strconv.FormatBool(v.Bool())
	case reflect.String:
		got = v.String()
	default:
		if s, ok := v.Interface().(fmt.Stringer); ok {
			got = s.String()
		} else {
			return fmt.Sprintf("%v (a %s, which the test cannot compare)", v.Interface(), v.Type())
		}
	}
	if got != def {
		return strconv.Quote(got)
	}
	return ""
}

// TestConfigDocExample checks that each example in docs/CONFIG.md, as
// written (commented-out keys stay out), is a configuration Parse accepts.
func TestConfigDocExample(t *testing.T) {
	_, blocks := readConfigDoc(t)
	for i, b := range blocks {
		if _, err := Parse("/etc/svidgate/gateway.toml", []byte(b)); err != nil {
			t.Errorf("%s: example %d does not parse:\n%v", configDoc, i+1, err)
		}
	}
}
