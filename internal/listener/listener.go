package listener

import (
	"context"
	"net"

	"github.com/svidgate/svidgate/internal/reload"
)

// Listener is one configured [[listener]], whatever its framing.
type Listener interface {
	// Serve accepts connections on ln until Shutdown or Close. It returns
	// nil once the listener was shut down, and any other error at once.
	Serve(ln net.Listener) error
	// Shutdown stops accepting, lets work in flight finish until ctx ends,
	// and returns ctx's error if some was still running then.
	Shutdown(ctx context.Context) error
	// Close closes every connection at once (after a Shutdown that ran
	// out of time).
	Close() error
	// Status reports the listener for /v1/status.
	Status() Status
}

// Status is what /v1/status says of one listener.
type Status struct {
	Name string
	Mode string
	// Address is the bound address, "" until Serve is called.
	Address string
	// Policy is the listener's policy; nil for a listener without one.
	Policy *reload.Holder
}
