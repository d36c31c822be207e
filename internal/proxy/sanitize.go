package proxy

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/svidgate/svidgate/internal/normalize"
)

// sanitize makes the request one that every backend reads as svidgate
// decided it (docs/HARDENING.md): a method that is not upper-case is 400
// (methods are case-sensitive, RFC 9110, but some frameworks fold them);
// headers a backend could take for the gateway's word are removed; the
// path is normalized, and what policy decides on is what the upstream
// receives (a path that cannot be normalized safely is 400).
func (h *handler) sanitize(x *exchange) *refusal {
	if !upperCase(x.r.Method) {
		return deny(http.StatusBadRequest, "bad request: method "+strconv.Quote(x.r.Method)+" is not upper-case",
			"method names are case-sensitive: use upper case")
	}
	if r := checkHost(x.r); r != nil {
		return r
	}
	dropSpoofable(x.r.Header)
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

// Spoofable are request headers that backends and frameworks act on as if
// a trusted proxy had set them: client addresses (Forwarded, X-Real-IP),
// rewritten URLs (X-Original-URL, X-Rewrite-URL: IIS, Symfony), method
// overrides (Express, Rails, Laravel), which would make the backend run
// another method than the one decided. svidgate removes them from every
// request. X-Forwarded-* are removed by httputil.ReverseProxy and set
// again from the connection; X-Envoy-* and any name with an underscore are
// removed by dropSpoofable too.
var Spoofable = []string{
	"Forwarded", "X-Real-Ip", "X-Original-Url", "X-Rewrite-Url",
	"X-Http-Method-Override", "X-Http-Method", "X-Method-Override",
}

// dropSpoofable removes the Spoofable headers, every X-Envoy-* header, and
// every header whose name has an underscore: CGI, WSGI and Rack turn "-"
// and "_" alike into "_", so X_Forwarded_Client_Cert would reach a Python
// or Ruby app as the identity header svidgate sets.
func dropSpoofable(hdr http.Header) {
	for _, k := range Spoofable {
		delete(hdr, k)
	}
	for k := range hdr {
		if strings.IndexByte(k, '_') >= 0 || strings.HasPrefix(k, "X-Envoy-") {
			delete(hdr, k)
		}
	}
}

// upperCase reports whether a method token has no lower-case letter.
func upperCase(method string) bool {
	for i := 0; i < len(method); i++ {
		if 'a' <= method[i] && method[i] <= 'z' {
			return false
		}
	}
	return true
}

// checkHost refuses a Host (HTTP/2: :authority) that is not a plain host
// and port, and a Host header that disagrees with :authority; it strips
// trailing dots from the host name, so that the upstream receives the host
// policy decided on.
func checkHost(r *http.Request) *refusal {
	if err := normalize.CheckHost(r.Host); err != nil {
		return deny(http.StatusBadRequest, "bad request: host "+strconv.Quote(r.Host)+": "+err.Error(), err.Error())
	}
	for _, v := range r.Header.Values("Host") { // HTTP/2 keeps a Host header beside :authority
		if v != r.Host {
			return deny(http.StatusBadRequest, "bad request: Host "+strconv.Quote(v)+" disagrees with :authority "+strconv.Quote(r.Host),
				"bad request: Host and :authority disagree")
		}
	}
	r.Header.Del("Host")
	name, port := r.Host, ""
	if i := strings.LastIndexByte(name, ':'); i >= 0 && !strings.HasSuffix(name, "]") {
		name, port = name[:i], name[i:]
	}
	if strings.HasSuffix(name, ".") {
		r.Host = strings.TrimRight(name, ".") + port
	}
	return nil
}
