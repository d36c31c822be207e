// Package proxy runs svidgate's listeners and the request pipeline behind
// them.
//
// An inbound listener terminates mTLS from peers holding X509-SVIDs and
// forwards to the local application; an outbound listener takes plain HTTP
// and h2c from the local application on loopback and originates mTLS to an
// upstream whose SPIFFE ID must be the configured one. Every request goes
// through the same steps, in this order (see Pipeline):
//
//	normalize → authenticate → decide → forward → audit
//
// Identity headers that svidgate owns are removed from every incoming
// request and set again from the verified TLS state, so a client can never
// choose what the upstream believes about it.
package proxy
