package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPolicyReload writes broken policies over the live one, in place and by
// atomic rename: the running policy keeps enforcing and /v1/status reports
// the failed reload. A good policy then takes effect within a second.
func TestPolicyReload(t *testing.T) {
	t.Parallel()
	g := env.gateway(t, "gw-reload")
	url := "https://" + g.addr("reload-in") + "/echo/reload"
	allowed := httpsClient(clientTLS(t, idAllowed, g.id), false, true)
	stranger := httpsClient(clientTLS(t, idStranger, g.id), false, true)
	policyPath := filepath.Join(g.dir, "policy.toml")

	behaves := func(wantAllowed, wantStranger int) error {
		for _, c := range []struct {
			name   string
			client *http.Client
			want   int
		}{{"test/allowed", allowed, wantAllowed}, {"test/stranger", stranger, wantStranger}} {
			r, err := do(c.client, http.MethodGet, url, nil)
			if err != nil {
				return g.diagnose(fmt.Errorf("%s: %v", c.name, err))
			}
			if r.code != c.want {
				return fmt.Errorf("%s: status %d, want %d", c.name, r.code, c.want)
			}
		}
		return nil
	}
	policyStatus := func() (sha, result, reloadTime, reloadErr string, err error) {
		st, err := g.status()
		if err != nil {
			return "", "", "", "", err
		}
		for _, l := range st.Listeners {
			if l.Name != "reload-in" {
				continue
			}
			if l.Policy == nil {
				return "", "", "", "", fmt.Errorf("/v1/status: listener reload-in has no policy")
			}
			if lr := l.Policy.LastReload; lr != nil {
				return l.Policy.SHA256, lr.Result, lr.Time, lr.Error, nil
			}
			return l.Policy.SHA256, "", "", "", nil
		}
		return "", "", "", "", fmt.Errorf("/v1/status: no listener reload-in")
	}
	inPlace := func(content string) error { return os.WriteFile(policyPath, []byte(content), 0o644) }
	byRename := func(content string) error {
		tmp := filepath.Join(g.dir, ".policy.toml.tmp")
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			return err
		}
		return os.Rename(tmp, policyPath)
	}

	v1 := reloadPolicy("v1-allowed-only", "test/allowed")
	if err := behaves(200, 403); err != nil {
		t.Fatalf("initial policy: %v", err)
	}
	if sha, _, _, _, err := policyStatus(); err != nil || sha != sha256Hex([]byte(v1)) {
		t.Errorf("initial /v1/status policy sha256 %q (%v), want %q", sha, err, sha256Hex([]byte(v1)))
	}

	steps := []struct {
		name         string
		write        func(string) error
		content      string
		broken       bool
		wantAllowed  int
		wantStranger int
	}{
		{"broken in place (TOML syntax)", inPlace, "version = 1\n[[rule]\nid = \"x\"\n", true, 200, 403},
		{"good in place", inPlace, reloadPolicy("v2-both", "test/allowed", "test/stranger"), false, 200, 200},
		{"broken by rename (bad effect)", byRename, "version = 1\n\n[[rule]]\nid = \"x\"\neffect = \"permit\"\nmode = \"enforce\"\ncallers = [\"spiffe://example.org/test/allowed\"]\n", true, 200, 200},
		{"good by rename", byRename, reloadPolicy("v3-stranger-only", "test/stranger"), false, 403, 200},
		{"broken in place again (unknown key)", inPlace, reloadPolicy("v4", "test/allowed") + "colour = \"red\"\n", true, 403, 200},
	}
	enforcing := v1
	for _, s := range steps {
		_, _, prevTime, _, err := policyStatus()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.write(s.content); err != nil {
			t.Fatal(err)
		}
		written := time.Now()
		if s.broken {
			// The reload must fail visibly...
			err := poll(5*time.Second, 50*time.Millisecond, func() error {
				_, result, rt, _, err := policyStatus()
				if err != nil {
					return err
				}
				if result != "error" || rt == prevTime {
					return fmt.Errorf("last_reload result %q at %q", result, rt)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("%s: /v1/status does not report the failed reload within 5s: %v", s.name, err)
			}
			// ...and leave the running policy in force.
			if err := behaves(s.wantAllowed, s.wantStranger); err != nil {
				t.Fatalf("%s: old policy no longer enforced: %v", s.name, err)
			}
			sha, _, _, msg, _ := policyStatus()
			if msg == "" {
				t.Errorf("%s: last_reload has no error message", s.name)
			}
			if sha != sha256Hex([]byte(enforcing)) {
				t.Errorf("%s: /v1/status sha256 %q, want the enforcing policy's %q", s.name, sha, sha256Hex([]byte(enforcing)))
			}
			continue
		}
		err = poll(time.Second, 20*time.Millisecond, func() error { return behaves(s.wantAllowed, s.wantStranger) })
		if err != nil {
			t.Fatalf("%s: new policy not in effect within 1s of the write: %v", s.name, err)
		}
		t.Logf("%s: in effect after %v", s.name, time.Since(written).Round(time.Millisecond))
		enforcing = s.content
		if err := poll(2*time.Second, 50*time.Millisecond, func() error {
			sha, result, _, _, err := policyStatus()
			if err == nil && (result != "ok" || sha != sha256Hex([]byte(enforcing))) {
				err = fmt.Errorf("last_reload %q, sha256 %q, want ok and %q", result, sha, sha256Hex([]byte(enforcing)))
			}
			return err
		}); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
	}
}
