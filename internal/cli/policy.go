package cli

import (
	"flag"
	"fmt"
	"io"

	"github.com/svidgate/svidgate/internal/normalize"
	"github.com/svidgate/svidgate/policy"
)

func policyCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "explain" {
		fmt.Fprintln(stderr, "usage: svidgate policy explain -policy FILE -caller ID -method M -path P [-host H] [-grpc]")
		return 2
	}
	fs := flag.NewFlagSet("policy explain", flag.ContinueOnError)
	file := fs.String("policy", "", "policy `file`")
	caller := fs.String("caller", "", "caller SPIFFE `ID`, e.g. spiffe://example.org/web")
	method := fs.String("method", "GET", "HTTP `method`")
	path := fs.String("path", "/", "request `path`, as sent (it is normalized first, as the gateway does)")
	host := fs.String("host", "", "request `host`")
	grpc := fs.Bool("grpc", false, "the request is a gRPC call; -path is /package.Service/Method")
	if code, ok := parseFlags(fs, args[1:], stderr); !ok {
		return code
	}
	if *file == "" {
		fmt.Fprintln(stderr, "svidgate policy explain: -policy is required")
		return 2
	}
	p, err := policy.Load(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	norm, err := normalize.Path(*path)
	if err != nil {
		fmt.Fprintf(stderr, "path %q: %v (the gateway answers such a request with 400)\n", *path, err)
		return 1
	}
	m := *method
	if *grpc {
		m = "POST"
	}
	in := policy.Input{Caller: *caller, Host: normalize.Host(*host), Method: m, Path: norm, GRPC: *grpc}
	if norm != *path {
		fmt.Fprintf(stdout, "path %s normalizes to %s\n", *path, norm)
	}
	fmt.Fprint(stdout, p.Explain(in).String())
	return 0
}
