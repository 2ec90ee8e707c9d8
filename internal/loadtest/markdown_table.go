package loadtest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/gantry-dev/gantry/internal/markdown"
)

// keyRow is one row of the key-metrics table.
type keyRow struct {
	label  string
	stat   string // a key of statValue
	metric string // the k6 metric of its thresholds
	method func(*threshold) bool
	format func(float64) string
	// points shows changes in percentage points; worse is +1 when a rise
	// is worse, -1 when a drop is, 0 when neither.
	points bool
	worse  int
	// limit is the Regression constant of a limit on the row, if any.
	limit string
}

// keyMetrics is the table of requests, throughput, error rate, latencies
// and checks, with their thresholds and the change from the baseline.
func keyMetrics(s *Summary, cmps []Comparison, baseline *Summary) string {
	rows := []keyRow{
		{label: "Requests", stat: "requests", metric: metricRequests, method: isMethod(methodCount), format: formatCount},
		{label: "Throughput", stat: RegressionRPS, metric: metricRequests, method: isMethod(methodRate), format: formatRPS, worse: -1, limit: RegressionRPS},
		{label: "Error rate", stat: RegressionErrorRate, metric: metricFailed, method: isMethod(methodRate), format: formatPercent, points: true, worse: 1, limit: RegressionErrorRate},
	}
	rows = append(rows, latencyRows(s, cmps)...)
	rows = append(rows, keyRow{label: "Checks passed", stat: "checks-passed", metric: metricChecks, method: isMethod(methodRate), format: formatPercent, points: true, worse: -1, limit: RegressionChecks})

	showThresholds := len(s.Thresholds) > 0
	showBaseline := baseline != nil || len(cmps) > 0
	header := []string{"Metric", "This run"}
	if showThresholds {
		header = append(header, "Thresholds")
	}
	if showBaseline {
		header = append(header, "Baseline")
	}
	var table [][]string
	for _, r := range rows {
		cur, ok := statValue(s, r.stat)
		cell := "–"
		if ok {
			cell = r.format(cur)
			if r.stat == "checks-passed" {
				v := Judge(s, nil, FailOn{})
				cell += fmt.Sprintf(" (%s of %s failed)", formatCount(float64(v.CheckFails)), formatCount(float64(v.CheckRuns)))
			}
		}
		row := []string{r.label, cell}
		if showThresholds {
			row = append(row, thresholdCell(s, r))
		}
		if showBaseline {
			row = append(row, baselineCell(r, cur, ok, baseline, comparisonFor(cmps, r.limit)))
		}
		table = append(table, row)
	}
	return markdown.Table(header, table)
}

// latencyRows are the http_req_duration rows: p50, p95, p99 and max, and
// avg, min, p90 and other percentiles when a threshold or limit names them.
func latencyRows(s *Summary, cmps []Comparison) []keyRow {
	named := map[string]bool{}
	for _, r := range s.Thresholds {
		if t, err := parseExpression(r.Expression); err == nil && r.Metric == metricDuration {
			named[statKey(&t)] = true
		}
	}
	for _, c := range cmps {
		named[c.Limit.Metric] = true
	}
	keys := []string{RegressionAvg, "min", RegressionP50, RegressionP90, RegressionP95, RegressionP99}
	var others []float64
	for k := range named {
		if p, err := strconv.ParseFloat(strings.TrimPrefix(k, "p"), 64); err == nil && strings.HasPrefix(k, "p") && !slices.Contains(keys, k) {
			others = append(others, p)
		}
	}
	slices.Sort(others)
	for _, p := range others {
		keys = append(keys, "p"+strconv.FormatFloat(p, 'f', -1, 64))
	}
	keys = append(keys, RegressionMax)

	var rows []keyRow
	for _, k := range keys {
		always := k == RegressionP50 || k == RegressionP95 || k == RegressionP99 || k == RegressionMax
		if !always && !named[k] {
			continue
		}
		key := k
		row := keyRow{label: "Latency " + k, stat: k, metric: metricDuration, format: formatMs, worse: 1,
			method: func(t *threshold) bool { return statKey(t) == key }}
		if slices.Contains(regressionMetrics, k) {
			row.limit = k
		}
		rows = append(rows, row)
	}
	return rows
}

// statKey names the statistic a threshold tests: avg, min, max, count,
// rate, value, or pN for percentile N (med is p50).
func statKey(t *threshold) string {
	switch t.method {
	case methodMed:
		return RegressionP50
	case methodPercentile:
		return "p" + strconv.FormatFloat(t.pct, 'f', -1, 64)
	}
	return t.method
}

func isMethod(method string) func(*threshold) bool {
	return func(t *threshold) bool { return t.method == method }
}

// statValue returns a key-metric statistic of s: requests, checks-passed,
// min, a Regression constant, or pN. A latency a threshold tests is the
// threshold's value, so the row agrees with its verdict (k6 interpolates
// percentiles; the summary's own are nearest-rank).
func statValue(s *Summary, stat string) (float64, bool) {
	if s == nil {
		return 0, false
	}
	for _, r := range s.Thresholds {
		if t, err := parseExpression(r.Expression); err == nil && r.Metric == metricDuration && r.Error == "" && r.Samples > 0 && statKey(&t) == stat {
			return r.Value, true
		}
	}
	switch stat {
	case "requests":
		return valueIf(s.Metrics[metricRequests], func(m *MetricStats) float64 { return m.Sum })
	case "checks-passed":
		failed, ok := RegressionValue(s, RegressionChecks)
		return 1 - failed, ok
	case "min":
		return valueIf(s.Metrics[metricDuration], func(m *MetricStats) float64 { return m.Min })
	}
	return RegressionValue(s, stat)
}

func valueIf(m *MetricStats, f func(*MetricStats) float64) (float64, bool) {
	if m == nil || m.Count == 0 {
		return 0, false
	}
	return f(m), true
}

// thresholdCell lists the thresholds of a key-metric row with their outcome.
func thresholdCell(s *Summary, r keyRow) string {
	var parts []string
	more := 0
	for _, res := range s.Thresholds {
		t, err := parseExpression(res.Expression)
		if err != nil || res.Metric != r.metric || !r.method(&t) {
			continue
		}
		if len(parts) == maxCellThreshold {
			more++
			continue
		}
		parts = append(parts, mark(res.OK)+" "+code(res.Expression))
	}
	if more > 0 {
		parts = append(parts, fmt.Sprintf("+%d more", more))
	}
	return strings.Join(parts, " ")
}

// baselineCell shows the baseline's value of a row and the change to this
// run, with its limit.
func baselineCell(r keyRow, cur float64, curOK bool, baseline *Summary, c *Comparison) string {
	if c != nil && c.Missing != "" {
		return "n/a: " + c.Missing
	}
	base, ok := statValue(baseline, r.stat)
	if c != nil { // the comparison's own values, so the table agrees with the verdict
		base, cur, ok, curOK = c.Baseline, c.Current, true, true
		if r.stat == "checks-passed" {
			base, cur = 1-base, 1-cur
		}
	}
	if !ok {
		return "–"
	}
	cell := r.format(base)
	if curOK {
		cell += " " + change(cur, base, r.points, r.worse)
	}
	if c != nil {
		if c.Regressed {
			cell += ", ❌ beyond limit " + c.Limit.amount()
		} else {
			cell += ", within limit " + c.Limit.amount()
		}
	}
	return cell
}

// change describes the move from base to cur: ▲ +12.0% worse.
func change(cur, base float64, points bool, worse int) string {
	d := cur - base
	if d == 0 {
		return "(same)"
	}
	arrow, sign := "▲", 1
	if d < 0 {
		arrow, sign = "▼", -1
	}
	var amount string
	switch {
	case points:
		amount = fmt.Sprintf("%+.2fpp", d*100)
	case base == 0:
		amount = "from 0"
	default:
		amount = fmt.Sprintf("%+.1f%%", d/base*100)
	}
	switch worse {
	case 0:
		return arrow + " " + amount
	case sign:
		return arrow + " " + amount + " worse"
	}
	return arrow + " " + amount + " better"
}

// comparisonFor returns the comparison of a limit on metric, if any.
func comparisonFor(cmps []Comparison, metric string) *Comparison {
	for i := range cmps {
		if metric != "" && cmps[i].Limit.Metric == metric {
			return &cmps[i]
		}
	}
	return nil
}
