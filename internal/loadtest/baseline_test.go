package loadtest_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/loadtest"
)

func TestParseMaxRegression(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    []loadtest.Limit
		wantErr string
	}{
		{"p95=10%,error-rate=0.5pp,rps=-20%", []loadtest.Limit{
			{Metric: "p95", Max: 10, Unit: "%"}, {Metric: "error-rate", Max: 0.5, Unit: "pp"}, {Metric: "rps", Max: -20, Unit: "%"},
		}, ""},
		{" p50 = 5% , p90=0%, p99=12.5%,avg=1e1%,max=100%,checks=1pp,error-rate=50%, ", []loadtest.Limit{
			{Metric: "p50", Max: 5, Unit: "%"}, {Metric: "p90", Max: 0, Unit: "%"}, {Metric: "p99", Max: 12.5, Unit: "%"},
			{Metric: "avg", Max: 10, Unit: "%"}, {Metric: "max", Max: 100, Unit: "%"}, {Metric: "checks", Max: 1, Unit: "pp"},
			{Metric: "error-rate", Max: 50, Unit: "%"},
		}, ""},
		{"", nil, ""},
		{"p95", nil, `max regression "p95": no =`},
		{"p96=10%", nil, `max regression "p96=10%": unknown metric "p96"`},
		{"latency=10%", nil, "metrics: p50, p90, p95, p99, avg, max, error-rate, rps, checks"},
		{"p95=10", nil, `"10" has no unit`},
		{"p95=10ms", nil, `"10ms" has no unit`},
		{"p95=ten%", nil, `"ten%" is not a number`},
		{"p95=Inf%", nil, "is not a number"},
		{"p95=5pp", nil, "pp (percentage points) applies to error-rate and checks only; use % for p95, like p95=10%"},
		{"rps=1pp", nil, "pp (percentage points) applies to error-rate and checks only"},
		{"rps=20%", nil, "rps regresses when it drops; give the allowed drop as a negative change, like rps=-20%"},
		{"p95=-10%", nil, "p95 regresses when it rises; give the allowed rise as a positive change, like p95=10%"},
		{"error-rate=-1pp", nil, "like error-rate=1pp"},
		{"p95=10%,p95=20%", nil, `max regression "p95=20%": p95 has a limit already`},
	}
	for _, tt := range tests {
		got, err := loadtest.ParseMaxRegression(tt.in)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ParseMaxRegression(%q): %v", tt.in, err)
		case tt.wantErr == "" && !reflect.DeepEqual(got, tt.want):
			t.Errorf("ParseMaxRegression(%q) = %+v; want %+v", tt.in, got, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n")):
			t.Errorf("ParseMaxRegression(%q) error = %v; want one line containing %q", tt.in, err, tt.wantErr)
		}
	}
	if l := (loadtest.Limit{Metric: "rps", Max: -20, Unit: "%"}); l.String() != "rps=-20%" {
		t.Errorf("Limit.String() = %q; want rps=-20%%", l.String())
	}
}

// run builds a summary with the given latency, error rate, request rate
// and failed checks.
func run(p50, p95, maxMs, errorRate, rps float64, checkPasses, checkFails int64) *loadtest.Summary {
	return &loadtest.Summary{
		SchemaVersion: loadtest.SchemaVersion,
		Metrics: map[string]*loadtest.MetricStats{
			"http_req_duration": {Type: loadtest.TypeTrend, Count: 1000, Min: 1, Max: maxMs, Mean: (p50 + p95) / 2, P50: p50, P90: p95 * 0.9, P95: p95, P99: p95 * 1.2},
			"http_req_failed":   {Type: loadtest.TypeRate, Count: 1000, Rate: errorRate},
			"http_reqs":         {Type: loadtest.TypeCounter, Count: 1000, Sum: 1000, Rate: rps},
		},
		Checks: []loadtest.CheckStats{{Name: "a", Passes: checkPasses, Fails: checkFails / 2}, {Name: "b", Passes: checkPasses, Fails: checkFails - checkFails/2}},
	}
}

func TestCompare(t *testing.T) {
	t.Parallel()
	base := run(10, 100, 300, 0.01, 50, 500, 0)
	empty := &loadtest.Summary{SchemaVersion: 1, Metrics: map[string]*loadtest.MetricStats{}}
	tests := []struct {
		name      string
		current   *loadtest.Summary
		baseline  *loadtest.Summary
		limit     string
		cur, rel  float64
		regressed bool
		missing   string
	}{
		{"p95 within", run(10, 109, 300, 0.01, 50, 500, 0), base, "p95=10%", 109, 0.09, false, ""},
		{"p95 at the limit", run(10, 110, 300, 0.01, 50, 500, 0), base, "p95=10%", 110, 0.1, false, ""},
		{"p95 beyond", run(10, 111, 300, 0.01, 50, 500, 0), base, "p95=10%", 111, 0.11, true, ""},
		{"p95 faster", run(10, 50, 300, 0.01, 50, 500, 0), base, "p95=0%", 50, -0.5, false, ""},
		{"p50", run(12, 100, 300, 0.01, 50, 500, 0), base, "p50=10%", 12, 0.2, true, ""},
		{"p90", run(10, 100, 300, 0.01, 50, 500, 0), base, "p90=1%", 90, 0, false, ""},
		{"p99", run(10, 120, 300, 0.01, 50, 500, 0), base, "p99=10%", 144, 0.2, true, ""},
		{"avg", run(20, 100, 300, 0.01, 50, 500, 0), base, "avg=10%", 60, 60.0/55 - 1, false, ""},
		{"max", run(10, 100, 600, 0.01, 50, 500, 0), base, "max=50%", 600, 1, true, ""},
		{"error rate within pp", run(10, 100, 300, 0.015, 50, 500, 0), base, "error-rate=0.5pp", 0.015, 0.5, false, ""},
		{"error rate beyond pp", run(10, 100, 300, 0.0151, 50, 500, 0), base, "error-rate=0.5pp", 0.0151, 0.51, true, ""},
		{"error rate in %", run(10, 100, 300, 0.02, 50, 500, 0), base, "error-rate=50%", 0.02, 1, true, ""},
		{"error rate from 0 in %", run(10, 100, 300, 0.001, 50, 500, 0), run(10, 100, 300, 0, 50, 500, 0), "error-rate=50%", 0.001, 0, true, ""},
		{"error rate 0 to 0", run(10, 100, 300, 0, 50, 500, 0), run(10, 100, 300, 0, 50, 500, 0), "error-rate=0%", 0, 0, false, ""},
		{"rps drop within", run(10, 100, 300, 0.01, 41, 500, 0), base, "rps=-20%", 41, -0.18, false, ""},
		{"rps drop at the limit", run(10, 100, 300, 0.01, 40, 500, 0), base, "rps=-20%", 40, -0.2, false, ""},
		{"rps drop beyond", run(10, 100, 300, 0.01, 39, 500, 0), base, "rps=-20%", 39, -0.22, true, ""},
		{"rps rise", run(10, 100, 300, 0.01, 100, 500, 0), base, "rps=0%", 100, 1, false, ""},
		{"checks within", run(10, 100, 300, 0.01, 50, 495, 10), base, "checks=1pp", 0.01, 0, false, ""},
		{"checks beyond", run(10, 100, 300, 0.01, 50, 490, 20), base, "checks=1pp", 0.02, 0, true, ""},
		{"no latency in the baseline", run(10, 100, 300, 0.01, 50, 500, 0), empty, "p95=10%", 0, 0, false, "no http_req_duration in the baseline"},
		{"no requests in this run", empty, base, "rps=-20%", 0, 0, false, "no http_reqs in this run"},
		{"no checks in either", empty, &loadtest.Summary{}, "checks=1pp", 0, 0, false, "no checks in either run"},
		{"nil baseline", base, nil, "error-rate=1pp", 0, 0, false, "no http_req_failed in the baseline"},
	}
	for _, tt := range tests {
		limits, err := loadtest.ParseMaxRegression(tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		got := loadtest.Compare(tt.current, tt.baseline, limits)
		if len(got) != 1 {
			t.Fatalf("%s: %d comparisons; want 1", tt.name, len(got))
		}
		c := got[0]
		if c.Limit != limits[0] || c.Regressed != tt.regressed || c.Missing != tt.missing || !near(c.Current, tt.cur) || !near(c.Relative, tt.rel) ||
			(tt.missing == "" && !near(c.Delta, c.Current-c.Baseline)) {
			t.Errorf("%s: %+v; want current %v, relative %v, regressed %v, missing %q", tt.name, c, tt.cur, tt.rel, tt.regressed, tt.missing)
		}
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestLoadSummary(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := loadtest.Summarize(strings.NewReader(mixedRun))
	if err != nil {
		t.Fatal(err)
	}
	good, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, content, wantErr string
	}{
		{"this version", string(good), ""},
		{"a newer version", `{"schema_version": 2, "metrics": {}}`, "has schema_version 2, but this gantry reads version 1; make a new baseline"},
		{"version 0", `{"schema_version": 0}`, "has schema_version 0"},
		{"no version", `{"metrics": {}}`, "has no schema_version, so it is not a gantry summary.json"},
		{"k6's summary export", `{"root_group": {}, "metrics": {"http_reqs": {"count": 5}}}`, "has no schema_version"},
		{"not JSON", "p95: 10ms", "is not a summary.json"},
		{"a wrong field type", `{"schema_version": 1, "metrics": []}`, "is not a summary.json"},
	}
	for _, tt := range tests {
		path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".json")
		if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := loadtest.LoadSummary(path)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantErr == "" && !reflect.DeepEqual(jsonRoundTrip(t, got), jsonRoundTrip(t, s)):
			t.Errorf("%s: LoadSummary = %+v; want %+v", tt.name, got, s)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path)):
			t.Errorf("%s: error = %v; want one naming the file and containing %q", tt.name, err, tt.wantErr)
		}
	}
	if _, err := loadtest.LoadSummary(filepath.Join(dir, "absent.json")); err == nil || !strings.Contains(err.Error(), "absent.json") {
		t.Errorf("LoadSummary of a missing file: error = %v; want one naming it", err)
	}
}

func jsonRoundTrip(t *testing.T, s *loadtest.Summary) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
