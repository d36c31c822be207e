package telemetry

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// metricsDoc is docs/METRICS.md, as errors name it; metricsDocPath is where
// the test reads it.
const (
	metricsDoc     = "docs/METRICS.md"
	metricsDocPath = "../../" + metricsDoc
)

// A docMetric is one row of the table in docs/METRICS.md.
type docMetric struct {
	line   int
	typ    string
	labels []string
}

var (
	// A table row: | `name` | type | labels | meaning |
	docRow = regexp.MustCompile("^\\|\\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`\\s*\\|([^|]*)\\|([^|]*)\\|")
	// A label's example values, in parentheses after it.
	docLabelValues = regexp.MustCompile(`\([^)]*\)`)
	docLabel       = regexp.MustCompile("`([a-zA-Z_][a-zA-Z0-9_]*)`")
	// A family documented as a whole: `go_*`.
	docWildcard = regexp.MustCompile("`([a-zA-Z_:][a-zA-Z0-9_:]*)\\*`")
)

// readMetricsDoc returns the metrics in the table of docs/METRICS.md and the
// name prefixes documented as a whole (`go_*`).
func readMetricsDoc(t *testing.T) (map[string]docMetric, []string) {
	t.Helper()
	f, err := os.Open(metricsDocPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	metrics := map[string]docMetric{}
	var prefixes []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := docRow.FindStringSubmatch(line); m != nil {
			if prev, ok := metrics[m[1]]; ok {
				t.Errorf("%s:%d documents %s again (first at line %d)", metricsDoc, n, m[1], prev.line)
			}
			var labels []string
			for _, l := range docLabel.FindAllStringSubmatch(docLabelValues.ReplaceAllString(m[3], ""), -1) {
				labels = append(labels, l[1])
			}
			slices.Sort(labels)
			metrics[m[1]] = docMetric{line: n, typ: strings.TrimSpace(m[2]), labels: labels}
			continue
		}
		for _, w := range docWildcard.FindAllStringSubmatch(line, -1) {
			prefixes = append(prefixes, w[1])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(metrics) == 0 {
		t.Fatalf("%s: no table rows found", metricsDoc)
	}
	return metrics, prefixes
}

// TestMetricsDoc checks docs/METRICS.md against the registry: every metric
// exported is documented (a row of the table, or a documented prefix such as
// `go_*`), and every row names an exported metric with its type and labels.
func TestMetricsDoc(t *testing.T) {
	m, _ := populated(t)
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	documented, prefixes := readMetricsDoc(t)
	exported := map[string]bool{}
	for _, mf := range mfs {
		name := mf.GetName()
		exported[name] = true
		typ := strings.ToLower(mf.GetType().String())
		var labels []string
		for _, metric := range mf.GetMetric() {
			for _, lp := range metric.GetLabel() {
				if !slices.Contains(labels, lp.GetName()) {
					labels = append(labels, lp.GetName())
				}
			}
		}
		slices.Sort(labels)
		d, ok := documented[name]
		if !ok {
			if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
				t.Errorf("the registry exports %s (%s, labels %s), but %s does not document it", name, typ, list(labels), metricsDoc)
			}
			continue
		}
		if d.typ != typ {
			t.Errorf("%s:%d: %s is documented as a %s, but the registry exports a %s", metricsDoc, d.line, name, d.typ, typ)
		}
		if !slices.Equal(d.labels, labels) {
			t.Errorf("%s:%d: %s is documented with labels %s, but the registry exports labels %s", metricsDoc, d.line, name, list(d.labels), list(labels))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(documented)) {
		if d := documented[name]; !exported[name] {
			t.Errorf("%s:%d documents %s, but the registry exports no metric of that name", metricsDoc, d.line, name)
		}
	}
}

func list(labels []string) string {
	if len(labels) == 0 {
		return "(none)"
	}
	return fmt.Sprintf("%q", labels)
}
