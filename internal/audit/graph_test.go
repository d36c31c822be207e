package audit

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func graphOf(rs ...Record) *Graph {
	g := NewGraph(0)
	g.AddAll(rs)
	return g
}

func TestGraphCountsEdges(t *testing.T) {
	web, shop, orders := "spiffe://example.org/web", "spiffe://example.org/shop", "spiffe://example.org/orders"
	rec := func(from, to, result string, status int) Record {
		return Record{Source: Source{SPIFFEID: from}, Destination: Destination{SPIFFEID: to}, Decision: Decision{Result: result}, Status: status, Listener: "in"}
	}
	g := graphOf(
		rec(web, shop, ResultAllow, 200), rec(web, shop, ResultDeny, 403), rec(web, shop, ResultLimited, 429),
		rec(shop, orders, ResultAllow, 502), rec("", orders, ResultDeny, 403),
		Record{TLS: TLS{PresentedSPIFFEID: "spiffe://evil.org/x", Reason: "unknown authority"}, Listener: "in", Decision: Decision{Result: ResultDeny}},
	)
	got := g.Edges()
	want := []Edge{
		{From: "spiffe://evil.org/x", To: "listener:in", Requests: 1, Denied: 1},
		{From: shop, To: orders, Requests: 1, Errors: 1},
		{From: web, To: shop, Requests: 3, Denied: 1, Limited: 1},
		{From: Unauthenticated, To: orders, Requests: 1, Denied: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("edges %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("edge %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestGraphIsBounded(t *testing.T) {
	g := NewGraph(10)
	for i := range 100 {
		g.Add(&Record{Source: Source{SPIFFEID: "spiffe://example.org/w" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)}})
	}
	e := g.Edges()
	if len(e) != 11 || e[0].From != OtherEdges || e[0].Requests != 90 {
		t.Fatalf("%d edges, first %+v", len(e), e[0])
	}
}

func demoEdges() []Edge {
	return []Edge{
		{From: "spiffe://example.org/web", To: "spiffe://example.org/orders", Requests: 120, Denied: 3},
		{From: "spiffe://example.org/orders", To: "spiffe://example.org/db", Requests: 40, Errors: 2},
		{From: "spiffe://example.org/db", To: "spiffe://example.org/web", Requests: 1},        // a cycle
		{From: "spiffe://example.org/orders", To: "spiffe://example.org/orders", Requests: 2}, // a loop
		{From: Unauthenticated, To: "spiffe://example.org/orders", Requests: 5, Denied: 5},
		{From: "spiffe://example.org/a&b<c>", To: "spiffe://example.org/db", Requests: 1},
	}
}

func TestGraphFormats(t *testing.T) {
	var dot, mer, js bytes.Buffer
	if err := WriteDOT(&dot, demoEdges()); err != nil {
		t.Fatal(err)
	}
	if err := WriteMermaid(&mer, demoEdges()); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&js, demoEdges()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"spiffe://example.org/web" -> "spiffe://example.org/orders" [label="120 req, 3 denied", color=red]`, "digraph svidgate"} {
		if !strings.Contains(dot.String(), want) {
			t.Errorf("dot lacks %q:\n%s", want, dot.String())
		}
	}
	if !strings.Contains(mer.String(), `-->|"40 req, 2 errors"|`) || !strings.HasPrefix(mer.String(), "flowchart LR") {
		t.Errorf("mermaid:\n%s", mer.String())
	}
	var doc struct {
		Nodes []string
		Edges []Edge
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil || len(doc.Nodes) != 5 || len(doc.Edges) != 6 {
		t.Errorf("json: %v %+v", err, doc)
	}
}

// The SVG is well-formed XML and names every workload.
func TestWriteSVG(t *testing.T) {
	for name, edges := range map[string][]Edge{"demo": demoEdges(), "empty": nil} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteSVG(&b, edges, "svidgate <test>", time.Now()); err != nil {
				t.Fatal(err)
			}
			dec := xml.NewDecoder(bytes.NewReader(b.Bytes()))
			var texts []string
			for {
				tok, err := dec.Token()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("not XML: %v\n%s", err, b.String())
				}
				if cd, ok := tok.(xml.CharData); ok {
					texts = append(texts, string(cd))
				}
			}
			all := strings.Join(texts, "\n")
			for _, n := range Nodes(edges) {
				if !strings.Contains(all, n) {
					t.Errorf("SVG does not name %q", n)
				}
			}
			if !strings.HasPrefix(b.String(), "<svg ") {
				t.Error("not an svg document")
			}
		})
	}
}

func TestMatchGlob(t *testing.T) {
	tests := []struct {
		p, s string
		ok   bool
	}{
		{"spiffe://example.org/web", "spiffe://example.org/web", true},
		{"spiffe://example.org/*", "spiffe://example.org/web", true},
		{"spiffe://example.org/*", "spiffe://example.org/ns/web", false},
		{"spiffe://example.org/**", "spiffe://example.org/ns/web", true},
		{"spiffe://example.org/ns/*/sa/web", "spiffe://example.org/ns/a/sa/web", true},
		{"spiffe://example.org/ns/*/sa/web", "spiffe://example.org/ns/a/b/sa/web", false},
		{"**/x/*", "a/x/b/x/c", true},
		{"spiffe://*.org/w?b", "spiffe://example.org/web", true},
		{"spiffe://example.org/w?b", "spiffe://example.org/w/b", false},
		{"*", "", true},
		{"", "x", false},
	}
	for _, tt := range tests {
		if got := MatchGlob(tt.p, tt.s); got != tt.ok {
			t.Errorf("MatchGlob(%q, %q) = %v", tt.p, tt.s, got)
		}
	}
}

func TestFilter(t *testing.T) {
	r := sample(1)
	since := r.Time.Add(-time.Second)
	for _, tt := range []struct {
		f  Filter
		ok bool
	}{
		{Filter{}, true},
		{Filter{Caller: "spiffe://example.org/ns/*/sa/checkout"}, true},
		{Filter{Caller: "spiffe://example.org/ns/web/**"}, false},
		{Filter{Rule: "web-reads-orders", Decision: ResultAllow, Since: since}, true},
		{Filter{Decision: ResultDeny}, false},
		{Filter{Since: r.Time.Add(time.Second)}, false},
	} {
		if got := tt.f.Match(&r); got != tt.ok {
			t.Errorf("%+v: %v", tt.f, got)
		}
	}
}
