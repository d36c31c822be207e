// Package normalize puts request paths and hosts into the one canonical form
// that svidgate both authorizes and forwards.
//
// Authorizing one spelling of a path and forwarding another is how path-based
// access control is bypassed ("/public/..%2fadmin", "/admin/./", "//admin").
// [Path] therefore rejects what has no safe canonical form (encoded slashes and
// backslashes, NUL and other control characters, fragments, malformed
// escapes) and rewrites the rest: unreserved characters are decoded, other
// escapes get upper-case hex, dot segments are removed as in RFC 3986
// section 5.2.4 and runs of slashes are merged. The result is what policy
// matches and what the upstream receives.
//
// [Host] lower-cases a Host header value and drops its port and trailing dot.
//
// Both functions return their input unchanged, without allocating, when it is
// already in normal form, which is the common case.
package normalize
