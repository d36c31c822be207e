// Package proxy is svidgate's HTTP listener (inbound, outbound and edge)
// and the request pipeline behind it.
//
// An inbound listener terminates mTLS from peers holding X509-SVIDs and
// forwards to the local application; an outbound listener takes plain HTTP
// and h2c from the local application on loopback and originates mTLS to an
// upstream whose SPIFFE ID must be the configured one; an edge listener
// takes TLS without client certificates and a JWT-SVID on every request.
//
// A request passes the stages of its listener's mode, in the order of the
// pipelines table in stages.go (docs/ARCHITECTURE.md shows the same lists,
// and a test keeps them equal). Each stage is one method in a file of its
// name; it returns nil to continue or a *refusal, which respond answers in
// the caller's protocol (HTTP status and reason, or a gRPC status in
// trailers). finish, the audit finisher, runs after every request whatever
// its outcome.
//
// Identity headers that svidgate owns are removed from every incoming
// request and set again from the verified TLS state, so a client can never
// choose what the upstream believes about it.
package proxy
