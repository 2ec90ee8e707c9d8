package loadtest_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/loadtest"
)

func TestParseFailOn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    loadtest.FailOn
		wantErr string
	}{
		{"thresholds,checks,regression", loadtest.FailOn{Thresholds: true, Checks: true, Regression: true}, ""},
		{" thresholds , regression ", loadtest.FailOn{Thresholds: true, Regression: true}, ""},
		{"checks", loadtest.FailOn{Checks: true}, ""},
		{"", loadtest.FailOn{}, ""},
		{"none", loadtest.FailOn{}, ""},
		{"thresholds,errors", loadtest.FailOn{}, `fail-on "thresholds,errors": unknown "errors"; want a comma-separated list of thresholds, checks and regression, or none`},
		{"threshold", loadtest.FailOn{}, `unknown "threshold"`},
	}
	for _, tt := range tests {
		got, err := loadtest.ParseFailOn(tt.in)
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("ParseFailOn(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParseFailOn(%q) error = %v; want one containing %q", tt.in, err, tt.wantErr)
		}
	}
}

// verdictRun has one of three thresholds failed and one of two checks
// failed 3 times in 100.
var verdictRun = &loadtest.Summary{
	Thresholds: []loadtest.ThresholdResult{
		{Metric: "http_req_duration", Expression: "p(95)<300", Value: 412, OK: false},
		{Metric: "http_req_failed", Expression: "rate<0.01", Value: 0.001, OK: true},
		{Metric: "http_reqs", Expression: "count>10", Value: 100, OK: true},
	},
	Checks: []loadtest.CheckStats{{Name: "status is 200", Passes: 47, Fails: 3}, {Name: "has body", Passes: 50}},
}

func TestJudge(t *testing.T) {
	t.Parallel()
	regressed := []loadtest.Comparison{
		{Limit: loadtest.Limit{Metric: "p95", Max: 10, Unit: "%"}, Current: 125, Baseline: 100, Delta: 25, Relative: 0.25, Regressed: true},
		{Limit: loadtest.Limit{Metric: "error-rate", Max: 0.5, Unit: "pp"}, Current: 0.02, Baseline: 0.008, Delta: 0.012, Relative: 1.5, Regressed: true},
		{Limit: loadtest.Limit{Metric: "rps", Max: -20, Unit: "%"}, Current: 45, Baseline: 50, Delta: -5, Relative: -0.1},
	}
	const (
		thresholds = "1 of 3 thresholds failed"
		checks     = "1 of 2 checks failed (3 of 100 runs)"
		regression = "regression vs baseline: p95 +25.0% (limit 10%), error-rate +1.20pp (limit 0.5pp)"
	)
	clean := &loadtest.Summary{Thresholds: verdictRun.Thresholds[1:], Checks: verdictRun.Checks[1:]}
	tests := []struct {
		name     string
		s        *loadtest.Summary
		cmp      []loadtest.Comparison
		failOn   string
		passed   bool
		reasons  []string
		notes    []string
		headline string
	}{
		{"everything fails the run", verdictRun, regressed, "thresholds,checks,regression", false, []string{thresholds, checks, regression}, nil,
			"failed: " + thresholds + "; " + checks + "; " + regression},
		{"thresholds only", verdictRun, regressed, "thresholds", false, []string{thresholds}, []string{checks, regression},
			"failed: " + thresholds + " (not failing the run: " + checks + "; " + regression + ")"},
		{"checks without a checks threshold", verdictRun, nil, "checks", false, []string{checks}, []string{thresholds}, "failed: " + checks + " (not failing the run: " + thresholds + ")"},
		{"regression only", verdictRun, regressed, "regression", false, []string{regression}, []string{thresholds, checks}, ""},
		{"nothing selected", verdictRun, regressed, "none", true, nil, []string{thresholds, checks, regression}, ""},
		{"no regression beyond a limit", clean, regressed[2:], "thresholds,checks,regression", true, nil, nil, "passed: all 2 thresholds passed; all 1 check passed"},
		{"empty run", &loadtest.Summary{}, nil, "thresholds,checks,regression", true, nil, nil, "passed"},
	}
	for _, tt := range tests {
		failOn, err := loadtest.ParseFailOn(tt.failOn)
		if err != nil {
			t.Fatal(err)
		}
		v := loadtest.Judge(tt.s, tt.cmp, failOn)
		if v.Passed != tt.passed || !reflect.DeepEqual(v.Reasons, tt.reasons) || !reflect.DeepEqual(v.Notes, tt.notes) {
			t.Errorf("%s: passed %v, reasons %q, notes %q; want %v, %q, %q", tt.name, v.Passed, v.Reasons, v.Notes, tt.passed, tt.reasons, tt.notes)
		}
		if tt.headline != "" && v.Headline() != tt.headline {
			t.Errorf("%s: headline %q; want %q", tt.name, v.Headline(), tt.headline)
		}
	}
	v := loadtest.Judge(verdictRun, regressed, loadtest.FailOn{})
	if v.Thresholds != 3 || v.FailedThresholds != 1 || v.Checks != 2 || v.FailedChecks != 1 || v.CheckFails != 3 || v.CheckRuns != 100 || len(v.Regressions) != 2 {
		t.Errorf("counts %+v; want 3 thresholds (1 failed), 2 checks (1 failed, 3 of 100 runs), 2 regressions", v)
	}
}
