package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// auditRecord is one record of an audit trail (docs/AUDIT.md, schema 2):
// every field some test checks, and the line it was decoded from. Fields
// the gateway leaves out when empty decode as zero values.
type auditRecord struct {
	Schema   int    `json:"schema"`
	Seq      uint64 `json:"seq"`
	Time     string `json:"time"`
	Listener string `json:"listener"`
	Mode     string `json:"mode"`
	Source   struct {
		SPIFFEID     string `json:"spiffe_id"`
		CertSerial   string `json:"cert_serial"`
		CertNotAfter string `json:"cert_not_after"`
		Addr         string `json:"addr"`
	} `json:"source"`
	Destination struct {
		SPIFFEID string `json:"spiffe_id"`
	} `json:"destination"`
	JWT struct {
		Sub               string   `json:"sub"`
		Aud               []string `json:"aud"`
		JTI               string   `json:"jti"`
		Exp               string   `json:"exp"`
		TokenSHA256Prefix string   `json:"token_sha256_prefix"`
	} `json:"jwt"`
	Request struct {
		Method     string `json:"method"`
		Host       string `json:"host"`
		Path       string `json:"path"`
		Proto      string `json:"proto"`
		GRPCMethod string `json:"grpc_method"`
		GRPCStatus string `json:"grpc_status"`
	} `json:"request"`
	Decision struct {
		Result string `json:"result"`
		Rule   string `json:"rule"`
		Reason string `json:"reason"`
		DryRun []struct {
			Rule   string `json:"rule"`
			Result string `json:"result"`
		} `json:"dry_run"`
	} `json:"decision"`
	RateLimit struct {
		Rule      string `json:"rule"`
		Limit     string `json:"limit"`
		Remaining int64  `json:"remaining"`
	} `json:"ratelimit"`
	Status int `json:"status"`
	// Upstream.Status is 0 when the request was not forwarded.
	Upstream struct {
		Addr       string  `json:"addr"`
		Status     int     `json:"status"`
		DurationMS float64 `json:"duration_ms"`
	} `json:"upstream"`
	DroppedBefore uint64 `json:"dropped_before"`
	Chain         string `json:"chain"`

	line string // as written, for failure messages
}

// String is the record as the gateway wrote it.
func (r *auditRecord) String() string { return r.line }

// readTrail decodes every complete line of files, in the order given. A
// complete line that is not JSON is an error: the gateway wrote it. A last
// line without its newline is a record being written, or one a kill cut
// short; it is not decoded but described in torn (file and size).
func readTrail(files ...string) (recs []auditRecord, torn string, err error) {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, "", err
		}
		lines := bytes.Split(b, []byte("\n"))
		if last := lines[len(lines)-1]; len(last) > 0 {
			torn = fmt.Sprintf("%s: %d bytes", f, len(last))
		}
		for i, line := range lines[:len(lines)-1] {
			r := auditRecord{line: string(line)}
			if err := json.Unmarshal(line, &r); err != nil {
				return nil, "", fmt.Errorf("%s:%d is not JSON: %v: %.200q", f, i+1, err, line)
			}
			recs = append(recs, r)
		}
	}
	return recs, torn, nil
}

// checkSeq checks that recs hold seq 1..len(recs) in order.
func checkSeq(recs []auditRecord) error {
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			return fmt.Errorf("record %d has seq %d, want %d", i+1, r.Seq, i+1)
		}
	}
	return nil
}

// records returns the records of g's trail so far that match accepts (all
// when match is nil), in the order written.
func (g *gateway) records(match func(*auditRecord) bool) ([]auditRecord, error) {
	recs, _, err := readTrail(g.audit)
	if err != nil {
		return nil, err
	}
	if match == nil {
		return recs, nil
	}
	var out []auditRecord
	for i := range recs {
		if match(&recs[i]) {
			out = append(out, recs[i])
		}
	}
	return out, nil
}

// waitRecords polls g's trail until at least n records match, and fails
// the test after 10s with the last records it saw. Records are written a
// few milliseconds after the answer (batched writes), hence the poll.
func (g *gateway) waitRecords(t testing.TB, what string, n int, match func(*auditRecord) bool) []auditRecord {
	t.Helper()
	var got []auditRecord
	err := poll(10*time.Second, 50*time.Millisecond, func() error {
		var err error
		if got, err = g.records(match); err != nil {
			return permanent(err) // a line the gateway wrote is not JSON
		}
		if len(got) < n {
			return fmt.Errorf("%d records, want at least %d", len(got), n)
		}
		return nil
	})
	if err != nil {
		all, _ := g.records(nil)
		t.Fatalf("%s audit trail %s: %s: %v; its last records:\n%s", g.name, g.audit, what, g.diagnose(err), indent(lastLines(all, 8)))
	}
	return got
}

// waitRecord is waitRecords for one record: the first that matches.
func (g *gateway) waitRecord(t testing.TB, what string, match func(*auditRecord) bool) *auditRecord {
	t.Helper()
	return &g.waitRecords(t, what, 1, match)[0]
}

// recordAt waits for the record of the request for path on listener (the
// first, when there are several).
func (g *gateway) recordAt(t testing.TB, listener, path string) *auditRecord {
	t.Helper()
	return g.waitRecord(t, "the record of "+path+" on "+listener, func(r *auditRecord) bool {
		return r.Listener == listener && r.Request.Path == path
	})
}

// recordsOf waits until g's trail holds at least n records of caller's
// requests and returns them all, in the order written.
func (g *gateway) recordsOf(t testing.TB, caller spiffeid.ID, n int) []auditRecord {
	t.Helper()
	return g.waitRecords(t, "the records of "+caller.String(), n, func(r *auditRecord) bool {
		return r.Source.SPIFFEID == caller.String()
	})
}

func lastLines(recs []auditRecord, n int) string {
	if len(recs) > n {
		recs = recs[len(recs)-n:]
	}
	lines := make([]string, len(recs))
	for i := range recs {
		lines[i] = recs[i].line
	}
	if len(lines) == 0 {
		return "(none)"
	}
	return strings.Join(lines, "\n")
}
