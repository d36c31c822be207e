package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// The canonical bytes of a record are its JSON object without the chain
// member: the line as written, minus its trailing newline and minus the
// final `,"chain":"<64 hex digits>"` member, closed with "}". The writer
// always writes chain last, so a verifier needs no JSON canonicalization:
// it cuts a fixed-size suffix off each line.
//
//	chain(1) = hex(SHA-256(canonical(1)))
//	chain(n) = hex(SHA-256(chain(n-1) ‖ canonical(n)))
//
// where chain(n-1) is the 64 lower-case hex digits as ASCII.

// chainSuffixLen is len(`,"chain":"`) + 64 + len(`"}`).
const chainSuffixLen = 10 + 64 + 2

const chainKey = `,"chain":"`

// ErrNoChain is returned for a line that does not end in a chain member.
var ErrNoChain = errors.New(`audit: line does not end with a "chain" member of 64 hex digits`)

// SplitChain returns the canonical bytes of an audit line (without its
// newline) and the chain it carries. canonical shares line's bytes, with
// its last byte overwritten by "}" in a copy when needed; line is not
// modified.
func SplitChain(line []byte) (canonical []byte, chain string, err error) {
	n := len(line)
	if n < chainSuffixLen+2 || line[n-1] != '}' || line[n-2] != '"' || string(line[n-chainSuffixLen:n-chainSuffixLen+len(chainKey)]) != chainKey {
		return nil, "", ErrNoChain
	}
	hexPart := line[n-66 : n-2]
	for _, c := range hexPart {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return nil, "", ErrNoChain
		}
	}
	canonical = make([]byte, n-chainSuffixLen+1)
	copy(canonical, line[:n-chainSuffixLen])
	canonical[len(canonical)-1] = '}'
	return canonical, string(hexPart), nil
}

// NextChain returns chain(n) from chain(n-1) (empty for the first record)
// and the canonical bytes of record n.
func NextChain(prev string, canonical []byte) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(canonical)
	return hex.EncodeToString(h.Sum(nil))
}

// Link is the position of a record in its trail: what the next record
// chains from.
type Link struct {
	Seq   uint64 // the record's seq; 0 before the first record
	Chain string // the record's chain; "" before the first record
}

// chainState is where a chain stands; it is small enough to copy, so the
// writer can roll back a batch that was not written.
type chainState struct {
	seq     uint64
	prev    [2 * sha256.Size]byte
	hasPrev bool
}

// chainer appends chained lines; it belongs to the writer goroutine.
type chainer struct {
	st  chainState
	h   hash.Hash
	sum [sha256.Size]byte
}

func newChainer(l Link) *chainer {
	c := &chainer{h: sha256.New()}
	c.st.seq = l.Seq
	if len(l.Chain) == len(c.st.prev) {
		copy(c.st.prev[:], l.Chain)
		c.st.hasPrev = true
	}
	return c
}

// appendLine sets r.Seq, encodes r as one chained JSON line (with its
// newline) onto b and advances the chain.
func (c *chainer) appendLine(b []byte, r *Record) []byte {
	c.st.seq++
	r.Seq = c.st.seq
	start := len(b)
	b = AppendRecord(b, r)
	c.h.Reset()
	if c.st.hasPrev {
		c.h.Write(c.st.prev[:])
	}
	c.h.Write(b[start:])
	c.h.Sum(c.sum[:0])
	hex.Encode(c.st.prev[:], c.sum[:])
	c.st.hasPrev = true
	b = append(b[:len(b)-1], chainKey...)
	b = append(b, c.st.prev[:]...)
	return append(b, '"', '}', '\n')
}

// AppendRecord appends the canonical JSON form of r (without chain) to b.
// It decodes with encoding/json to the same Record (less Chain), and for
// UTC times and valid UTF-8 it is byte for byte what encoding/json writes
// with HTML escaping off. Times are written in UTC.
func AppendRecord(b []byte, r *Record) []byte {
	b = append(b, `{"schema":`...)
	b = strconv.AppendInt(b, int64(r.Schema), 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"time":`...)
	b = appendTime(b, r.Time)
	b = append(b, `,"id":`...)
	b = appendString(b, r.ID)
	b = append(b, `,"listener":`...)
	b = appendString(b, r.Listener)
	b = append(b, `,"mode":`...)
	b = appendString(b, r.Mode)
	b = appendSource(b, &r.Source)
	if r.Destination != (Destination{}) {
		b = append(b, `,"destination":{`...)
		b = optString(b, `"spiffe_id":`, r.Destination.SPIFFEID)
		b = append(b, '}')
	}
	if r.TLS != (TLS{}) {
		b = append(b, `,"tls":{`...)
		b = optString(b, `"reason":`, r.TLS.Reason)
		b = optString(b, `"presented_spiffe_id":`, r.TLS.PresentedSPIFFEID)
		b = append(b, '}')
	}
	b = appendJWT(b, &r.JWT)
	b = appendRequest(b, &r.Request)
	b = appendDecision(b, &r.Decision)
	b = appendRateLimit(b, &r.RateLimit)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = appendUpstream(b, &r.Upstream)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, r.BytesIn, 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, r.BytesOut, 10)
	b = append(b, `,"duration_ms":`...)
	b = appendFloat(b, r.DurationMS)
	b = optString(b, `,"policy_sha256":`, r.PolicySHA256)
	if r.DroppedBefore != 0 {
		b = append(b, `,"dropped_before":`...)
		b = strconv.AppendUint(b, r.DroppedBefore, 10)
	}
	return append(b, '}')
}

// The append functions below write one member of a record, with the
// comma before it; those of omitzero members write nothing for a zero
// value.

func appendSource(b []byte, s *Source) []byte {
	b = append(b, `,"source":{`...)
	b = optString(b, `"spiffe_id":`, s.SPIFFEID)
	b = optString(b, `"trust_domain":`, s.TrustDomain)
	b = optString(b, `"cert_serial":`, s.CertSerial)
	b = optTime(b, `"cert_not_after":`, s.CertNotAfter)
	b = comma(b)
	b = append(b, `"addr":`...)
	b = appendString(b, s.Addr)
	return append(b, '}')
}

func appendJWT(b []byte, j *JWT) []byte {
	if j.Sub == "" && j.Aud == nil && j.JTI == "" && j.Exp.IsZero() && j.TokenSHA256Prefix == "" {
		return b
	}
	b = append(b, `,"jwt":{`...)
	b = optString(b, `"sub":`, j.Sub)
	if len(j.Aud) > 0 {
		b = comma(b)
		b = append(b, `"aud":[`...)
		for i, a := range j.Aud {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, a)
		}
		b = append(b, ']')
	}
	b = optString(b, `"jti":`, j.JTI)
	b = optTime(b, `"exp":`, j.Exp)
	b = optString(b, `"token_sha256_prefix":`, j.TokenSHA256Prefix)
	return append(b, '}')
}

func appendRequest(b []byte, q *Request) []byte {
	b = append(b, `,"request":{"method":`...)
	b = appendString(b, q.Method)
	b = append(b, `,"host":`...)
	b = appendString(b, q.Host)
	b = append(b, `,"path":`...)
	b = appendString(b, q.Path)
	b = append(b, `,"proto":`...)
	b = appendString(b, q.Proto)
	b = optString(b, `"grpc_method":`, q.GRPCMethod)
	b = optString(b, `"grpc_status":`, q.GRPCStatus)
	return append(b, '}')
}

func appendDecision(b []byte, d *Decision) []byte {
	b = append(b, `,"decision":{"result":`...)
	b = appendString(b, d.Result)
	b = optString(b, `"rule":`, d.Rule)
	b = append(b, `,"reason":`...)
	b = appendString(b, d.Reason)
	if len(d.DryRun) > 0 {
		b = append(b, `,"dry_run":[`...)
		for i := range d.DryRun {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"rule":`...)
			b = appendString(b, d.DryRun[i].Rule)
			b = append(b, `,"result":`...)
			b = appendString(b, d.DryRun[i].Result)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func appendRateLimit(b []byte, l *RateLimit) []byte {
	if *l == (RateLimit{}) {
		return b
	}
	b = append(b, `,"ratelimit":{`...)
	b = optString(b, `"rule":`, l.Rule)
	b = optString(b, `"limit":`, l.Limit)
	b = comma(b)
	b = append(b, `"remaining":`...)
	b = strconv.AppendInt(b, l.Remaining, 10)
	return append(b, '}')
}

func appendUpstream(b []byte, u *Upstream) []byte {
	if *u == (Upstream{}) {
		return b
	}
	b = append(b, `,"upstream":{`...)
	b = optString(b, `"addr":`, u.Addr)
	b = optString(b, `"spiffe_id":`, u.SPIFFEID)
	if u.Status != 0 {
		b = comma(b)
		b = append(b, `"status":`...)
		b = strconv.AppendInt(b, int64(u.Status), 10)
	}
	if u.DurationMS != 0 {
		b = comma(b)
		b = append(b, `"duration_ms":`...)
		b = appendFloat(b, u.DurationMS)
	}
	b = optString(b, `"error":`, u.Error)
	return append(b, '}')
}

// comma separates a member from the one before it, if any.
func comma(b []byte) []byte {
	if c := b[len(b)-1]; c != '{' && c != ',' {
		b = append(b, ',')
	}
	return b
}

func optString(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	if key[0] != ',' {
		b = comma(b)
	}
	b = append(b, key...)
	return appendString(b, s)
}

func optTime(b []byte, key string, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = comma(b)
	b = append(b, key...)
	return appendTime(b, t)
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendFloat writes f as encoding/json does; NaN and infinities, which
// JSON cannot hold, are written as 0.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0')
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 → 1e-7
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// needsEscape marks the ASCII bytes that cannot appear as themselves in a
// JSON string.
var needsEscape = func() (t [utf8.RuneSelf]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// appendString writes s as a JSON string. Invalid UTF-8 bytes become
// U+FFFD, and U+2028 and U+2029 are escaped, as encoding/json does.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !needsEscape[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
