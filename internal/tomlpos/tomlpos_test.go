package tomlpos

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
	l := Locate(src)
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
		var got Pos
		if tt.val {
			got = l.Value(tt.path)
		} else {
			got = l.Key(tt.path)
		}
		if got != (Pos{tt.line, tt.col}) {
			t.Errorf("position of %s (value %v) = %d:%d, want %d:%d", tt.path, tt.val, got.Line, got.Col, tt.line, tt.col)
		}
	}
}

func TestInner(t *testing.T) {
	src := "a = \"x\"\nb = 'y'\nc = \"\"\"z\"\"\"\nd = 1\n[t]\n"
	l := Locate(src)
	for path, want := range map[string]Pos{
		"a":   {1, 6},
		"b":   {2, 6},
		"c":   {3, 8},
		"d":   {4, 5},
		"t":   {5, 1},
		"t.e": {5, 1}, // no value: falls back to the key's parent
	} {
		if got := l.Inner(path); got != want {
			t.Errorf("Inner(%q) = %d:%d, want %d:%d", path, got.Line, got.Col, want.Line, want.Col)
		}
	}
}

func TestFirst(t *testing.T) {
	src := "top = 1\n" + // 1
		"[[l]]\n" + // 2
		"a = 1\n" + // 3
		"[[l]]\n" + // 4
		"b = [ { c = 1 }, { d = 2 } ]\n" + // 5
		"a = 2\n" + // 6
		"[[l.n]]\n" + // 7
		"e = 3\n" // 8
	l := Locate(src)
	tests := []struct {
		path, want string
		key        Pos
	}{
		{"top", "top", Pos{1, 1}},
		{"l", "l", Pos{2, 1}},
		{"l.a", "l[0].a", Pos{3, 1}},
		{"l.b", "l[1].b", Pos{5, 1}},
		{"l.b.d", "l[1].b[1].d", Pos{5, 20}},
		{"l.n.e", "l[1].n[0].e", Pos{8, 1}},
		{"l.x", "l.x", Pos{2, 1}},            // unknown: the first [[l]]
		{"l.b.x", "l[1].b.x", Pos{5, 1}},     // unknown: the key's parent
		{"l.n.x.y", "l[1].n.x.y", Pos{7, 1}}, // unknown: the nearest ancestor
		{"nothing.at.all", "nothing.at.all", Pos{1, 1}},
	}
	for _, tt := range tests {
		got := l.First(tt.path)
		if got != tt.want {
			t.Errorf("First(%q) = %q, want %q", tt.path, got, tt.want)
		}
		if p := l.Key(got); p != tt.key {
			t.Errorf("Key(First(%q)) = %d:%d, want %d:%d", tt.path, p.Line, p.Col, tt.key.Line, tt.key.Col)
		}
	}
}
