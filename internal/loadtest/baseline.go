package loadtest

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// The metrics a baseline comparison knows: percentiles, mean and maximum of
// http_req_duration, the share of failed requests (http_req_failed), requests
// per second (http_reqs) and the share of failed checks.
const (
	RegressionP50       = "p50"
	RegressionP90       = "p90"
	RegressionP95       = "p95"
	RegressionP99       = "p99"
	RegressionAvg       = "avg"
	RegressionMax       = "max"
	RegressionErrorRate = "error-rate"
	RegressionRPS       = "rps"
	RegressionChecks    = "checks"
)

// Units of a Limit: percent relative to the baseline, or absolute
// percentage points for the metrics that are shares.
const (
	UnitPercent = "%"
	UnitPoints  = "pp"
)

// regressionMetrics lists the metrics in the order their forms are shown.
var regressionMetrics = []string{
	RegressionP50, RegressionP90, RegressionP95, RegressionP99, RegressionAvg, RegressionMax,
	RegressionErrorRate, RegressionRPS, RegressionChecks,
}

// regressionForms is the hint that ends an error about --max-regression.
const regressionForms = "want METRIC=N% or, for error-rate and checks, METRIC=Npp, separated by commas, like p95=10%,error-rate=0.5pp,rps=-20%; metrics: p50, p90, p95, p99, avg, max, error-rate, rps, checks"

// Limit is the largest regression of one metric allowed against a baseline.
type Limit struct {
	// Metric is one of the Regression constants.
	Metric string `json:"metric"`
	// Max is the allowed change in Unit: a rise for every metric but rps,
	// for which it is the allowed drop, written as a negative number.
	Max float64 `json:"max"`
	// Unit is UnitPercent (relative to the baseline) or UnitPoints.
	Unit string `json:"unit"`
}

// String gives the limit as written: p95=10%, rps=-20%, error-rate=0.5pp.
func (l Limit) String() string { return l.Metric + "=" + l.amount() }

// amount is the limit without its metric: 10%, -20%, 0.5pp.
func (l Limit) amount() string { return strconv.FormatFloat(l.Max, 'f', -1, 64) + l.Unit }

// ParseMaxRegression parses limits like "p95=10%,error-rate=0.5pp,rps=-20%".
// Every metric but rps regresses when it rises; rps regresses when it drops.
func ParseMaxRegression(s string) ([]Limit, error) {
	var out []Limit
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		l, err := parseLimit(part)
		if err != nil {
			return nil, fmt.Errorf("loadtest: max regression %q: %s", part, err)
		}
		if seen[l.Metric] {
			return nil, fmt.Errorf("loadtest: max regression %q: %s has a limit already; give each metric once", part, l.Metric)
		}
		seen[l.Metric] = true
		out = append(out, l)
	}
	return out, nil
}

func parseLimit(part string) (Limit, error) {
	metric, value, ok := strings.Cut(part, "=")
	metric, value = strings.TrimSpace(metric), strings.TrimSpace(value)
	if !ok {
		return Limit{}, fmt.Errorf("no =; %s", regressionForms)
	}
	if !slices.Contains(regressionMetrics, metric) {
		return Limit{}, fmt.Errorf("unknown metric %q; %s", metric, regressionForms)
	}
	l := Limit{Metric: metric}
	switch {
	case strings.HasSuffix(value, UnitPoints):
		l.Unit = UnitPoints
	case strings.HasSuffix(value, UnitPercent):
		l.Unit = UnitPercent
	default:
		return Limit{}, fmt.Errorf("%q has no unit; %s", value, regressionForms)
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(value, l.Unit)), 64)
	if err != nil || math.IsInf(n, 0) || math.IsNaN(n) {
		return Limit{}, fmt.Errorf("%q is not a number with a unit; %s", value, regressionForms)
	}
	l.Max = n
	switch {
	case l.Unit == UnitPoints && metric != RegressionErrorRate && metric != RegressionChecks:
		return Limit{}, fmt.Errorf("pp (percentage points) applies to error-rate and checks only; use %% for %s, like %s=10%%", metric, metric)
	case metric == RegressionRPS && n > 0:
		return Limit{}, fmt.Errorf("rps regresses when it drops; give the allowed drop as a negative change, like rps=-%s%%", strconv.FormatFloat(n, 'f', -1, 64))
	case metric != RegressionRPS && n < 0:
		return Limit{}, fmt.Errorf("%s regresses when it rises; give the allowed rise as a positive change, like %s=%s%s", metric, metric, strconv.FormatFloat(-n, 'f', -1, 64), l.Unit)
	}
	return l, nil
}

// Comparison is one metric of a run compared with the baseline's.
type Comparison struct {
	// Limit is the limit compared against.
	Limit Limit `json:"limit"`
	// Current and Baseline are the metric in each run: milliseconds for
	// latencies, a fraction for error-rate and checks (0.01 = 1%),
	// requests per second for rps.
	Current  float64 `json:"current"`
	Baseline float64 `json:"baseline"`
	// Delta is Current - Baseline.
	Delta float64 `json:"delta"`
	// Relative is Delta / Baseline (0.1 = 10% more); 0 when Baseline is 0.
	Relative float64 `json:"relative"`
	// Regressed is true when the change exceeds the limit. From a baseline
	// of 0, any rise exceeds a limit in %.
	Regressed bool `json:"regressed"`
	// Missing says why the metric could not be compared, like "no
	// http_req_duration in the baseline"; then Regressed is false.
	Missing string `json:"missing,omitempty"`
}

// Compare compares current with baseline for each limit, in order.
func Compare(current, baseline *Summary, limits []Limit) []Comparison {
	out := make([]Comparison, 0, len(limits))
	for _, l := range limits {
		c := Comparison{Limit: l}
		cur, curOK := RegressionValue(current, l.Metric)
		base, baseOK := RegressionValue(baseline, l.Metric)
		switch {
		case !curOK && !baseOK:
			c.Missing = "no " + regressionSource(l.Metric) + " in either run"
		case !curOK:
			c.Missing = "no " + regressionSource(l.Metric) + " in this run"
		case !baseOK:
			c.Missing = "no " + regressionSource(l.Metric) + " in the baseline"
		}
		if c.Missing != "" {
			out = append(out, c)
			continue
		}
		c.Current, c.Baseline, c.Delta = cur, base, cur-base
		if base != 0 {
			c.Relative = c.Delta / base
		}
		c.Regressed = exceeds(c, l)
		out = append(out, c)
	}
	return out
}

// exceeds reports whether the change in c is beyond l, allowing for
// floating-point rounding at the limit itself.
func exceeds(c Comparison, l Limit) bool {
	const slack = 1e-9
	if l.Unit == UnitPoints {
		return c.Delta*100 > l.Max+slack
	}
	if l.Metric == RegressionRPS {
		return c.Baseline > 0 && c.Relative*100 < l.Max-slack
	}
	if c.Baseline == 0 {
		return c.Current > 0
	}
	return c.Relative*100 > l.Max+slack
}

// RegressionValue returns metric (a Regression constant) of s, and false
// when s has no samples of it.
func RegressionValue(s *Summary, metric string) (float64, bool) {
	if s == nil {
		return 0, false
	}
	switch metric {
	case RegressionChecks:
		var passes, fails int64
		for _, c := range s.Checks {
			passes += c.Passes
			fails += c.Fails
		}
		if passes+fails == 0 {
			return 0, false
		}
		return float64(fails) / float64(passes+fails), true
	case RegressionErrorRate, RegressionRPS:
		m := s.Metrics[regressionSource(metric)]
		if m == nil || m.Count == 0 {
			return 0, false
		}
		return m.Rate, true
	}
	m := s.Metrics[metricDuration]
	if m == nil || m.Count == 0 {
		return 0, false
	}
	switch metric {
	case RegressionP50:
		return m.P50, true
	case RegressionP90:
		return m.P90, true
	case RegressionP95:
		return m.P95, true
	case RegressionP99:
		return m.P99, true
	case RegressionAvg:
		return m.Mean, true
	case RegressionMax:
		return m.Max, true
	}
	return 0, false
}

// regressionSource names the k6 metric behind a regression metric.
func regressionSource(metric string) string {
	switch metric {
	case RegressionErrorRate:
		return metricFailed
	case RegressionRPS:
		return metricRequests
	case RegressionChecks:
		return metricChecks
	}
	return metricDuration
}

// LoadSummary reads a summary.json written by this version of the schema,
// such as a baseline from an earlier run.
func LoadSummary(path string) (*Summary, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loadtest: read summary: %w", err)
	}
	var head struct {
		SchemaVersion *int `json:"schema_version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("loadtest: %s is not a summary.json: %v", path, err)
	}
	switch {
	case head.SchemaVersion == nil:
		return nil, fmt.Errorf("loadtest: %s has no schema_version, so it is not a gantry summary.json; give the summary.json of a gantry loadtest run", path)
	case *head.SchemaVersion != SchemaVersion:
		return nil, fmt.Errorf("loadtest: %s has schema_version %d, but this gantry reads version %d; make a new baseline with this gantry", path, *head.SchemaVersion, SchemaVersion)
	}
	var s Summary
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("loadtest: %s is not a summary.json: %v", path, err)
	}
	return &s, nil
}
