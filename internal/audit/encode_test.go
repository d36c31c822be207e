package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
)

// stdlibLine is what encoding/json writes for r, HTML escaping off.
func stdlibLine(t testing.TB, r *Record) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeOne(r *Record) []byte {
	c := newChainer(Link{})
	return c.appendLine(nil, r)
}

func TestAppendRecordIsEncodingJSON(t *testing.T) {
	full := sample(1)
	full.TLS = TLS{Reason: "certificate signed by unknown authority", PresentedSPIFFEID: "spiffe://evil.org/x"}
	full.JWT = JWT{Sub: "spiffe://example.org/web", Aud: []string{"a", "b"}, JTI: "j1", Exp: time.Date(2027, 1, 1, 0, 0, 0, 1, time.UTC), TokenSHA256Prefix: "0123456789abcdef"}
	full.RateLimit = RateLimit{Rule: "r", Limit: "50/s"}
	full.Decision.DryRun = []DryRun{{Rule: "d1", Result: "would_deny"}, {Rule: "d2", Result: "would_allow"}}
	full.Request.GRPCMethod, full.Request.GRPCStatus = "/a.B/C", "7"
	full.Upstream.Error = "dial tcp: refused"
	full.PolicySHA256 = "9c1e"
	full.DroppedBefore = 3
	full.BytesIn = -1
	escapes := Record{Request: Request{Path: "\"\\\b\f\n\r\t\x00\x1f\x7f<>&\u2028\u2029é漢😀", Host: "bad\xff\xfeutf8\xc3"}}
	floats := Record{DurationMS: 1e-7, Upstream: Upstream{DurationMS: 1e21}}
	floats2 := Record{DurationMS: -123456.789e-3, Upstream: Upstream{DurationMS: 5e-324}}
	for name, r := range map[string]Record{"empty": {}, "sample": sample(7), "full": full, "escapes": escapes, "floats": floats, "floats2": floats2} {
		t.Run(name, func(t *testing.T) {
			r.Schema = Schema
			line := encodeOne(&r)
			_, chain, err := SplitChain(line[:len(line)-1])
			if err != nil {
				t.Fatal(err)
			}
			r.Chain = chain
			if want := stdlibLine(t, &r); !bytes.Equal(line, want) {
				t.Errorf("encoding differs from encoding/json\n got %s\nwant %s", line, want)
			}
		})
	}
}

// The chain is what docs/AUDIT.md says it is, computed independently.
func TestChainDefinition(t *testing.T) {
	c := newChainer(Link{})
	var b []byte
	for i := range 3 {
		r := sample(i)
		b = c.appendLine(b, &r)
	}
	prev := ""
	for i, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		suffix := line[len(line)-76:]
		if !bytes.HasPrefix(suffix, []byte(`,"chain":"`)) {
			t.Fatalf("line %d does not end in its chain: %s", i+1, suffix)
		}
		canonical := append(append([]byte(nil), line[:len(line)-76]...), '}')
		sum := sha256.Sum256(append([]byte(prev), canonical...))
		want := hex.EncodeToString(sum[:])
		if got := string(suffix[10:74]); got != want {
			t.Fatalf("line %d: chain %s, want %s", i+1, got, want)
		}
		var r Record
		if err := json.Unmarshal(canonical, &r); err != nil || r.Seq != uint64(i+1) {
			t.Fatalf("canonical bytes of line %d: %v, seq %d", i+1, err, r.Seq)
		}
		prev = want
	}
}

func FuzzAppendRecord(f *testing.F) {
	f.Add("spiffe://example.org/web", "/orders/1", "GET", "allowed by rule", 0.63, int64(512), int64(1764651662))
	f.Add("\xff\x00\"\\", "/a\u2028b", "", "\n\t", 1e-9, int64(-1), int64(0))
	f.Fuzz(func(t *testing.T, id, path, method, reason string, dur float64, n int64, sec int64) {
		if math.IsNaN(dur) || math.IsInf(dur, 0) {
			return
		}
		r := Record{
			Schema:   Schema,
			Time:     time.Unix(sec%253402300799, n%1e9).UTC(),
			ID:       id,
			Source:   Source{SPIFFEID: id, Addr: reason},
			JWT:      JWT{Aud: []string{path, id}},
			Request:  Request{Method: method, Path: path},
			Decision: Decision{Result: method, Reason: reason, DryRun: []DryRun{{Rule: path, Result: id}}},
			Status:   int(n % 1000),
			BytesIn:  n,
			Upstream: Upstream{DurationMS: dur},
		}
		if r.Time.Year() < 0 || r.Time.Year() > 9999 {
			return
		}
		line := encodeOne(&r)
		if !json.Valid(line) {
			t.Fatalf("invalid JSON: %q", line)
		}
		var got Record
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatal(err)
		}
		r.Chain = got.Chain
		if want := stdlibLine(t, &r); !bytes.Equal(line, want) {
			t.Fatalf("encoding differs from encoding/json\n got %q\nwant %q", line, want)
		}
		var want Record
		if err := json.Unmarshal(stdlibLine(t, &r), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, want)
		}
	})
}

func BenchmarkAppendRecord(b *testing.B) {
	r := sample(1)
	c := newChainer(Link{})
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = c.appendLine(buf[:0], &r)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkEncodingJSON(b *testing.B) {
	r := sample(1)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		_ = enc.Encode(&r)
	}
}
