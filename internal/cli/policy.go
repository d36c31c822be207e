package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/svidgate/svidgate/internal/normalize"
	"github.com/svidgate/svidgate/policy"
)

func policyCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "suggest" {
		return policySuggest(args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "explain" {
		fmt.Fprintln(stderr, "usage: svidgate policy explain -policy FILE -caller ID -method M -path P [-host H] [-grpc]\n       svidgate policy suggest FILE... [-o FILE] [-listener NAME] [-include-denied] [-collapse N]")
		return 2
	}
	fs := flag.NewFlagSet("policy explain", flag.ContinueOnError)
	file := fs.String("policy", "", "policy `file`")
	caller := fs.String("caller", "", "caller SPIFFE `ID`, e.g. spiffe://example.org/web")
	method := fs.String("method", "GET", "HTTP `method`")
	path := fs.String("path", "/", "request `path`, as sent (it is normalized first, as the gateway does)")
	host := fs.String("host", "", "request `host`")
	grpc := fs.Bool("grpc", false, "the request is a gRPC call; -path is /package.Service/Method")
	jwtClaims := fs.String("jwt-claims", "", "the JWT-SVID's claims as `JSON`, e.g. '{\"sub\":\"spiffe://example.org/web\",\"aud\":[\"spiffe://example.org/orders\"],\"scope\":[\"orders:read\"]}'")
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
	ex := p.Explain(in)
	fmt.Fprint(stdout, ex.String())
	if *jwtClaims != "" {
		return explainJWT(stdout, stderr, ex.Decision, in.Caller, *jwtClaims)
	}
	return 0
}

// explainJWT shows how the deciding rule's [rule.jwt] evaluates claims.
func explainJWT(stdout, stderr io.Writer, d policy.Decision, caller, raw string) int {
	var claims map[string]any
	if err := json.Unmarshal([]byte(raw), &claims); err != nil {
		fmt.Fprintf(stderr, "-jwt-claims: %v (want a JSON object)\n", err)
		return 2
	}
	if d.JWT == nil {
		fmt.Fprintln(stdout, "jwt:      the deciding rule requires no JWT-SVID")
		return 0
	}
	sub, _ := claims["sub"].(string)
	var aud []string
	switch a := claims["aud"].(type) {
	case string:
		aud = []string{a}
	case []any:
		for _, v := range a {
			if s, ok := v.(string); ok {
				aud = append(aud, s)
			}
		}
	}
	verdict := "passes"
	if reason := d.JWT.Check(caller, sub, aud, claims); reason != "" {
		verdict = "fails: " + reason + " (the gateway answers 401)"
	}
	fmt.Fprintf(stdout, "jwt:      %s\n", verdict)
	for _, r := range d.JWT.Explain(caller, sub, aud, claims) {
		mark := "ok  "
		if !r.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(stdout, "    %s  %s  (%s)\n", mark, r.Condition, r.Detail)
	}
	return 0
}
