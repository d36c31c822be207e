package integration

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// TestRotationUnderLoad keeps steady traffic through an outbound → inbound
// pair whose X509-SVIDs live 30 s, until both gateways have rotated three
// times, and wants every request to succeed and none to be authorized on a
// client certificate that had expired.
func TestRotationUnderLoad(t *testing.T) {
	tp := env.topology(t, "rotation")
	t.Parallel()
	in := tp.gateway(t, "gw-rot-in")
	out := tp.gateway(t, "gw-rot-out")
	const wantChanges = 3
	// At least twice the TTL, so that connections opened with the first
	// SVIDs outlive them; SPIRE rotates at half-life, every 10–20 s here.
	minimum := 2 * rotationTTL
	deadline := 150 * time.Second

	outURL := "http://" + out.addr("rot-out") + "/rotation"
	inURL := "https://" + in.addr("rot-in") + "/rotation"
	viaOut := xfcc(in.id, out.id)
	targets := []target{
		getEchoTarget("outbound keep-alive", plainClient(false, true), outURL, viaOut),
		getEchoTarget("outbound new connection", plainClient(false, false), outURL, viaOut),
		getEchoTarget("outbound h2c", plainClient(true, true), outURL, viaOut),
		getEchoTarget("inbound mTLS new connection", httpsClient(clientTLS(t, idAllowed, in.id), false, false), inURL, xfcc(in.id, idAllowed)),
		getEchoTarget("inbound mTLS keep-alive h2", httpsClient(clientTLS(t, idAllowed, in.id), true, true), inURL, xfcc(in.id, idAllowed)),
	}
	w := watchSerials(in, out)
	l := startLoad(20, targets...)
	start := time.Now()
	for time.Since(start) < deadline {
		if time.Since(start) >= minimum && w.changes(in.name) >= wantChanges && w.changes(out.name) >= wantChanges {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	// A little traffic after the last rotation, then stop.
	time.Sleep(2 * time.Second)
	l.stop()
	w.stop()
	t.Logf("after %v: %s serials %v; %s serials %v", time.Since(start).Round(time.Second), in.name, w.seen(in.name), out.name, w.seen(out.name))
	for _, g := range []*gateway{in, out} {
		if n := w.changes(g.name); n < wantChanges {
			t.Errorf("%s: svid_serial changed %d times in %v, want at least %d (entry TTL %v); last status error: %s",
				g.name, n, time.Since(start).Round(time.Second), wantChanges, rotationTTL, w.errs[g.name])
		}
	}
	l.check(t, targets...)

	checkNoExpiredClientCert(t, in, out.id)
}

// checkNoExpiredClientCert fails the test if in authorized any request of
// caller on a client certificate past its NotAfter: the audit record's
// time is when the request arrived (and was decided), cert_not_after the
// expiry of the certificate the connection was opened with. A keep-alive
// connection that outlives its peer's certificate must not be used for
// more requests. It also fails when the trail holds no record of caller
// with both times, which would make the check vacuous.
func checkNoExpiredClientCert(t testing.TB, in *gateway, caller spiffeid.ID) {
	t.Helper()
	recs, err := in.records(func(r *auditRecord) bool { return r.Source.SPIFFEID == caller.String() })
	if err != nil {
		t.Fatal(err)
	}
	certs := map[string]bool{}
	var expired []string
	for _, r := range recs {
		at, err1 := time.Parse(time.RFC3339Nano, r.Time)
		notAfter, err2 := time.Parse(time.RFC3339Nano, r.Source.CertNotAfter)
		if err := errors.Join(err1, err2); err != nil || r.Source.CertSerial == "" {
			t.Fatalf("%s: a record of %s without a time, cert_serial or cert_not_after (%v): %s", in.name, caller, err, &r)
		}
		certs[r.Source.CertSerial] = true
		if at.After(notAfter) {
			expired = append(expired, fmt.Sprintf("seq %d at %s: certificate %s expired %s (%v after)",
				r.Seq, r.Time, r.Source.CertSerial, r.Source.CertNotAfter, at.Sub(notAfter).Round(time.Millisecond)))
		}
	}
	if len(recs) == 0 {
		t.Fatalf("%s: no audit record of %s: nothing to check the client certificates of", in.name, caller)
	}
	t.Logf("%s presented %d distinct client certificates to %s in %d requests", caller, len(certs), in.name, len(recs))
	if len(expired) > 0 {
		shown := expired
		if len(shown) > 10 {
			shown = shown[:10]
		}
		t.Errorf("%s authorized %d of %d requests of %s on a client certificate past its NotAfter; first ones:\n%s",
			in.name, len(expired), len(recs), caller, indent(strings.Join(shown, "\n")))
	}
}
