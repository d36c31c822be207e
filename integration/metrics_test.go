package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// samples is one scrape of a gateway's /metrics: series → value. A series
// is written as in a query, `name` or `name{label="value",…}`; labels are
// kept sorted by name, so that a test may write them in any order.
type samples map[string]float64

// scrape reads g's /metrics in the Prometheus text format.
func (g *gateway) scrape() (samples, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.adminURL("/metrics"), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, g.diagnose(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s /metrics: %d: %.200q", g.name, resp.StatusCode, b)
	}
	s := samples{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ') // "series value"; svidgate writes no timestamps
		if i < 0 {
			return nil, fmt.Errorf("%s /metrics: line %q has no value", g.name, line)
		}
		series, err := canonicalSeries(line[:i])
		if err != nil {
			return nil, fmt.Errorf("%s /metrics: %w", g.name, err)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("%s /metrics: %q: %v", g.name, line, err)
		}
		s[series] = v
	}
	return s, nil
}

// get returns the value of series, or an error naming the series the
// scrape has of the same metric: an absent series is a failure, never 0.
func (s samples) get(series string) (float64, error) {
	key, err := canonicalSeries(series)
	if err != nil {
		return 0, err
	}
	if v, ok := s[key]; ok {
		return v, nil
	}
	name, _, _ := strings.Cut(key, "{")
	var same []string
	for k := range s {
		if k == name || strings.HasPrefix(k, name+"{") {
			same = append(same, k)
		}
	}
	slices.Sort(same)
	return 0, fmt.Errorf("no series %s in /metrics (of %s: %q)", series, name, same)
}

// metric returns the value of series in g's /metrics and fails the test
// when the gateway does not export it. There is no "or zero" variant on
// purpose: plain counters are exported from the start, and a labelled
// series is read only after the event that creates it, so an absent
// series means the gateway did not count what the test made it do.
func metric(t testing.TB, g *gateway, series string) float64 {
	t.Helper()
	s, err := g.scrape()
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.get(series)
	if err != nil {
		t.Fatalf("%s: %v", g.name, err)
	}
	return v
}

// canonicalSeries returns series with its labels sorted by name, so that
// `a{y="1",x="2"}` and `a{x="2",y="1"}` are one key. Label values may hold
// escaped quotes and commas.
func canonicalSeries(series string) (string, error) {
	name, rest, ok := strings.Cut(strings.TrimSpace(series), "{")
	if !ok || rest == "}" {
		return name, nil
	}
	body, ok := strings.CutSuffix(rest, "}")
	if !ok {
		return "", fmt.Errorf("series %q: no closing brace", series)
	}
	var labels []string
	for body != "" {
		eq := strings.Index(body, `="`)
		if eq < 0 {
			return "", fmt.Errorf("series %q: label without a quoted value", series)
		}
		end := eq + 2
		for end < len(body) && body[end] != '"' {
			if body[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(body) {
			return "", fmt.Errorf("series %q: unterminated label value", series)
		}
		labels = append(labels, strings.TrimSpace(body[:end+1]))
		body = strings.TrimPrefix(strings.TrimSpace(body[end+1:]), ",")
	}
	slices.Sort(labels)
	return name + "{" + strings.Join(labels, ",") + "}", nil
}
