package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// reloadProbe drives gw-reload's policy file and watches what the
// gateway makes of it, as test/allowed and test/stranger see it and as
// /v1/status reports it.
type reloadProbe struct {
	g                 *gateway
	url, policyPath   string
	allowed, stranger *http.Client
}

// behaves checks that test/allowed and test/stranger get the statuses given.
func (p *reloadProbe) behaves(wantAllowed, wantStranger int) error {
	for _, c := range []struct {
		name   string
		client *http.Client
		want   int
	}{{"test/allowed", p.allowed, wantAllowed}, {"test/stranger", p.stranger, wantStranger}} {
		r, err := do(c.client, http.MethodGet, p.url, nil)
		if err != nil {
			return p.g.diagnose(fmt.Errorf("%s: %v", c.name, err))
		}
		if r.code != c.want {
			return fmt.Errorf("%s: status %d, want %d", c.name, r.code, c.want)
		}
	}
	return nil
}

// reloadState is what /v1/status says of listener reload-in's policy.
type reloadState struct{ sha, result, time, err string }

func (p *reloadProbe) state() (reloadState, error) {
	st, err := p.g.status()
	if err != nil {
		return reloadState{}, err
	}
	for _, l := range st.Listeners {
		if l.Name != "reload-in" {
			continue
		}
		if l.Policy == nil {
			return reloadState{}, fmt.Errorf("/v1/status: listener reload-in has no policy")
		}
		rs := reloadState{sha: l.Policy.SHA256}
		if lr := l.Policy.LastReload; lr != nil {
			rs.result, rs.time, rs.err = lr.Result, lr.Time, lr.Error
		}
		return rs, nil
	}
	return reloadState{}, fmt.Errorf("/v1/status: no listener reload-in")
}

func (p *reloadProbe) inPlace(content string) error {
	return os.WriteFile(p.policyPath, []byte(content), 0o644)
}

func (p *reloadProbe) byRename(content string) error {
	tmp := filepath.Join(p.g.dir, ".policy.toml.tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p.policyPath)
}

// refused checks that a broken policy written after the reload at
// prevTime fails visibly and leaves the policy enforcing in force.
func (p *reloadProbe) refused(t testing.TB, step string, prevTime, enforcing string, wantAllowed, wantStranger int) {
	t.Helper()
	err := poll(5*time.Second, 50*time.Millisecond, func() error {
		rs, err := p.state()
		if err != nil {
			return err
		}
		if rs.result != "error" || rs.time == prevTime {
			return fmt.Errorf("last_reload result %q at %q", rs.result, rs.time)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: /v1/status does not report the failed reload within 5s: %v", step, err)
	}
	if err := p.behaves(wantAllowed, wantStranger); err != nil {
		t.Fatalf("%s: old policy no longer enforced: %v", step, err)
	}
	rs, _ := p.state()
	if rs.err == "" {
		t.Errorf("%s: last_reload has no error message", step)
	}
	if rs.sha != sha256Hex([]byte(enforcing)) {
		t.Errorf("%s: /v1/status sha256 %q, want the enforcing policy's %q", step, rs.sha, sha256Hex([]byte(enforcing)))
	}
}

// TestPolicyReload writes broken policies over the live one, in place and by
// atomic rename: the running policy keeps enforcing and /v1/status reports
// the failed reload. A good policy then takes effect within a second.
func TestPolicyReload(t *testing.T) {
	tp := env.topology(t, "reload")
	t.Parallel()
	g := tp.gateway(t, "gw-reload")
	p := &reloadProbe{g: g, url: "https://" + g.addr("reload-in") + "/echo/reload", policyPath: filepath.Join(g.dir, "policy.toml"),
		allowed: g.client(t, idAllowed, false), stranger: g.client(t, idStranger, false)}

	v1 := reloadPolicy("v1-allowed-only", "test/allowed")
	if err := p.behaves(200, 403); err != nil {
		t.Fatalf("initial policy: %v", err)
	}
	if rs, err := p.state(); err != nil || rs.sha != sha256Hex([]byte(v1)) {
		t.Errorf("initial /v1/status policy sha256 %q (%v), want %q", rs.sha, err, sha256Hex([]byte(v1)))
	}

	steps := []struct {
		name         string
		write        func(string) error
		content      string
		broken       bool
		wantAllowed  int
		wantStranger int
	}{
		{"broken in place (TOML syntax)", p.inPlace, "version = 1\n[[rule]\nid = \"x\"\n", true, 200, 403},
		{"good in place", p.inPlace, reloadPolicy("v2-both", "test/allowed", "test/stranger"), false, 200, 200},
		{"broken by rename (bad effect)", p.byRename, "version = 1\n\n[[rule]]\nid = \"x\"\neffect = \"permit\"\nmode = \"enforce\"\ncallers = [\"spiffe://example.org/test/allowed\"]\n", true, 200, 200},
		{"good by rename", p.byRename, reloadPolicy("v3-stranger-only", "test/stranger"), false, 403, 200},
		{"broken in place again (unknown key)", p.inPlace, reloadPolicy("v4", "test/allowed") + "colour = \"red\"\n", true, 403, 200},
	}
	enforcing := v1
	for _, s := range steps {
		prev, err := p.state()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.write(s.content); err != nil {
			t.Fatal(err)
		}
		written := time.Now()
		if s.broken {
			p.refused(t, s.name, prev.time, enforcing, s.wantAllowed, s.wantStranger)
			continue
		}
		err = poll(time.Second, 20*time.Millisecond, func() error { return p.behaves(s.wantAllowed, s.wantStranger) })
		if err != nil {
			t.Fatalf("%s: new policy not in effect within 1s of the write: %v", s.name, err)
		}
		t.Logf("%s: in effect after %v", s.name, time.Since(written).Round(time.Millisecond))
		enforcing = s.content
		if err := poll(2*time.Second, 50*time.Millisecond, func() error {
			rs, err := p.state()
			if err == nil && (rs.result != "ok" || rs.sha != sha256Hex([]byte(enforcing))) {
				err = fmt.Errorf("last_reload %q, sha256 %q, want ok and %q", rs.result, rs.sha, sha256Hex([]byte(enforcing)))
			}
			return err
		}); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
	}
}
