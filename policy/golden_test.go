package policy

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected errors in testdata/*.toml")

const goldenSep = "----------\n"

// TestLoadErrors checks the errors for the defective policies in testdata.
// Each file is a policy, a "----------" line, and the exact error text.
func TestLoadErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(strings.TrimSuffix(name, ".toml"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(data), goldenSep)
			if !ok {
				t.Fatalf("%s has no %q line", file, strings.TrimSpace(goldenSep))
			}
			_, err = Parse(name, []byte(input))
			if err == nil {
				t.Fatalf("Parse(%s) succeeded; every file in testdata must be a defective policy", name)
			}
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(file, []byte(input+goldenSep+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("Parse(%s) error:\n%s\nwant:\n%s", name, got, want)
			}
			for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
				if !strings.HasPrefix(line, name+":") {
					t.Errorf("error line lacks the file:line:col prefix: %q", line)
				}
			}
		})
	}
}

// TestLoad covers reading a file.
func TestLoad(t *testing.T) {
	p, err := Load("testdata/ok/example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Rules() == 0 {
		t.Error("example policy has no rules")
	}
	_, err = Load("testdata/does-not-exist.toml")
	if err == nil || !strings.HasPrefix(err.Error(), "policy: ") {
		t.Errorf("Load of a missing file: %v", err)
	}
	_, err = Load("testdata/duplicate-id.toml")
	if err == nil || !strings.HasPrefix(err.Error(), "testdata/duplicate-id.toml:") {
		t.Errorf("Load of a bad file: %v", err)
	}
}

// TestDocExamples parses every ```toml block of docs/POLICY.md, so the
// documentation cannot drift from the parser.
func TestDocExamples(t *testing.T) {
	data, err := os.ReadFile("../docs/POLICY.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(data), "```toml\n")[1:]
	if len(blocks) == 0 {
		t.Fatal("docs/POLICY.md has no ```toml blocks")
	}
	for i, b := range blocks {
		src, _, _ := strings.Cut(b, "```")
		if !strings.Contains(src, "version") {
			src = "version = 1\n" + src
		}
		if _, err := Parse("POLICY.md", []byte(src)); err != nil {
			t.Errorf("example %d in docs/POLICY.md does not parse:\n%v\n%s", i+1, err, src)
		}
	}
}
