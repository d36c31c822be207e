package admin

import (
	"io"
	"net/http"
	"time"

	"github.com/svidgate/svidgate/internal/audit"
)

// graph serves the live service graph that the audit writer feeds
// (Server.Graph): an SVG drawing by default, or ?format=json|dot|mermaid.
func (s *Server) graph(w http.ResponseWriter, r *http.Request) {
	if s.Graph == nil {
		http.Error(w, "the service graph is not enabled: this gateway writes no audit trail", http.StatusNotFound)
		return
	}
	edges := s.Graph.Edges()
	title := "svidgate service graph"
	if s.Identity != nil {
		if id := s.Identity.Snapshot().SPIFFEID; id != "" {
			title += " — seen by " + id
		}
	}
	var write func(io.Writer) error
	switch f := r.URL.Query().Get("format"); f {
	case "", "svg":
		w.Header().Set("Content-Type", "image/svg+xml; charset=utf-8")
		write = func(w io.Writer) error { return audit.WriteSVG(w, edges, title, time.Now()) }
	case "json":
		w.Header().Set("Content-Type", "application/json")
		write = func(w io.Writer) error { return audit.WriteJSON(w, edges) }
	case "dot":
		w.Header().Set("Content-Type", "text/vnd.graphviz; charset=utf-8")
		write = func(w io.Writer) error { return audit.WriteDOT(w, edges) }
	case "mermaid":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		write = func(w io.Writer) error { return audit.WriteMermaid(w, edges) }
	default:
		http.Error(w, "format "+f+" is not known; want svg, json, dot or mermaid", http.StatusBadRequest)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	_ = write(w)
}
