package policy

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error it reports
// points into the file, and that a policy it accepts can decide any input
// without panicking, with Explain agreeing with Decide.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.toml")
	ok, _ := filepath.Glob("testdata/ok/*.toml")
	for _, file := range append(files, ok...) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		input, _, _ := strings.Cut(string(data), goldenSep)
		f.Add(input, "spiffe://example.org/ns/web/sa/x", "GET", "/orders/1", false)
	}
	f.Add("version = 1\n[[rule]]\nid='a'\neffect='allow'\ncallers=['spiffe://a/**']\ngrpc=['/*/*']\n",
		"spiffe://a/b", "POST", "/x.Y/Z", true)
	f.Fuzz(func(t *testing.T, src, caller, method, path string, grpc bool) {
		p, err := Parse("fuzz.toml", []byte(src))
		if err != nil {
			lines := strings.Count(src, "\n") + 1
			var e *Error
			for _, one := range unwrapAll(err) {
				if !errors.As(one, &e) {
					continue
				}
				if e.Line < 1 || e.Line > lines || e.Col < 1 {
					t.Fatalf("error outside the file (%d lines): %v", lines, e)
				}
			}
			return
		}
		for _, in := range []Input{
			{Caller: caller, Method: method, Path: path, GRPC: grpc, Host: "orders.internal"},
			{Caller: "spiffe://example.org/ns/web/sa/x", Method: method, Path: path, GRPC: grpc},
		} {
			d := p.Decide(in)
			e := p.Explain(in)
			if !reflect.DeepEqual(d, e.Decision) {
				t.Fatalf("Decide = %+v, Explain = %+v", d, e.Decision)
			}
			_ = e.String()
		}
	})
}

func unwrapAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
