package policy

import (
	"sort"
	"strconv"
	"strings"
)

// locator finds where keys and values are written in a TOML document that
// has already been parsed successfully by BurntSushi/toml.
//
// The decoder's own position data is keyed by dotted key path, so every
// [[rule]] table shares the position of the last one, and it only surfaces
// through the first decode error. The policy checker needs the position of
// any key in any rule, so locator scans the text once and records, for every
// path such as "rule[2].callers[1]", the offset of the key (or of the table
// header, or of the array element) and of its value.
//
// The scanner is lenient: it assumes valid TOML and never fails. Whatever it
// cannot follow simply has no position, and callers fall back to a parent's.
type locator struct {
	src   string
	i     int
	keys  map[string]int // path → offset of the key, table header or array element
	vals  map[string]int // path → offset of the value
	aot   map[string]int // array-of-tables path → index of its last element
	lines []int          // offsets at which lines start
}

// pos is a position in the policy file: 1-based line and 1-based byte column.
type pos struct{ line, col int }

func locate(src string) *locator {
	l := &locator{
		src:  src,
		keys: make(map[string]int),
		vals: make(map[string]int),
		aot:  make(map[string]int),
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

// keyPos returns the position of path's key, or of its nearest ancestor's.
func (l *locator) keyPos(path string) pos { return l.lookup(l.keys, path) }

// valPos returns the position of path's value, or failing that of its key.
func (l *locator) valPos(path string) pos {
	if off, ok := l.vals[path]; ok {
		return l.pos(off)
	}
	return l.keyPos(path)
}

func (l *locator) lookup(m map[string]int, path string) pos {
	for path != "" {
		if off, ok := m[path]; ok {
			return l.pos(off)
		}
		path = parentPath(path)
	}
	return pos{1, 1}
}

func (l *locator) pos(off int) pos {
	line := sort.Search(len(l.lines), func(i int) bool { return l.lines[i] > off })
	return pos{line: line, col: off - l.lines[line-1] + 1}
}

// parentPath strips the last component from "a.b[3]" style paths.
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func indexPath(parent string, n int) string {
	return parent + "[" + strconv.Itoa(n) + "]"
}

func (l *locator) eof() bool  { return l.i >= len(l.src) }
func (l *locator) peek() byte { return l.src[l.i] }

func (l *locator) document() {
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
func (l *locator) header() string {
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
		path = joinPath(path, name)
		if n == len(names)-1 && array {
			idx := 0
			if last, ok := l.aot[path]; ok {
				idx = last + 1
			}
			l.aot[path] = idx
			l.setKey(path, start)
			path = indexPath(path, idx)
		} else if last, ok := l.aot[path]; ok {
			path = indexPath(path, last)
		}
		l.setKey(path, start)
	}
	return path
}

// keyValue reads "a.b = value" inside table.
func (l *locator) keyValue(table string) {
	path := table
	start := l.i
	for _, name := range l.key() {
		path = joinPath(path, name)
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

func (l *locator) setKey(path string, off int) {
	if _, ok := l.keys[path]; !ok {
		l.keys[path] = off
	}
}

// key reads a possibly dotted, possibly quoted key.
func (l *locator) key() []string {
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

func (l *locator) value(path string) {
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
			elem := indexPath(path, n)
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
func (l *locator) basicString() string {
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
func (l *locator) literalString() string {
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
func (l *locator) multiline(delim string, escapes bool) {
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

func (l *locator) skipSpace() {
	for !l.eof() && (l.peek() == ' ' || l.peek() == '\t' || l.peek() == '\r') {
		l.i++
	}
}

// skipSpaceNewlines skips white space, newlines and comments.
func (l *locator) skipSpaceNewlines() {
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

func (l *locator) skipComment() {
	if end := strings.IndexByte(l.src[l.i:], '\n'); end >= 0 {
		l.i += end
	} else {
		l.i = len(l.src)
	}
}

// skipLine skips the rest of a line after a header or key/value pair.
func (l *locator) skipLine() {
	l.skipSpace()
	if !l.eof() && l.peek() == '#' {
		l.skipComment()
	}
}
