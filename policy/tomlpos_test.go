package policy

import "testing"

func TestLocator(t *testing.T) {
	src := "\ufeffversion = 1 # c\r\n" + // 1
		"a.b = { c = 1, d = [ 2, { e = 3 } ] }\n" + // 2
		"\"quoted key\" = 'x'\n" + // 3
		"[[rule]]\n" + // 4
		"id = \"\"\"\n[[rule]]\n\"\"\"\n" + // 5-7
		"[ rule . sub ]\n" + // 8
		"k = \"v\\\"]\"\n" + // 9
		"[[rule]]\n" + // 10
		"  list = [\n    1, # one\n    [ 'a', \"b\" ],\n  ]\n" + // 11-14
		"[[rule.nest]]\n" + // 15
		"x = 1979-05-27 07:32:00\n" // 16
	l := locate(src)
	tests := []struct {
		path string
		val  bool
		line int
		col  int
	}{
		{"version", false, 1, 4},
		{"version", true, 1, 14},
		{"a", false, 2, 1},
		{"a.b", true, 2, 7},
		{"a.b.c", false, 2, 9},
		{"a.b.d[1].e", false, 2, 27},
		{"a.b.d[1].e", true, 2, 31},
		{"quoted key", false, 3, 1},
		{"rule[0]", false, 4, 1},
		{"rule[0].id", true, 5, 6},
		{"rule[0].sub", false, 8, 1},
		{"rule[0].sub.k", true, 9, 5},
		{"rule[1]", false, 10, 1},
		{"rule[1].list", false, 11, 3},
		{"rule[1].list[0]", false, 12, 5},
		{"rule[1].list[1][1]", false, 13, 12},
		{"rule[1].nest[0]", false, 15, 1},
		{"rule[1].nest[0].x", true, 16, 5},
		{"rule[1].nest[0].missing", false, 15, 1}, // falls back to the parent
		{"nothing", false, 1, 1},
	}
	// The BOM is three bytes; columns on line 1 count it.
	for _, tt := range tests {
		var got pos
		if tt.val {
			got = l.valPos(tt.path)
		} else {
			got = l.keyPos(tt.path)
		}
		if got != (pos{tt.line, tt.col}) {
			t.Errorf("position of %s (value %v) = %d:%d, want %d:%d", tt.path, tt.val, got.line, got.col, tt.line, tt.col)
		}
	}
}
