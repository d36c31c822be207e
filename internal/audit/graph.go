package audit

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// Node names used by the graph for callers and destinations the record
// does not name.
const (
	Unauthenticated = "unauthenticated" // a caller without a verified SPIFFE ID
	OtherEdges      = "_other"          // edges folded once the graph is full
)

// Edge is one caller → destination pair of the service graph with its
// counts.
type Edge struct {
	From     string    `json:"from"`
	To       string    `json:"to"`
	Requests uint64    `json:"requests"`
	Denied   uint64    `json:"denied"`
	Limited  uint64    `json:"limited"`
	Errors   uint64    `json:"errors"` // upstream errors and 5xx answers
	Last     time.Time `json:"last"`
}

// EdgeOf names the two ends of r in the service graph: the caller's
// SPIFFE ID (for a refused handshake the presented one, else
// Unauthenticated) and the destination's (Destination.SPIFFEID, else the
// upstream's required ID, else "listener:" and the listener's name).
func EdgeOf(r *Record) (from, to string) {
	from = r.Source.SPIFFEID
	if from == "" {
		from = r.TLS.PresentedSPIFFEID
	}
	if from == "" {
		from = Unauthenticated
	}
	to = r.Destination.SPIFFEID
	if to == "" {
		to = r.Upstream.SPIFFEID
	}
	if to == "" {
		to = "listener:" + r.Listener
	}
	return from, to
}

type edgeKey struct{ from, to string }

// Graph aggregates records into a service graph of bounded size. It is
// safe for concurrent use; the writer feeds it (Options.Graph) and the
// admin listener reads it.
type Graph struct {
	mu    sync.Mutex
	max   int
	edges map[edgeKey]*Edge
	other Edge
}

// NewGraph returns a graph holding at most maxEdges edges (default 1000);
// records of further pairs are counted on one edge _other → _other.
func NewGraph(maxEdges int) *Graph {
	if maxEdges <= 0 {
		maxEdges = 1000
	}
	return &Graph{max: maxEdges, edges: map[edgeKey]*Edge{}, other: Edge{From: OtherEdges, To: OtherEdges}}
}

// Add counts one record.
func (g *Graph) Add(r *Record) {
	g.mu.Lock()
	g.add(r)
	g.mu.Unlock()
}

// AddAll counts records.
func (g *Graph) AddAll(rs []Record) {
	g.mu.Lock()
	for i := range rs {
		g.add(&rs[i])
	}
	g.mu.Unlock()
}

func (g *Graph) add(r *Record) {
	from, to := EdgeOf(r)
	e := g.edges[edgeKey{from, to}]
	if e == nil {
		if len(g.edges) >= g.max {
			e = &g.other
		} else {
			e = &Edge{From: from, To: to}
			g.edges[edgeKey{from, to}] = e
		}
	}
	e.Requests++
	switch r.Decision.Result {
	case ResultDeny:
		e.Denied++
	case ResultLimited:
		e.Limited++
	}
	if r.Upstream.Error != "" || r.Status >= 500 {
		e.Errors++
	}
	if r.Time.After(e.Last) {
		e.Last = r.Time
	}
}

// Edges returns a copy of the graph's edges, sorted by caller and then
// destination.
func (g *Graph) Edges() []Edge {
	g.mu.Lock()
	out := make([]Edge, 0, len(g.edges)+1)
	for _, e := range g.edges {
		out = append(out, *e)
	}
	if g.other.Requests > 0 {
		out = append(out, g.other)
	}
	g.mu.Unlock()
	slices.SortFunc(out, func(a, b Edge) int {
		return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To))
	})
	return out
}

// Nodes returns the distinct node names of edges, sorted.
func Nodes(edges []Edge) []string {
	var ns []string
	for _, e := range edges {
		ns = append(ns, e.From, e.To)
	}
	slices.Sort(ns)
	return slices.Compact(ns)
}

func edgeLabel(e Edge) string {
	s := fmt.Sprintf("%d req", e.Requests)
	if e.Denied > 0 {
		s += fmt.Sprintf(", %d denied", e.Denied)
	}
	if e.Limited > 0 {
		s += fmt.Sprintf(", %d limited", e.Limited)
	}
	if e.Errors > 0 {
		s += fmt.Sprintf(", %d errors", e.Errors)
	}
	return s
}

// WriteDOT writes edges as a Graphviz digraph.
func WriteDOT(w io.Writer, edges []Edge) error {
	var b strings.Builder
	b.WriteString("digraph svidgate {\n  rankdir=LR;\n  node [shape=box, fontname=\"sans-serif\"];\n")
	for _, n := range Nodes(edges) {
		fmt.Fprintf(&b, "  %s;\n", dotQuote(n))
	}
	for _, e := range edges {
		color := "gray40"
		if e.Denied > 0 {
			color = "red"
		}
		fmt.Fprintf(&b, "  %s -> %s [label=%s, color=%s];\n", dotQuote(e.From), dotQuote(e.To), dotQuote(edgeLabel(e)), color)
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func dotQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// WriteMermaid writes edges as a Mermaid flowchart.
func WriteMermaid(w io.Writer, edges []Edge) error {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	ids := map[string]string{}
	for i, n := range Nodes(edges) {
		ids[n] = fmt.Sprintf("n%d", i)
		fmt.Fprintf(&b, "  n%d[\"%s\"]\n", i, mermaidText(n))
	}
	for _, e := range edges {
		fmt.Fprintf(&b, "  %s -->|\"%s\"| %s\n", ids[e.From], mermaidText(edgeLabel(e)), ids[e.To])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mermaidText escapes text for a quoted Mermaid label.
func mermaidText(s string) string {
	return strings.NewReplacer(`"`, "#quot;", "\n", " ").Replace(s)
}

// WriteJSON writes edges as one JSON document {"nodes": [...], "edges": [...]}.
func WriteJSON(w io.Writer, edges []Edge) error {
	if edges == nil {
		edges = []Edge{}
	}
	nodes := Nodes(edges)
	if nodes == nil {
		nodes = []string{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Nodes []string `json:"nodes"`
		Edges []Edge   `json:"edges"`
	}{nodes, edges})
}
