// Package identity keeps svidgate's own X509-SVID and the trust bundles it
// verifies peers with, as delivered by the SPIFFE Workload API, and builds
// the TLS configurations of mesh listeners and upstream connections from
// them.
//
// A Source is updated in place as the agent rotates SVIDs and bundles, and
// every TLS handshake reads the current values, so rotation needs no restart
// and drops no connection. Peers are verified by go-spiffe's X509-SVID rules
// plus the ones it leaves to its caller: the peer's SPIFFE ID must have a
// path, its trust domain must be one the listener accepts, TLS 1.3 only, and
// no session resumption (so every connection is verified against the current
// bundle).
package identity
