package integration

import (
	"testing"
	"time"
)

// TestRotationUnderLoad keeps steady traffic through an outbound → inbound
// pair whose X509-SVIDs live 30 s, until both gateways have rotated three
// times, and wants every request to succeed.
func TestRotationUnderLoad(t *testing.T) {
	t.Parallel()
	in := env.gateway(t, "gw-rot-in")
	out := env.gateway(t, "gw-rot-out")
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

	// For the record: how many client certificates of the outbound gateway
	// the inbound one saw (did the pair open connections with rotated SVIDs
	// or keep long-lived ones?), and how many requests it authorized on a
	// connection whose client certificate had expired by then.
	if recs, err := in.auditRecords(); err == nil {
		certs := map[string]bool{}
		n, expired := 0, 0
		for _, r := range recs {
			if r.Source.SPIFFEID != out.id.String() {
				continue
			}
			n++
			certs[r.Source.CertSerial] = true
			at, err1 := time.Parse(time.RFC3339Nano, r.Time)
			na, err2 := time.Parse(time.RFC3339Nano, r.Source.CertNotAfter)
			if err1 == nil && err2 == nil && at.After(na) {
				expired++
			}
		}
		t.Logf("%s presented %d distinct client certificates to %s; %d of %d requests were authorized after the presented certificate's NotAfter",
			out.name, len(certs), in.name, expired, n)
	}
}
