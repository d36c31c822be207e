package normalize

import (
	"errors"
	"strings"
	"testing"
)

func TestPath(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		err  error
	}{
		// Already canonical: returned as is.
		{"root", "/", "/", nil},
		{"simple", "/orders", "/orders", nil},
		{"nested", "/orders/42/items", "/orders/42/items", nil},
		{"trailing slash kept", "/orders/", "/orders/", nil},
		{"kept escape", "/a%20b", "/a%20b", nil},
		{"kept escape of percent", "/100%25", "/100%25", nil},
		{"encoded hash kept", "/a%23b", "/a%23b", nil},
		{"encoded query kept", "/a%3Fb", "/a%3Fb", nil},
		{"non-ascii escape kept", "/caf%C3%A9", "/caf%C3%A9", nil},
		{"dots inside segment", "/a/.../b/..c/c..", "/a/.../b/..c/c..", nil},
		{"sub-delims kept", "/a;b=c/d,e", "/a;b=c/d,e", nil},

		// Escapes.
		{"lower-case hex upper-cased", "/a%2cb", "/a%2Cb", nil},
		{"lower-case hex mixed", "/a%c3%a9", "/a%C3%A9", nil},
		{"unreserved alpha decoded", "/%41%62c", "/Abc", nil},
		{"unreserved digit decoded", "/v%31", "/v1", nil},
		{"unreserved marks decoded", "/%2D%2e%5F%7e", "/-._~", nil},
		{"encoded dot-dot is dot-dot", "/a/%2e%2e/b", "/b", nil},
		{"encoded dot-dot upper", "/a/%2E%2E/b", "/b", nil},
		{"half encoded dot-dot", "/a/.%2e/b", "/b", nil},
		{"encoded dot", "/a/%2e/b", "/a/b", nil},
		{"encoded dot-dot at root", "/%2e%2e/etc/passwd", "/etc/passwd", nil},

		// Dot segments (RFC 3986 5.2.4).
		{"dot", "/a/./b", "/a/b", nil},
		{"dot-dot", "/a/b/../c", "/a/c", nil},
		{"rfc example", "/a/b/c/./../../g", "/a/g", nil},
		{"dot-dot above root", "/../a", "/a", nil},
		{"many dot-dots above root", "/../../../a/b", "/a/b", nil},
		{"only dot-dot", "/..", "/", nil},
		{"only dot", "/.", "/", nil},
		{"trailing dot gives slash", "/a/.", "/a/", nil},
		{"trailing dot-dot gives slash", "/a/b/..", "/a/", nil},
		{"trailing dot-dot to root", "/a/..", "/", nil},
		{"dot-dot then slash", "/a/../", "/", nil},

		// Slashes.
		{"double slash", "/a//b", "/a/b", nil},
		{"leading double slash", "//a", "/a", nil},
		{"only slashes", "///", "/", nil},
		{"trailing double slash", "/a//", "/a/", nil},
		{"slashes merged before dot-dot", "/a//../b", "/b", nil},
		{"dot and slashes", "/a/.//./b/", "/a/b/", nil},

		// Rejections.
		{"empty", "", "", ErrNotAbsolute},
		{"relative", "a/b", "", ErrNotAbsolute},
		{"absolute URI", "http://x/a", "", ErrNotAbsolute},
		{"encoded slash", "/a%2Fb", "", ErrEncodedSlash},
		{"encoded slash lower", "/a%2fb", "", ErrEncodedSlash},
		{"encoded slash in dot-dot", "/a/..%2f/b", "", ErrEncodedSlash},
		{"encoded backslash", "/a%5Cb", "", ErrEncodedBackslash},
		{"encoded backslash lower", "/a%5cb", "", ErrEncodedBackslash},
		{"backslash", `/a\b`, "", ErrBackslash},
		{"backslash dot-dot", `/a\..\b`, "", ErrBackslash},
		{"raw NUL", "/a\x00b", "", ErrNUL},
		{"encoded NUL", "/a%00b", "", ErrNUL},
		{"raw control", "/a\nb", "", ErrControl},
		{"raw tab", "/a\tb", "", ErrControl},
		{"raw DEL", "/a\x7fb", "", ErrControl},
		{"encoded control", "/a%0Ab", "", ErrControl},
		{"encoded control lower", "/a%0db", "", ErrControl},
		{"encoded unit separator", "/a%1F", "", ErrControl},
		{"encoded DEL", "/a%7F", "", ErrControl},
		{"fragment", "/a#b", "", ErrFragment},
		{"unescaped query", "/a?b", "", ErrQuery},
		{"escape too short at end", "/a%4", "", ErrBadEscape},
		{"lone percent at end", "/a%", "", ErrBadEscape},
		{"non-hex escape", "/a%zzb", "", ErrBadEscape},
		{"half hex escape", "/a%4gb", "", ErrBadEscape},
		{"double percent", "/a%%41", "", ErrBadEscape},
		{"first error wins over later rewrite", "/a%2e/%2F", "", ErrEncodedSlash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Path(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Path(%q) error = %v, want %v", tt.in, err, tt.err)
			}
			if got != tt.want {
				t.Fatalf("Path(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if err != nil {
				return
			}
			again, err := Path(got)
			if err != nil || again != got {
				t.Fatalf("Path(%q) = %q, %v; not idempotent", got, again, err)
			}
		})
	}
}

func TestPathErrorText(t *testing.T) {
	for _, err := range []error{ErrNotAbsolute, ErrEncodedSlash, ErrEncodedBackslash, ErrBackslash,
		ErrNUL, ErrControl, ErrFragment, ErrQuery, ErrBadEscape} {
		if !strings.HasPrefix(err.Error(), "normalize: ") {
			t.Errorf("error %q lacks the package prefix", err)
		}
	}
}

func TestPathCanonicalDoesNotAllocate(t *testing.T) {
	for _, p := range []string{"/", "/orders/42/items", "/a%20b/", "/pkg.Service/Method"} {
		if n := testing.AllocsPerRun(100, func() { _, _ = Path(p) }); n != 0 {
			t.Errorf("Path(%q) allocates %v times, want 0", p, n)
		}
	}
}

func FuzzPath(f *testing.F) {
	for _, s := range []string{
		"/", "/a/b", "/a/./b/../c", "//a//b//", "/%2e%2e/x", "/a%2fb", "/%41",
		"/a/..", "/a/.", `/a\b`, "/a%zz", "/../..", "/a%c3%a9/", "/.%2e/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := Path(in)
		if err != nil {
			if out != "" {
				t.Fatalf("Path(%q) = %q with error %v", in, out, err)
			}
			return
		}
		if !strings.HasPrefix(out, "/") {
			t.Fatalf("Path(%q) = %q: does not start with /", in, out)
		}
		for _, bad := range []string{"//", "/./", "/../"} {
			if strings.Contains(out, bad) {
				t.Fatalf("Path(%q) = %q: contains %q", in, out, bad)
			}
		}
		if strings.HasSuffix(out, "/.") || strings.HasSuffix(out, "/..") {
			t.Fatalf("Path(%q) = %q: ends in a dot segment", in, out)
		}
		again, err := Path(out)
		if err != nil || again != out {
			t.Fatalf("Path(%q) = %q, but Path(%q) = %q, %v", in, out, out, again, err)
		}
	})
}

func BenchmarkPath(b *testing.B) {
	for _, bm := range []struct{ name, in string }{
		{"canonical", "/api/v1/orders/42/items"},
		{"dot-segments", "/api/v1/../v2/./orders//42"},
		{"escapes", "/api/%76%31/orders/caf%c3%a9"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = Path(bm.in)
			}
		})
	}
}
