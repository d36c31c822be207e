package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svidgate/svidgate/policy"
)

func TestPolicySuggestAllowsWhatWasSeenOnly(t *testing.T) {
	reqs := demoTraffic()
	for i := range 5 {
		reqs = append(reqs, traffic{web, "GET", fmt.Sprintf("/orders/%d/items", 100+i), "", "allow", "web-reads"})
	}
	for _, sa := range []string{"a", "b", "c", "d"} {
		reqs = append(reqs, traffic{"spiffe://example.org/ns/jobs/sa/" + sa, "GET", "/healthz", "", "allow", "health"})
	}
	reqs = append(reqs,
		traffic{batch, "POST", "/shop.v1.Orders/Create", "/shop.v1.Orders/Create", "allow", "grpc"},
		traffic{batch, "POST", "/shop.v1.Orders/Get", "/shop.v1.Orders/Get", "allow", "grpc"},
		traffic{"spiffe://example.org/ns/evil/sa/x", "GET", "/admin", "", "deny", ""},
	)
	dir := t.TempDir()
	file := filepath.Join(dir, "audit.jsonl")
	writeAuditTrail(t, file, reqs)
	out := filepath.Join(dir, "suggested.toml")
	code, _, errOut := run("policy", "suggest", file, "-o", out)
	if code != 0 {
		t.Fatalf("suggest: %d %s", code, errOut)
	}
	doc, _ := os.ReadFile(out)
	t.Logf("%s\n%s", doc, errOut)
	p, err := policy.Parse(out, doc)
	if err != nil {
		t.Fatalf("the suggestion does not load: %v\n%s", err, doc)
	}
	for _, q := range reqs {
		in := policy.Input{Caller: q.caller, Method: q.method, Path: q.path, GRPC: q.grpc != ""}
		want := policy.Allow
		if q.result == "deny" {
			want = policy.Deny
		}
		if d := p.Decide(in); d.Result != want {
			t.Errorf("%+v: %v by %q, want %v", in, d.Result, d.Rule, want)
		}
	}
	for _, in := range []policy.Input{
		{Caller: web, Method: "POST", Path: "/orders"},                                          // a method web never used
		{Caller: web, Method: "GET", Path: "/reports/daily"},                                    // batch's path, not web's
		{Caller: "spiffe://example.org/ns/other/sa/frontend", Method: "GET", Path: "/orders/1"}, // an unseen caller
		{Caller: batch, Method: "POST", Path: "/shop.v1.Admin/Drop", GRPC: true},                // an unseen gRPC service
		{Caller: web, Method: "GET", Path: "/orders/1/secrets"},                                 // deeper than seen
	} {
		if d := p.Decide(in); d.Result != policy.Deny {
			t.Errorf("%+v: allowed by %q, but it never happened", in, d.Rule)
		}
	}
	// Collapsing: numeric ids and four service accounts became globs.
	for _, want := range []string{`"/orders/*"`, `"/orders/*/items"`, `"spiffe://example.org/ns/jobs/sa/*"`} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("suggestion lacks %s", want)
		}
	}
	if !strings.Contains(errOut, "2 denied") {
		t.Errorf("summary %q", errOut)
	}

	// -include-denied also allows what no rule matched.
	code, stdout, _ := run("policy", "suggest", "-include-denied", file)
	p2, err := policy.Parse("x.toml", []byte(stdout))
	if code != 0 || err != nil {
		t.Fatalf("%d %v", code, err)
	}
	if d := p2.Decide(policy.Input{Caller: "spiffe://example.org/ns/evil/sa/x", Method: "GET", Path: "/admin"}); d.Result != policy.Allow {
		t.Error("-include-denied did not allow the denied request")
	}
}

func TestSegTrieCollapse(t *testing.T) {
	tests := []struct {
		paths []string
		want  string
	}{
		{[]string{"/a/1", "/a/2"}, "/a/*"},
		{[]string{"/a/x", "/a/y"}, "/a/x /a/y"},
		{[]string{"/a/x", "/a/y", "/a/z"}, "/a/*"},
		{[]string{"/x", "/y", "/z"}, "/x /y /z"},
		{[]string{"/a/1/b", "/a/2/c", "/a/3"}, "/a/* /a/*/b /a/*/c"},
		{[]string{"/", "/a/", "/a/1", "/a/2"}, "/ /a/ /a/*"},
	}
	for _, tt := range tests {
		tr := &segTrie{}
		for _, p := range tt.paths {
			tr.insert(strings.Split(p[1:], "/"))
		}
		tr.collapse(3, 0)
		var got []string
		tr.patterns("", &got)
		if strings.Join(got, " ") != tt.want {
			t.Errorf("%v → %v, want %s", tt.paths, got, tt.want)
		}
	}
}
