package normalize

import (
	"bytes"
	"errors"
)

// Errors returned by [Path]. Each names the rule the path broke.
var (
	ErrNotAbsolute      = errors.New(`normalize: path must start with "/"`)
	ErrEncodedSlash     = errors.New("normalize: path contains an encoded slash (%2F)")
	ErrEncodedBackslash = errors.New("normalize: path contains an encoded backslash (%5C)")
	ErrBackslash        = errors.New(`normalize: path contains a backslash ("\")`)
	ErrNUL              = errors.New("normalize: path contains a NUL byte")
	ErrControl          = errors.New("normalize: path contains a control character")
	ErrFragment         = errors.New(`normalize: path contains a fragment ("#")`)
	ErrQuery            = errors.New(`normalize: path contains an unescaped "?"`)
	ErrBadEscape        = errors.New(`normalize: path contains a malformed percent-escape (want "%" and two hex digits)`)
)

// Path returns the canonical form of raw, an escaped request path as given by
// [net/url.URL.EscapedPath].
//
// Path rejects a path that does not start with "/", and one that contains an
// encoded slash or backslash (%2F, %5C), a literal backslash, NUL or any
// other control character (raw or percent-encoded), "#", an unescaped "?",
// or a malformed percent-escape. Otherwise it decodes escapes of unreserved
// characters (ALPHA DIGIT "-" "." "_" "~"), upper-cases the hex digits of the
// escapes it keeps, merges runs of slashes, and removes "." and ".." segments
// as RFC 3986 section 5.2.4 does (".." at the root stays at the root). A
// trailing slash is kept; a path ending in a dot segment ends in a slash.
//
// Path is idempotent, and it returns raw itself without allocating when raw
// is already canonical.
func Path(raw string) (string, error) {
	if raw == "" || raw[0] != '/' {
		return "", ErrNotAbsolute
	}
	// One pass validates every byte and finds out whether anything has to
	// change; the common case ends here.
	dirty := false
	segStart := 1
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return "", ErrBadEscape
			}
			v := unhex(raw[i+1])<<4 | unhex(raw[i+2])
			if err := checkByte(v, true); err != nil {
				return "", err
			}
			if isUnreserved(v) || isLowerHex(raw[i+1]) || isLowerHex(raw[i+2]) {
				dirty = true
			}
			i += 2
		case c == '/':
			if i > 0 {
				if seg := raw[segStart:i]; seg == "" || seg == "." || seg == ".." {
					dirty = true
				}
				segStart = i + 1
			}
		default:
			if err := checkByte(c, false); err != nil {
				return "", err
			}
		}
	}
	if seg := raw[segStart:]; seg == "." || seg == ".." {
		dirty = true
	}
	if !dirty {
		return raw, nil
	}
	return string(clean(decode(raw))), nil
}

// checkByte reports whether c may appear in a path, raw or (when escaped is
// true) as a percent-escape.
func checkByte(c byte, escaped bool) error {
	switch {
	case c == 0:
		return ErrNUL
	case c < 0x20 || c == 0x7f:
		return ErrControl
	case c == '/' && escaped:
		return ErrEncodedSlash
	case c == '\\' && escaped:
		return ErrEncodedBackslash
	case c == '\\':
		return ErrBackslash
	case c == '#' && !escaped:
		return ErrFragment
	case c == '?' && !escaped:
		return ErrQuery
	}
	return nil
}

// decode returns raw with unreserved characters decoded and the hex digits of
// the remaining escapes upper-cased. raw has been validated.
func decode(raw string) []byte {
	buf := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '%' {
			buf = append(buf, c)
			continue
		}
		v := unhex(raw[i+1])<<4 | unhex(raw[i+2])
		if isUnreserved(v) {
			buf = append(buf, v)
		} else {
			buf = append(buf, '%', upperHex(raw[i+1]), upperHex(raw[i+2]))
		}
		i += 2
	}
	return buf
}

// clean merges slashes and removes dot segments from p, which starts with
// "/", in place.
func clean(p []byte) []byte {
	out := p[:0]
	i := 1
	for i <= len(p) {
		j := i
		for j < len(p) && p[j] != '/' {
			j++
		}
		seg := p[i:j]
		last := j >= len(p)
		switch {
		case len(seg) == 0 || isDot(seg):
			if last {
				out = append(out, '/')
			}
		case isDotDot(seg):
			if k := bytes.LastIndexByte(out, '/'); k >= 0 {
				out = out[:k]
			}
			if last {
				out = append(out, '/')
			}
		default:
			// out never overtakes the read position: it holds at most
			// the bytes of the segments read so far.
			out = append(out, '/')
			out = append(out, seg...)
		}
		i = j + 1
	}
	if len(out) == 0 {
		out = append(out, '/')
	}
	return out
}

func isDot(s []byte) bool    { return len(s) == 1 && s[0] == '.' }
func isDotDot(s []byte) bool { return len(s) == 2 && s[0] == '.' && s[1] == '.' }

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isLowerHex(c byte) bool { return 'a' <= c && c <= 'f' }

func upperHex(c byte) byte {
	if isLowerHex(c) {
		return c - 'a' + 'A'
	}
	return c
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
