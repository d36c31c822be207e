// Package endpoint opens the listeners of the sample services: host:port, or
// unix:///path for a unix socket (an inbound sidecar can forward to either).
package endpoint

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// Listen listens on addr: "host:port" or "unix:///path/to.sock". A stale
// socket file left by an earlier run is removed first.
func Listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if path == "" {
			return nil, fmt.Errorf("endpoint: unix address %q has no path", addr)
		}
		_ = os.Remove(path)
		return net.Listen("unix", path)
	}
	return net.Listen("tcp", addr)
}
