package ratelimit

import (
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		count   int
		period  time.Duration
		wantErr string
	}{
		{in: "50/s", count: 50, period: time.Second},
		{in: "50/sec", count: 50, period: time.Second},
		{in: "3000/m", count: 3000, period: time.Minute},
		{in: "3000/min", count: 3000, period: time.Minute},
		{in: "100/h", count: 100, period: time.Hour},
		{in: "100/hour", count: 100, period: time.Hour},
		{in: "100000/day", count: 100000, period: 24 * time.Hour},
		{in: "1/s", count: 1, period: time.Second},
		{in: "1000000/s", count: 1000000, period: time.Second},
		{in: "007/s", count: 7, period: time.Second},

		{in: "50 per s", wantErr: `ratelimit: rate "50 per s": expected N/s, N/m, N/h or N/day`},
		{in: "", wantErr: `ratelimit: rate "": expected N/s`},
		{in: "50", wantErr: `rate "50": expected N/s`},
		{in: "/s", wantErr: `rate "/s": expected N/s`},
		{in: "50/", wantErr: `rate "50/": expected N/s`},
		{in: "50/S", wantErr: `rate "50/S": expected N/s`},
		{in: "50/d", wantErr: `rate "50/d": expected N/s`},
		{in: "50/ms", wantErr: `rate "50/ms": expected N/s`},
		{in: "50/s/s", wantErr: `rate "50/s/s": expected N/s`},
		{in: " 50/s", wantErr: `rate " 50/s": expected N/s`},
		{in: "+50/s", wantErr: `rate "+50/s": expected N/s`},
		{in: "-50/s", wantErr: `rate "-50/s": expected N/s`},
		{in: "5.5/s", wantErr: `rate "5.5/s": expected N/s`},
		{in: "0/s", wantErr: `ratelimit: rate "0/s": count must be at least 1`},
		{in: "1000001/s", wantErr: `ratelimit: rate "1000001/s": faster than one event per microsecond`},
		{in: "99999999999999999999/day", wantErr: `ratelimit: rate "99999999999999999999/day": count is too large`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			count, period, err := ParseRate(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRate(%q) = %d, %v, %v; want error containing %q", tt.in, count, period, err, tt.wantErr)
				}
				return
			}
			if err != nil || count != tt.count || period != tt.period {
				t.Fatalf("ParseRate(%q) = %d, %v, %v; want %d, %v", tt.in, count, period, err, tt.count, tt.period)
			}
		})
	}
}

// FuzzParseRate checks that whatever ParseRate accepts is a valid limit and
// formats back to what it parsed.
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"50/s", "3000/min", "100/h", "100000/day", "0/s", "1/", "/", "9999999999999999999/s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		count, period, err := ParseRate(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "ratelimit: rate ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			return
		}
		l := Limit{Count: count, Period: period}
		if err := l.Validate(); err != nil {
			t.Fatalf("ParseRate(%q) accepted an invalid limit: %v", s, err)
		}
		c2, p2, err := ParseRate(strings.TrimSuffix(l.String(), " burst 1"))
		if err != nil || c2 != count || p2 != period {
			t.Fatalf("round trip of %q via %q: %d, %v, %v", s, l.String(), c2, p2, err)
		}
	})
}

func TestLimitValidate(t *testing.T) {
	tests := []struct {
		l       Limit
		wantErr string
	}{
		{l: Limit{Count: 50, Period: time.Second}},
		{l: Limit{Count: 50, Period: time.Second, Burst: 100}},
		{l: Limit{Count: 100000, Period: 24 * time.Hour, Burst: 100000}},
		{l: Limit{Count: 1, Period: 100 * 365 * 24 * time.Hour}},
		{l: Limit{Count: 0, Period: time.Second}, wantErr: "ratelimit: limit 0/s burst 1: count must be at least 1"},
		{l: Limit{Count: 1}, wantErr: "period must be positive"},
		{l: Limit{Count: 1, Period: -time.Second}, wantErr: "period must be positive"},
		{l: Limit{Count: 1, Period: 101 * 365 * 24 * time.Hour}, wantErr: "period must be at most 100 years"},
		{l: Limit{Count: 1, Period: time.Second, Burst: -1}, wantErr: "burst must not be negative"},
		{l: Limit{Count: 2, Period: time.Microsecond}, wantErr: "faster than one event per microsecond"},
		{l: Limit{Count: 1, Period: 24 * time.Hour, Burst: 40000}, wantErr: "burst × period/count must be at most 100 years"},
	}
	for _, tt := range tests {
		t.Run(tt.l.String(), func(t *testing.T) {
			err := tt.l.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLimitString(t *testing.T) {
	tests := []struct {
		l    Limit
		want string
	}{
		{Limit{Count: 50, Period: time.Second, Burst: 10}, "50/s burst 10"},
		{Limit{Count: 3000, Period: time.Minute}, "3000/m burst 1"},
		{Limit{Count: 100, Period: time.Hour, Burst: 5}, "100/h burst 5"},
		{Limit{Count: 100000, Period: 24 * time.Hour, Burst: 100000}, "100000/day burst 100000"},
		{Limit{Count: 10, Period: 500 * time.Millisecond}, "10/500ms burst 1"},
	}
	for _, tt := range tests {
		if got := tt.l.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.l, got, tt.want)
		}
	}
}

// TestIntervalRoundsUp checks that the emission interval is rounded up, so
// that no limit lets more than Count requests through per Period.
func TestIntervalRoundsUp(t *testing.T) {
	tests := []struct {
		l        Limit
		interval time.Duration
	}{
		{Limit{Count: 50, Period: time.Second}, 20 * time.Millisecond},
		{Limit{Count: 3, Period: time.Second}, 333334 * time.Microsecond},
		{Limit{Count: 7, Period: time.Minute}, 8571429 * time.Microsecond},
		{Limit{Count: 100000, Period: 24 * time.Hour}, 864 * time.Millisecond},
		{Limit{Count: 1000000, Period: time.Second}, time.Microsecond},
		{Limit{Count: 3, Period: 10*time.Microsecond + 1}, 4 * time.Microsecond},
	}
	for _, tt := range tests {
		interval, capacity, err := tt.l.gcra()
		if err != nil || time.Duration(interval) != tt.interval || capacity != interval {
			t.Errorf("%s: interval %v capacity %v err %v; want interval %v", tt.l, time.Duration(interval), time.Duration(capacity), err, tt.interval)
		}
		if time.Duration(interval)*time.Duration(tt.l.Count) < tt.l.Period {
			t.Errorf("%s: %d × %v is shorter than the period", tt.l, tt.l.Count, time.Duration(interval))
		}
	}
}
