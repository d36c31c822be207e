// Package listener defines what every kind of svidgate listener provides to
// the gateway that runs it: serve connections from a bound socket, shut
// down gracefully, and report its status. The HTTP listener (inbound,
// outbound, edge) is one implementation, in package proxy; an L4 listener
// is a sibling behind the same interface, not a special case.
package listener
