package policy

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/svidgate/svidgate/internal/ratelimit"
	"github.com/svidgate/svidgate/internal/tomlpos"
)

// Rate is Count requests per Period.
type Rate struct {
	Count  int
	Period time.Duration
}

// IsZero reports whether no rate is set.
func (r Rate) IsZero() bool { return r.Count == 0 }

// String renders the rate as written in a policy, e.g. "50/s".
func (r Rate) String() string {
	for _, u := range rateUnits {
		if r.Period == u.d {
			return strconv.Itoa(r.Count) + "/" + u.name
		}
	}
	return strconv.Itoa(r.Count) + "/" + r.Period.String()
}

var rateUnits = []struct {
	name string
	d    time.Duration
}{{"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"day", 24 * time.Hour}}

// ParseRate reads "N/s", "N/m", "N/h" or "N/day" (also "sec", "min",
// "hour"), and rejects rates the limiter cannot apply (more than one
// request per microsecond).
func ParseRate(s string) (Rate, error) {
	count, period, err := ratelimit.ParseRate(s)
	if err == nil {
		err = ratelimit.Limit{Count: count, Period: period}.Validate()
	}
	if err != nil {
		return Rate{}, errors.New(strings.TrimPrefix(err.Error(), "ratelimit: "))
	}
	return Rate{Count: count, Period: period}, nil
}

// RateKey says whose requests share one bucket.
type RateKey uint8

// Bucket keys.
const (
	KeyCaller      RateKey = iota // one bucket per caller SPIFFE ID (default)
	KeyTrustDomain                // one bucket per caller trust domain
	KeyRule                       // one bucket for the whole rule
)

var rateKeys = []string{"caller", "trust_domain", "rule"}

func (k RateKey) String() string { return rateKeys[k] }

// RateSpec is a rule's [rule.rate] table. It is immutable.
type RateSpec struct {
	// Limit is the sustained rate with Burst; zero when only a quota or
	// an in-flight cap is set.
	Limit Rate
	Burst int
	// Quota is a budget over a long window, enforced separately.
	Quota Rate
	// MaxInFlight caps concurrent requests per key; 0 is no cap.
	MaxInFlight int
	Key         RateKey
	// DryRun counts and audits what would be limited without refusing.
	DryRun    bool
	Overrides []RateOverride
}

// RateOverride gives callers matching its patterns their own limits.
type RateOverride struct {
	callers     []glob
	Limit       Rate
	Burst       int
	Quota       Rate
	MaxInFlight int
}

// Effective is the limits that apply to one caller.
type Effective struct {
	Limit       Rate
	Burst       int
	Quota       Rate
	MaxInFlight int
	// Override is the index of the override that applied, or -1.
	Override int
}

// For returns the limits for caller: those of the first override whose
// callers match, else the rule's. Zero fields of an override inherit the
// rule's.
func (s *RateSpec) For(caller string) Effective {
	e := Effective{Limit: s.Limit, Burst: s.Burst, Quota: s.Quota, MaxInFlight: s.MaxInFlight, Override: -1}
	for i := range s.Overrides {
		o := &s.Overrides[i]
		for k := range o.callers {
			if o.callers[k].match(caller) {
				if !o.Limit.IsZero() {
					e.Limit, e.Burst = o.Limit, o.Burst
				}
				if !o.Quota.IsZero() {
					e.Quota = o.Quota
				}
				if o.MaxInFlight > 0 {
					e.MaxInFlight = o.MaxInFlight
				}
				e.Override = i
				return e
			}
		}
	}
	return e
}

var rateTableKeys = []string{"limit", "burst", "quota", "max_in_flight", "key", "mode", "override"}
var overrideKeys = []string{"callers", "limit", "burst", "quota", "max_in_flight"}

func checkRate(c *checker, r *ruleCtx, path string, v any) {
	t, ok := v.(map[string]any)
	if !ok {
		c.valErr(path, "%s: rate must be a table ([rule.rate]), got %s", r.name, describe(v))
		return
	}
	s := &RateSpec{}
	c.unknown(r, path, t, rateTableKeys, "[rule.rate]")
	s.Limit, s.Burst, s.Quota, s.MaxInFlight = c.limits(r, path, t)
	if k, ok := t["key"]; ok {
		kv, _ := c.enum(r, tomlpos.Join(path, "key"), k, rateKeys...)
		if i := slices.Index(rateKeys, kv); i >= 0 {
			s.Key = RateKey(i)
		}
	}
	if m, ok := t["mode"]; ok {
		mv, _ := c.enum(r, tomlpos.Join(path, "mode"), m, "enforce", "dry-run")
		s.DryRun = mv == "dry-run"
	}
	if !hasAny(t, "limit", "quota", "max_in_flight") {
		c.keyErr(path, "%s: [rule.rate] sets nothing: give a limit (\"50/s\"), a quota (\"100000/day\") or max_in_flight", r.name)
	}
	if o, ok := t["override"]; ok {
		op := tomlpos.Join(path, "override")
		list, isList := o.([]map[string]any)
		if !isList {
			c.valErr(op, "%s: override must be an array of tables ([[rule.rate.override]]), got %s", r.name, describe(o))
		}
		for i, ot := range list {
			ip := tomlpos.Index(op, i)
			c.unknown(r, ip, ot, overrideKeys, "[[rule.rate.override]]")
			var ov RateOverride
			if cl, ok := ot["callers"]; ok {
				for _, it := range c.list(r, tomlpos.Join(ip, "callers"), cl, "callers = [] would match no caller") {
					g, err := compileCaller(it.s)
					if err != nil {
						c.valErr(tomlpos.Index(tomlpos.Join(ip, "callers"), it.i), "%s: override callers[%d] %q: %v", r.name, it.i, it.s, err)
						continue
					}
					ov.callers = append(ov.callers, g)
				}
			} else {
				c.keyErr(ip, "%s: an override needs callers: the SPIFFE ID patterns it applies to", r.name)
			}
			ov.Limit, ov.Burst, ov.Quota, ov.MaxInFlight = c.limits(r, ip, ot)
			s.Overrides = append(s.Overrides, ov)
		}
	}
	r.rate = s
}

// limits reads limit, burst, quota and max_in_flight from a table.
func (c *checker) limits(r *ruleCtx, path string, t map[string]any) (limit Rate, burst int, quota Rate, inFlight int) {
	rate := func(key string) Rate {
		v, ok := t[key]
		if !ok {
			return Rate{}
		}
		s, ok := c.str(r, tomlpos.Join(path, key), v)
		if !ok {
			return Rate{}
		}
		rt, err := ParseRate(s)
		if err != nil {
			c.valErr(tomlpos.Join(path, key), "%s: %s %v", r.name, key, err)
		}
		return rt
	}
	positive := func(key string) int {
		v, ok := t[key]
		if !ok {
			return 0
		}
		n, isInt := v.(int64)
		if !isInt || n <= 0 || n > 1<<31 {
			c.valErr(tomlpos.Join(path, key), "%s: %s must be a positive integer, got %s", r.name, key, describe(v))
			return 0
		}
		return int(n)
	}
	limit, quota = rate("limit"), rate("quota")
	burst, inFlight = positive("burst"), positive("max_in_flight")
	if burst > 0 && !hasAny(t, "limit") {
		c.keyErr(tomlpos.Join(path, "burst"), "%s: burst without a limit: burst is the bucket size of limit", r.name)
	}
	if burst == 0 && !limit.IsZero() {
		burst = limit.Count // a bucket of one period's worth
	}
	return limit, burst, quota, inFlight
}

// unknown reports keys of t not in allowed.
func (c *checker) unknown(r *ruleCtx, path string, t map[string]any, allowed []string, table string) {
	for _, k := range sortedKeys(t) {
		if !slices.Contains(allowed, k) {
			c.keyErr(tomlpos.Join(path, k), "%s: unknown key %q in %s%s; allowed keys: %s", r.name, k, table, suggest(k, allowed), strings.Join(allowed, ", "))
		}
	}
}

func hasAny(t map[string]any, keys ...string) bool {
	for _, k := range keys {
		if _, ok := t[k]; ok {
			return true
		}
	}
	return false
}
