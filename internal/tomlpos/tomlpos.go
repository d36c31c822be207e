package tomlpos

import (
	"sort"
	"strconv"
	"strings"
)

// Locator holds the positions of one document's keys and values.
//
// The scanner is lenient: it assumes valid TOML and never fails. Whatever it
// cannot follow simply has no position, and lookups fall back to a parent's.
type Locator struct {
	src   string
	i     int
	keys  map[string]int    // path → offset of the key, table header or array element
	vals  map[string]int    // path → offset of the value
	first map[string]string // path without indexes → first path with indexes
	aot   map[string]int    // array-of-tables path → index of its last element
	lines []int             // offsets at which lines start
}

// Pos is a position in the document: 1-based line and 1-based byte column.
// A byte order mark at the start counts towards the columns of line 1.
type Pos struct{ Line, Col int }

// Locate scans src, which must be TOML that has been decoded successfully.
func Locate(src string) *Locator {
	l := &Locator{
		src:   src,
		keys:  make(map[string]int),
		vals:  make(map[string]int),
		first: make(map[string]string),
		aot:   make(map[string]int),
	}
	l.lines = append(l.lines, 0)
	for i := 0; i < len(src); i++ {
		if src[i] == '\n' {
			l.lines = append(l.lines, i+1)
		}
	}
	if strings.HasPrefix(src, "\ufeff") {
		l.i = len("\ufeff")
	}
	l.document()
	return l
}

// Key returns the position of path's key, table header or array element,
// or of its nearest ancestor's; 1:1 if none is written.
func (l *Locator) Key(path string) Pos { return l.lookup(l.keys, path) }

// Value returns the position of path's value, or failing that of its key.
// For a string the position is that of its opening quote.
func (l *Locator) Value(path string) Pos {
	if off, ok := l.vals[path]; ok {
		return l.pos(off)
	}
	return l.Key(path)
}

// Inner is like Value, except that for a quoted string value it returns the
// position just inside the opening quotes, where the decoder places its own
// positions of string values.
func (l *Locator) Inner(path string) Pos {
	off, ok := l.vals[path]
	if !ok {
		return l.Key(path)
	}
	switch rest := l.src[off:]; {
	case strings.HasPrefix(rest, `"""`), strings.HasPrefix(rest, "'''"):
		off += 3
	case strings.HasPrefix(rest, `"`), strings.HasPrefix(rest, "'"):
		off++
	}
	return l.pos(off)
}

// First resolves a path written without indexes, such as the keys that
// BurntSushi/toml reports (["listener", "address"] is "listener.address"),
// to the path of its first occurrence, such as "listener[0].address".
// If path occurs nowhere, its nearest ancestor that does is resolved and the
// rest of path is kept, so that Key and Value fall back to that ancestor.
func (l *Locator) First(path string) string {
	if path == "" {
		return ""
	}
	if p, ok := l.first[path]; ok {
		return p
	}
	parent := parentPath(path)
	if parent == "" {
		return path
	}
	return l.First(parent) + path[len(parent):]
}

func (l *Locator) lookup(m map[string]int, path string) Pos {
	for path != "" {
		if off, ok := m[path]; ok {
			return l.pos(off)
		}
		path = parentPath(path)
	}
	return Pos{1, 1}
}

func (l *Locator) pos(off int) Pos {
	line := sort.Search(len(l.lines), func(i int) bool { return l.lines[i] > off })
	return Pos{Line: line, Col: off - l.lines[line-1] + 1}
}

// parentPath strips the last component from "a.b[3]" style paths.
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// stripIndexes removes every "[n]" from path.
func stripIndexes(path string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(path, '[')
		if i < 0 {
			break
		}
		j := strings.IndexByte(path[i:], ']')
		if j < 0 {
			break
		}
		b.WriteString(path[:i])
		path = path[i+j+1:]
	}
	if b.Len() == 0 {
		return path
	}
	b.WriteString(path)
	return b.String()
}

// Join returns the path of key inside the table or inline table at parent
// ("" for the root table).
func Join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// Index returns the path of the n-th element (from 0) of the array or array
// of tables at parent.
func Index(parent string, n int) string {
	return parent + "[" + strconv.Itoa(n) + "]"
}

func (l *Locator) eof() bool  { return l.i >= len(l.src) }
func (l *Locator) peek() byte { return l.src[l.i] }

func (l *Locator) document() {
	table := ""
	for {
		l.skipSpaceNewlines()
		if l.eof() {
			return
		}
		start := l.i
		if l.peek() == '[' {
			table = l.header()
		} else {
			l.keyValue(table)
		}
		l.skipLine()
		if l.i == start {
			l.i++ // never loop without progress
		}
	}
}

// header reads "[a.b]" or "[[a.b]]" and returns the resolved table path.
func (l *Locator) header() string {
	start := l.i
	array := strings.HasPrefix(l.src[l.i:], "[[")
	if array {
		l.i += 2
	} else {
		l.i++
	}
	names := l.key()
	l.skipSpace()
	for n := 0; n < 2 && !l.eof() && l.peek() == ']'; n++ {
		l.i++
	}
	path := ""
	for n, name := range names {
		path = Join(path, name)
		if n == len(names)-1 && array {
			idx := 0
			if last, ok := l.aot[path]; ok {
				idx = last + 1
			}
			l.aot[path] = idx
			l.setKey(path, start)
			path = Index(path, idx)
		} else if last, ok := l.aot[path]; ok {
			path = Index(path, last)
		}
		l.setKey(path, start)
	}
	return path
}

// keyValue reads "a.b = value" inside table.
func (l *Locator) keyValue(table string) {
	path := table
	start := l.i
	for _, name := range l.key() {
		path = Join(path, name)
		l.setKey(path, start)
	}
	l.skipSpace()
	if l.eof() || l.peek() != '=' {
		return
	}
	l.i++
	l.skipSpace()
	l.value(path)
}

func (l *Locator) setKey(path string, off int) {
	if _, ok := l.keys[path]; !ok {
		l.keys[path] = off
	}
	if p := stripIndexes(path); l.first[p] == "" {
		l.first[p] = path
	}
}

// key reads a possibly dotted, possibly quoted key.
func (l *Locator) key() []string {
	var names []string
	for {
		l.skipSpace()
		if l.eof() {
			return names
		}
		switch l.peek() {
		case '"':
			raw := l.basicString()
			if s, err := strconv.Unquote(raw); err == nil {
				names = append(names, s)
			} else {
				names = append(names, strings.Trim(raw, `"`))
			}
		case '\'':
			names = append(names, strings.Trim(l.literalString(), "'"))
		default:
			start := l.i
			for !l.eof() && !strings.ContainsRune(" \t\r\n.=[]\"'#,{}", rune(l.peek())) {
				l.i++
			}
			if l.i == start {
				return names
			}
			names = append(names, l.src[start:l.i])
		}
		l.skipSpace()
		if l.eof() || l.peek() != '.' {
			return names
		}
		l.i++
	}
}

func (l *Locator) value(path string) {
	if l.eof() {
		return
	}
	l.vals[path] = l.i
	switch l.peek() {
	case '"':
		if strings.HasPrefix(l.src[l.i:], `"""`) {
			l.multiline(`"""`, true)
		} else {
			l.basicString()
		}
	case '\'':
		if strings.HasPrefix(l.src[l.i:], "'''") {
			l.multiline("'''", false)
		} else {
			l.literalString()
		}
	case '[':
		l.i++
		for n := 0; ; n++ {
			l.skipSpaceNewlines()
			if l.eof() {
				return
			}
			if l.peek() == ']' {
				l.i++
				return
			}
			start := l.i
			elem := Index(path, n)
			l.setKey(elem, start)
			l.value(elem)
			l.skipSpaceNewlines()
			if !l.eof() && l.peek() == ',' {
				l.i++
			}
			if l.i == start {
				l.i++
			}
		}
	case '{':
		l.i++
		for {
			l.skipSpaceNewlines()
			if l.eof() {
				return
			}
			switch l.peek() {
			case '}':
				l.i++
				return
			case ',':
				l.i++
				continue
			}
			start := l.i
			l.keyValue(path)
			if l.i == start {
				l.i++
			}
		}
	default:
		for !l.eof() && !strings.ContainsRune(",]}\n#", rune(l.peek())) {
			l.i++
		}
	}
}

// basicString reads "..." and returns it with its quotes.
func (l *Locator) basicString() string {
	start := l.i
	l.i++
	for !l.eof() {
		switch l.peek() {
		case '\\':
			l.i += 2
			continue
		case '"':
			l.i++
			return l.src[start:l.i]
		case '\n':
			return l.src[start:l.i]
		}
		l.i++
	}
	l.i = len(l.src)
	return l.src[start:]
}

// literalString reads '...' and returns it with its quotes.
func (l *Locator) literalString() string {
	start := l.i
	end := strings.IndexAny(l.src[l.i+1:], "'\n")
	if end < 0 {
		l.i = len(l.src)
		return l.src[start:]
	}
	l.i += end + 2
	return l.src[start:l.i]
}

// multiline skips a triple-quoted string, including up to two quotes that
// belong to the content just before the closing delimiter.
func (l *Locator) multiline(delim string, escapes bool) {
	l.i += 3
	for !l.eof() {
		if escapes && l.peek() == '\\' {
			l.i += 2
			continue
		}
		if strings.HasPrefix(l.src[l.i:], delim) {
			l.i += 3
			for n := 0; n < 2 && !l.eof() && l.peek() == delim[0]; n++ {
				l.i++
			}
			return
		}
		l.i++
	}
	l.i = len(l.src)
}

func (l *Locator) skipSpace() {
	for !l.eof() && (l.peek() == ' ' || l.peek() == '\t' || l.peek() == '\r') {
		l.i++
	}
}

// skipSpaceNewlines skips white space, newlines and comments.
func (l *Locator) skipSpaceNewlines() {
	for !l.eof() {
		switch l.peek() {
		case ' ', '\t', '\r', '\n':
			l.i++
		case '#':
			l.skipComment()
		default:
			return
		}
	}
}

func (l *Locator) skipComment() {
	if end := strings.IndexByte(l.src[l.i:], '\n'); end >= 0 {
		l.i += end
	} else {
		l.i = len(l.src)
	}
}

// skipLine skips the rest of a line after a header or key/value pair.
func (l *Locator) skipLine() {
	l.skipSpace()
	if !l.eof() && l.peek() == '#' {
		l.skipComment()
	}
}
