package config

import (
	"bytes"
	"strings"

	"github.com/BurntSushi/toml"
)

// locator finds where a key is written, so that errors found after decoding
// can still name line and column. It understands the subset of TOML that
// gateway.toml uses: [table] and [[array]] headers and key = value lines.
type locator struct {
	lines [][]byte
}

func newLocator(data []byte) *locator {
	return &locator{lines: bytes.Split(data, []byte("\n"))}
}

// find returns the position of the first place key is written, in any
// element of an array of tables.
func (l *locator) find(key toml.Key) (line, col int) {
	return l.findIndexed(key, -1, false)
}

// findIndexed returns the position of key inside the index-th table named
// by key's prefix (-1: any); the column is the value's when value is set,
// else the key's. An empty last piece asks for the table header. Unknown
// positions fall back to the header, then to 1:1.
func (l *locator) findIndexed(key []string, index int, value bool) (line, col int) {
	if len(key) == 0 {
		return 1, 1
	}
	table := strings.Join(key[:len(key)-1], ".")
	name := key[len(key)-1]
	current, seen := "", map[string]int{}
	headerLine, headerCol := 0, 0
	for i, raw := range l.lines {
		s := strings.TrimSpace(string(raw))
		indent := len(raw) - len(bytes.TrimLeft(raw, " \t"))
		if strings.HasPrefix(s, "[") {
			h := strings.Trim(strings.SplitN(s, "#", 2)[0], "[] \t")
			current = h
			n := seen[h]
			seen[h] = n + 1
			if h == table && (index < 0 || n == index) && headerLine == 0 {
				headerLine, headerCol = i+1, indent+1
				if name == "" {
					return headerLine, headerCol
				}
			}
			continue
		}
		if current != table || (index >= 0 && seen[current]-1 != index) || name == "" {
			continue
		}
		if k, v, ok := strings.Cut(s, "="); ok && strings.Trim(strings.TrimSpace(k), `"'`) == name {
			if value {
				// Point inside a quoted value, as the TOML decoder does.
				v = strings.TrimLeft(v, " \t")
				col := indent + len(k) + 1 + (len(s) - len(k) - 1 - len(v)) + 1
				if strings.HasPrefix(v, `"`) || strings.HasPrefix(v, "'") {
					col++
				}
				return i + 1, col
			}
			return i + 1, indent + 1
		}
	}
	if headerLine > 0 {
		return headerLine, headerCol
	}
	return 1, 1
}
