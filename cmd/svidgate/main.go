// Command svidgate is a workload-identity gateway: it terminates mTLS with
// SPIFFE SVIDs, authorizes every request by the caller's SPIFFE ID per
// route, and audits what it decided. See README.md.
package main

import (
	"context"
	"os"

	"github.com/svidgate/svidgate/internal/cli"
)

func main() {
	os.Exit(cli.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
