package proxy

import (
	"net/http"
	"strings"

	"github.com/svidgate/svidgate/internal/normalize"
)

// sanitize normalizes the request path: what policy decides on is what the
// upstream receives. A path that cannot be normalized safely is 400.
func (h *handler) sanitize(x *exchange) *refusal {
	path, err := normalize.Path(x.rec.Request.Path)
	if err != nil {
		return deny(http.StatusBadRequest, "bad request: "+err.Error(), err.Error())
	}
	x.path = path
	x.rec.Request.Path = path
	if x.grpc {
		x.rec.Request.GRPCMethod = path
	}
	return nil
}

// requestPath is the path as the client sent it. net/http parses an
// origin-form target that starts with "//" as an authority, so the raw
// request URI is used wherever it is a path.
func requestPath(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		p, _, _ := strings.Cut(r.RequestURI, "?")
		return p
	}
	return r.URL.EscapedPath()
}
