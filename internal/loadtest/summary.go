// Package loadtest summarizes k6's raw JSON output (k6 run --out json=FILE)
// in one streaming pass, so a load test of any length fits in constant memory.
package loadtest

import "time"

// SchemaVersion is the version of the summary.json schema that Summary
// encodes; it changes whenever a field changes meaning or is removed.
const SchemaVersion = 1

// Metric types, as k6 declares them in its Metric lines.
const (
	TypeTrend   = "trend"
	TypeCounter = "counter"
	TypeRate    = "rate"
	TypeGauge   = "gauge"
)

// Summary is the result of a k6 run, encoded as summary.json. Latencies are
// in milliseconds, as k6 reports them.
type Summary struct {
	SchemaVersion int `json:"schema_version"`
	// Start and End are the times of the first and last sample.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Metrics holds every metric of the run by its k6 name, and every
	// sub-metric a threshold selects by its name in the threshold
	// (http_req_duration{status:200}), as k6's own summary does.
	Metrics map[string]*MetricStats `json:"metrics"`
	// Groups splits http_req_duration by request name, method, status and
	// scenario, sorted by those fields.
	Groups []GroupStats `json:"groups"`
	// Checks holds each check's outcomes, sorted by group and name.
	Checks []CheckStats `json:"checks"`
	// ErrorsByStatus counts failed requests (http_reqs with a status of 400
	// or more, or 0 for a request that got no answer) by status.
	ErrorsByStatus map[string]int `json:"errors_by_status"`
	// Series holds one entry per second that has samples, in time order.
	Series []SecondStats `json:"series"`
	// Thresholds holds the outcome of each threshold evaluated over the
	// run, sorted by metric and then in the order given.
	Thresholds []ThresholdResult `json:"thresholds"`
}

// ThresholdResult is the outcome of one k6 threshold, evaluated as k6 does
// at the end of a run. Percentiles interpolate between ranks as k6 does,
// within 0.1% (the histogram's resolution); a counter's rate is per second
// between the first and the last sample, where k6 divides by the test's
// duration.
type ThresholdResult struct {
	// Metric is the metric as written in the threshold, with its tag
	// selector if any: http_req_duration{status:200}.
	Metric string `json:"metric"`
	// Expression is the threshold as written: p(95)<300.
	Expression string `json:"expression"`
	// Value is the observed value the expression tests, in the metric's
	// unit: the p(95) in milliseconds, a rate as a fraction (0.01 = 1%).
	Value float64 `json:"value"`
	// OK is true when the threshold passed and false when it failed.
	OK bool `json:"ok"`
	// Samples is the number of samples of the metric or sub-metric. With
	// none, k6 passes a rate threshold and compares the others with 0.
	Samples int64 `json:"samples"`
	// Error says why the threshold could not be evaluated (then OK is
	// false), like p(95) on a counter; it is empty otherwise.
	Error string `json:"error,omitempty"`
}

// MetricStats summarizes all samples of one metric. Count, Sum, Min, Max and
// Mean apply to every type; the percentiles to trends; Rate to rates and
// counters; Value to gauges.
type MetricStats struct {
	// Type is one of the Type constants, from k6's Metric line ("" if the
	// stream declares none; such a metric reports no percentiles).
	Type  string  `json:"type"`
	Count int64   `json:"count"`
	Sum   float64 `json:"sum"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	// Rate is the share of non-zero samples for a rate metric, and the sum
	// per second of the run (End - Start) for a counter.
	Rate float64 `json:"rate"`
	// Value is a gauge's latest value.
	Value float64 `json:"value"`
}

// GroupStats summarizes http_req_duration for one combination of tags.
type GroupStats struct {
	// Name is the request's name tag, which k6 sets to its URL by default.
	Name     string  `json:"name"`
	Method   string  `json:"method"`
	Status   string  `json:"status"`
	Scenario string  `json:"scenario"`
	Count    int64   `json:"count"`
	Min      float64 `json:"min"`
	Max      float64 `json:"max"`
	Mean     float64 `json:"mean"`
	P50      float64 `json:"p50"`
	P90      float64 `json:"p90"`
	P95      float64 `json:"p95"`
	P99      float64 `json:"p99"`
}

// CheckStats counts the outcomes of one check; Group is k6's group path
// ("" for checks outside any group).
type CheckStats struct {
	Name   string `json:"name"`
	Group  string `json:"group"`
	Passes int64  `json:"passes"`
	Fails  int64  `json:"fails"`
}

// SecondStats describes one second of the run.
type SecondStats struct {
	// Time is the start of the second, in UTC.
	Time time.Time `json:"time"`
	// Requests is the number of http_reqs in the second.
	Requests int64 `json:"requests"`
	// P50, P95 and P99 are http_req_duration percentiles in the second.
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	// ErrorRate is the share of failed requests (http_req_failed) in the second.
	ErrorRate float64 `json:"error_rate"`
	// VUs is the highest number of active virtual users in the second.
	VUs int `json:"vus"`
}
