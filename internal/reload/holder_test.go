package reload

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/svidgate/svidgate/policy"
)

func rules(ids ...string) string {
	var b strings.Builder
	b.WriteString("version = 1\n")
	for _, id := range ids {
		b.WriteString("\n[[rule]]\nid = \"" + id + "\"\neffect = \"allow\"\ncallers = [\"spiffe://example.org/web\"]\n")
	}
	return b.String()
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls until the enforcing policy has n rules or a second passes.
func waitFor(t *testing.T, h *Holder, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if h.Policy().Rules() == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("policy has %d rules after 1 s, want %d (last reload: %+v)", h.Policy().Rules(), n, h.Last())
}

func TestReloadKeepsLastGoodPolicy(t *testing.T) {
	file := filepath.Join(t.TempDir(), "policy.toml")
	write(t, file, rules("a"))
	h, err := New(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	var results []error
	h.OnResult = func(p *policy.Policy, err error) {
		if p == nil {
			t.Error("OnResult got a nil policy")
		}
		results = append(results, err)
	}

	write(t, file, rules("a")+"\n[[rule]]\nid = \"broken\"\n")
	if err := h.Reload(); err == nil {
		t.Fatal("broken policy loaded")
	}
	if h.Policy().Rules() != 1 || h.Last().OK || !strings.Contains(h.Last().Error, "policy.toml:") {
		t.Fatalf("after a bad reload: %d rules, last %+v", h.Policy().Rules(), h.Last())
	}
	write(t, file, rules("a", "b"))
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	if h.Policy().Rules() != 2 || !h.Last().OK {
		t.Fatalf("after a good reload: %d rules, last %+v", h.Policy().Rules(), h.Last())
	}
	if len(results) != 2 || results[0] == nil || results[1] != nil {
		t.Errorf("OnResult saw %v, want [error, nil]", results)
	}
}

func TestWatchSeesEditsRenamesAndSymlinkSwaps(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.toml")
	write(t, file, rules("a"))
	h, err := New(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := h.Watch(ctx); err != nil {
		t.Fatal(err)
	}

	write(t, file, rules("a", "b")) // in place
	waitFor(t, h, 2)

	tmp := filepath.Join(dir, ".policy.tmp")
	write(t, tmp, rules("a", "b", "c")) // atomic rename
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	waitFor(t, h, 3)

	write(t, file, "version = 2\n") // broken: the old one stays
	time.Sleep(300 * time.Millisecond)
	if h.Policy().Rules() != 3 || h.Last().OK {
		t.Fatalf("broken file: %d rules, last %+v", h.Policy().Rules(), h.Last())
	}

	// A ConfigMap-style volume: the file is a symlink through ..data,
	// and an update swaps ..data to a new directory.
	cm := t.TempDir()
	for i, ids := range [][]string{{"x"}, {"x", "y", "z", "w"}} {
		d := filepath.Join(cm, "..v"+string(rune('1'+i)))
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(d, "policy.toml"), rules(ids...))
	}
	if err := os.Symlink("..v1", filepath.Join(cm, "..data")); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(cm, "policy.toml")
	if err := os.Symlink(filepath.Join("..data", "policy.toml"), link); err != nil {
		t.Fatal(err)
	}
	h2, err := New(link, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h2.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..v2", filepath.Join(cm, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(cm, "..data_tmp"), filepath.Join(cm, "..data")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, h2, 4)
}
