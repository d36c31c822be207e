package audit

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Layout constants of WriteSVG, in pixels.
const (
	svgCharW   = 7.3 // width of one character at the 12px monospace font
	svgBoxH    = 30.0
	svgBoxPadX = 14.0
	svgGapY    = 26.0
	svgGapX    = 200.0
	svgMargin  = 30.0
	svgTop     = 70.0
)

type svgNode struct {
	name       string
	rank, row  int
	x, y, w    float64
	order      float64
	calls, hit uint64 // requests made and received
}

// WriteSVG draws edges as a left-to-right layered graph (callers on the
// left, the workloads they call to their right), each edge labelled with
// its counts; edges with denials are red. The drawing is self-contained
// SVG, made without any external tool.
func WriteSVG(w io.Writer, edges []Edge, title string, now time.Time) error {
	g := newSVGGraph(edges)
	g.rank()
	cols := g.columns()
	width, height, bottom := g.place(cols)

	var b strings.Builder
	g.writeHeader(&b, title, now, width, height)
	g.writeEdges(&b, bottom)
	g.writeNodes(&b)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// svgGraph is the graph WriteSVG lays out: its nodes, in the order of
// Nodes, with their edges.
type svgGraph struct {
	edges []Edge
	nodes []*svgNode
	idx   map[string]int // node name → index in nodes
	back  []bool         // edges drawn against the flow (backEdges)
}

func newSVGGraph(edges []Edge) *svgGraph {
	names := Nodes(edges)
	g := &svgGraph{edges: edges, nodes: make([]*svgNode, len(names)), idx: make(map[string]int, len(names))}
	for i, n := range names {
		g.nodes[i] = &svgNode{name: n}
		g.idx[n] = i
	}
	for _, e := range edges {
		g.nodes[g.idx[e.From]].calls += e.Requests
		g.nodes[g.idx[e.To]].hit += e.Requests
	}
	g.back = backEdges(edges, g.idx, len(g.nodes))
	return g
}

// from and to return the nodes at the two ends of e.
func (g *svgGraph) from(e Edge) *svgNode { return g.nodes[g.idx[e.From]] }
func (g *svgGraph) to(e Edge) *svgNode   { return g.nodes[g.idx[e.To]] }

// rank puts each node in a column: the longest path from the callers,
// over the edges that are not back edges (those close a cycle and are
// drawn below the graph). Then it pulls each caller that nobody calls
// next to the first workload it calls, so that its edges do not cross
// the columns between.
func (g *svgGraph) rank() {
	for range g.nodes {
		changed := false
		for i, e := range g.edges {
			f, t := g.idx[e.From], g.idx[e.To]
			if f == t || g.back[i] {
				continue
			}
			if g.nodes[t].rank < g.nodes[f].rank+1 {
				g.nodes[t].rank = g.nodes[f].rank + 1
				changed = true
			}
		}
		if !changed {
			break
		}
	}
	called := make([]bool, len(g.nodes))
	for i, e := range g.edges {
		if !g.back[i] && e.From != e.To {
			called[g.idx[e.To]] = true
		}
	}
	for i, n := range g.nodes {
		if called[i] {
			continue
		}
		first := -1
		for j, e := range g.edges {
			if e.From == n.name && e.To != e.From && !g.back[j] {
				if r := g.to(e).rank - 1; first < 0 || r < first {
					first = r
				}
			}
		}
		n.rank = max(n.rank, first)
	}
}

// columns groups the nodes by rank and orders each column by the mean row
// of its callers, twice, so edges cross less.
func (g *svgGraph) columns() [][]*svgNode {
	ranks := 0
	for _, n := range g.nodes {
		ranks = max(ranks, n.rank+1)
	}
	cols := make([][]*svgNode, ranks)
	for _, n := range g.nodes {
		cols[n.rank] = append(cols[n.rank], n)
	}
	for pass := 0; pass < 2; pass++ {
		for c := range cols {
			for r, n := range cols[c] {
				n.row = r
			}
		}
		for c := 1; c < len(cols); c++ {
			for _, n := range cols[c] {
				sum, k := 0.0, 0
				for _, e := range g.edges {
					if e.To == n.name && g.from(e).rank < c {
						sum += float64(g.from(e).row)
						k++
					}
				}
				n.order = float64(n.row)
				if k > 0 {
					n.order = sum / float64(k)
				}
			}
			slices.SortStableFunc(cols[c], func(a, b *svgNode) int {
				return cmp.Or(cmp.Compare(a.order, b.order), cmp.Compare(a.name, b.name))
			})
		}
	}
	return cols
}

// place gives every node its box, each column centred vertically, and
// returns the size of the drawing and the bottom of the columns, below
// which edges against the flow are drawn.
func (g *svgGraph) place(cols [][]*svgNode) (width, height, bottom float64) {
	tallest := 0
	for _, col := range cols {
		tallest = max(tallest, len(col))
	}
	height = svgTop + float64(tallest)*(svgBoxH+svgGapY) + svgMargin
	x := svgMargin
	for _, col := range cols {
		colW := 0.0
		for _, n := range col {
			colW = max(colW, float64(len(n.name))*svgCharW+2*svgBoxPadX)
		}
		y0 := svgTop + (float64(tallest-len(col))*(svgBoxH+svgGapY))/2
		for r, n := range col {
			n.row = r
			n.x, n.w = x, colW
			n.y = y0 + float64(r)*(svgBoxH+svgGapY)
		}
		x += colW + svgGapX
	}
	width = max(x-svgGapX+svgMargin+70, 520) // room for self-loops on the right
	bottom = height
	for i, e := range g.edges {
		if g.back[i] || (e.From != e.To && g.from(e).rank >= g.to(e).rank) {
			height += 70
			break
		}
	}
	return width, height, bottom
}

// writeHeader writes the svg element, the arrow markers, the background
// and the title with the graph's totals.
func (g *svgGraph) writeHeader(b *strings.Builder, title string, now time.Time, width, height float64) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="ui-monospace, Menlo, Consolas, monospace" font-size="12">`+"\n", width, height, width, height)
	b.WriteString(`<defs>` +
		`<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="10" markerHeight="10" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#556"/></marker>` +
		`<marker id="arrow-deny" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="10" markerHeight="10" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#c0392b"/></marker>` +
		"</defs>\n")
	fmt.Fprintf(b, `<rect width="100%%" height="100%%" fill="#fcfcfd"/>`+"\n")
	var total, denied uint64
	for _, e := range g.edges {
		total += e.Requests
		denied += e.Denied
	}
	fmt.Fprintf(b, `<text x="%.0f" y="28" font-size="16" font-weight="bold">%s</text>`+"\n", svgMargin, xmlText(title))
	fmt.Fprintf(b, `<text x="%.0f" y="48" fill="#555">%d workloads, %d edges, %d requests, %d denied — drawn %s</text>`+"\n",
		svgMargin, len(g.nodes), len(g.edges), total, denied, now.UTC().Format(time.RFC3339))
	if len(g.edges) == 0 {
		fmt.Fprintf(b, `<text x="%.0f" y="%.0f" fill="#888">no requests audited yet</text>`+"\n", svgMargin, svgTop+20)
	}
}

// writeEdges draws every edge with its label: red where it had denials,
// dashed where it had errors, thicker the more requests it carried.
func (g *svgGraph) writeEdges(b *strings.Builder, bottom float64) {
	for i, e := range g.edges {
		color, marker := "#556", "arrow"
		if e.Denied > 0 {
			color, marker = "#c0392b", "arrow-deny"
		}
		sw := 1 + math.Min(5, math.Log2(float64(e.Requests)+1)/2)
		dash := ""
		if e.Errors > 0 {
			dash = ` stroke-dasharray="6 3"`
		}
		d, lx, ly := g.edgePath(i, bottom)
		fmt.Fprintf(b, `<g class="edge"><title>%s → %s: %s</title><path d="%s" fill="none" stroke="%s" stroke-width="%.1f"%s marker-end="url(#%s)"/>`,
			xmlText(e.From), xmlText(e.To), xmlText(edgeLabel(e)), d, color, sw, dash, marker)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="%s" font-size="11" paint-order="stroke" stroke="#fcfcfd" stroke-width="3">%s</text></g>`+"\n",
			lx, ly, color, xmlText(edgeLabel(e)))
	}
}

// edgePath returns the path of edge i and where its label goes: a loop
// above the box for a workload calling itself, a curve below the graph
// for an edge against the flow, else a curve from left to right.
func (g *svgGraph) edgePath(i int, bottom float64) (d string, lx, ly float64) {
	e := g.edges[i]
	f, t := g.from(e), g.to(e)
	switch {
	case f == t: // a workload calling itself
		x0, y0 := f.x+f.w-40, f.y
		d = fmt.Sprintf("M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f", x0, y0, x0-10, y0-30, x0+40, y0-30, x0+26, y0)
		return d, x0 + 16, y0 - 26
	case g.back[i] || f.rank >= t.rank: // against the flow: below the graph
		x1, y1 := f.x+f.w/2, f.y+svgBoxH
		x2, y2 := t.x+t.w/2, t.y+svgBoxH
		low := bottom + 30
		d = fmt.Sprintf("M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f", x1, y1, x1, low, x2, low, x2, y2)
		return d, (x1 + x2) / 2, (y1+3*low+3*low+y2)/8 - 4
	default:
		x1, y1 := f.x+f.w, f.y+svgBoxH/2
		x2, y2 := t.x, t.y+svgBoxH/2
		dx := (x2 - x1) / 2
		d = fmt.Sprintf("M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f", x1, y1, x1+dx, y1, x2-dx, y2, x2, y2)
		return d, (x1 + x2) / 2, (y1+y2)/2 - 5
	}
}

// writeNodes draws every node as a labelled box: grey for the folded and
// unauthenticated ones, green for a workload that only receives.
func (g *svgGraph) writeNodes(b *strings.Builder) {
	for _, n := range g.nodes {
		fill := "#eaf1fb"
		switch {
		case n.name == Unauthenticated || n.name == OtherEdges:
			fill = "#f3f3f3"
		case n.calls == 0:
			fill = "#e8f6ec" // only called: a server
		}
		fmt.Fprintf(b, `<g class="node"><title>%s: %d requests made, %d received</title><rect x="%.1f" y="%.1f" width="%.1f" height="%.0f" rx="6" fill="%s" stroke="#8aa"/>`,
			xmlText(n.name), n.calls, n.hit, n.x, n.y, n.w, svgBoxH, fill)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text></g>`+"\n", n.x+n.w/2, n.y+svgBoxH/2+4, xmlText(n.name))
	}
}

// backEdges picks the edges to draw against the flow: edges are taken
// into a forward graph heaviest first, and an edge that would close a
// cycle there is a back edge, so cycles are broken at their lightest edge.
func backEdges(edges []Edge, idx map[string]int, n int) []bool {
	order := make([]int, len(edges))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(edges[b].Requests, edges[a].Requests) })
	out := make([][]int, n)
	back := make([]bool, len(edges))
	seen := make([]int, n)
	mark := 0
	var reaches func(from, to int) bool
	reaches = func(from, to int) bool {
		if from == to {
			return true
		}
		seen[from] = mark
		for _, t := range out[from] {
			if seen[t] != mark && reaches(t, to) {
				return true
			}
		}
		return false
	}
	for _, i := range order {
		f, t := idx[edges[i].From], idx[edges[i].To]
		if f == t {
			continue
		}
		mark++
		if reaches(t, f) {
			back[i] = true
			continue
		}
		out[f] = append(out[f], t)
	}
	return back
}

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;")

// xmlText escapes s for XML text and attributes, dropping the control
// characters XML cannot hold.
func xmlText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0xfffe || r == 0xffff {
			return -1
		}
		return r
	}, s)
	return xmlEscaper.Replace(s)
}
