package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
)

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3";
// otherwise the module version or "devel".
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

const usage = `svidgate: a workload-identity gateway for SPIFFE

Usage:
  svidgate run -config gateway.toml        run the gateway
  svidgate validate -config gateway.toml   check the config and every policy it names
  svidgate policy explain -policy FILE -caller ID -method M -path P [-host H] [-grpc]
                                           show how a policy decides one request
  svidgate policy suggest FILE... [-o policy.toml]  write a least-privilege policy from an audit trail
  svidgate audit verify|query|graph FILE...  check the hash chain, search records, print the service graph
  svidgate version                         print the version
`

// Run runs the subcommand named by args[0].
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return runGateway(ctx, args[1:], stdout, stderr)
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "policy":
		return policyCmd(args[1:], stdout, stderr)
	case "audit":
		return auditCmd(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "svidgate", version())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "svidgate: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// parseFlags parses a subcommand's flags; it returns an exit code when the
// command should stop (help: 0, bad flags: 2).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (int, bool) {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "svidgate %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return 2, false
	}
	return 0, true
}
