package telemetry

import (
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// descName reads the metric name out of a Desc, which has no accessor for it.
var descName = regexp.MustCompile(`^Desc\{fqName: "([^"]*)"`)

// populated returns fresh Metrics in which every vector has one child with
// placeholder label values, so that every metric appears in Gather even
// before it is used, and the names of the metrics each field of Metrics
// exports. It fails the test when a field is nil or not registered, or when
// something registered exports nothing after that (a vector registered but
// not held in a field of Metrics).
func populated(t *testing.T) (*Metrics, map[string]string) {
	t.Helper()
	m := NewMetrics("test", nil)
	registered := map[*prometheus.Desc]bool{}
	for _, d := range describe(m.Registry) {
		registered[d] = true
	}
	fields := map[string]string{} // metric name → field
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		f, fv := v.Type().Field(i), v.Field(i)
		if !f.IsExported() || f.Type == reflect.TypeFor[*prometheus.Registry]() {
			continue
		}
		c, ok := fv.Interface().(prometheus.Collector)
		if !ok {
			continue
		}
		if (fv.Kind() == reflect.Pointer || fv.Kind() == reflect.Interface) && fv.IsNil() {
			t.Errorf("Metrics.%s is nil after NewMetrics", f.Name)
			continue
		}
		for _, d := range describe(c) {
			name := nameOf(t, d)
			fields[name] = f.Name
			if !registered[d] {
				t.Errorf("Metrics.%s (%s) is not registered on Metrics.Registry", f.Name, name)
			}
		}
		if get := fv.MethodByName("GetMetricWithLabelValues"); get.IsValid() && !withPlaceholders(get) {
			t.Errorf("Metrics.%s: no number of label values gives it a child", f.Name)
		}
	}
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	gathered := map[string]bool{}
	for _, mf := range mfs {
		gathered[mf.GetName()] = true
	}
	for _, d := range describe(m.Registry) {
		if name := nameOf(t, d); !gathered[name] {
			t.Errorf("%s is registered but not gathered: hold it in a field of Metrics so that tests see it", name)
		}
	}
	return m, fields
}

// withPlaceholders calls a vector's GetMetricWithLabelValues with as many
// placeholder values as it has variable labels, found by trying.
func withPlaceholders(get reflect.Value) bool {
	for n := range 33 {
		values := make([]string, n)
		for i := range values {
			values[i] = "placeholder"
		}
		out := get.CallSlice([]reflect.Value{reflect.ValueOf(values)})
		if out[len(out)-1].IsNil() {
			return true
		}
	}
	return false
}

func describe(c prometheus.Collector) []*prometheus.Desc {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	var ds []*prometheus.Desc
	for d := range ch {
		ds = append(ds, d)
	}
	return ds
}

func nameOf(t *testing.T, d *prometheus.Desc) string {
	t.Helper()
	m := descName.FindStringSubmatch(d.String())
	if m == nil {
		t.Fatalf("cannot read the metric name in %s", d)
	}
	return m[1]
}

// TestMetricsLint runs promlint over every metric the registry exports,
// vectors included before they have children, and checks that every metric
// held in Metrics has the svidgate_ prefix.
func TestMetricsLint(t *testing.T) {
	m, fields := populated(t)
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		if !strings.HasPrefix(name, namespace+"_") {
			t.Errorf("Metrics.%s exports %s, without the %s_ prefix", fields[name], name, namespace)
		}
	}
}

func TestCodeClass(t *testing.T) {
	for code, want := range map[int]string{101: "1xx", 200: "2xx", 302: "3xx", 403: "4xx", 429: "4xx", 502: "5xx"} {
		if got := CodeClass(code); got != want {
			t.Errorf("CodeClass(%d) = %s, want %s", code, got, want)
		}
	}
}
