package loadtest

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Threshold aggregation methods, as k6 names them in threshold expressions.
const (
	methodValue      = "value"
	methodCount      = "count"
	methodRate       = "rate"
	methodAvg        = "avg"
	methodMin        = "min"
	methodMed        = "med"
	methodMax        = "max"
	methodPercentile = "p"
)

// operators are k6's threshold operators, longest first where one is a
// prefix of another, in the order k6 scans for them.
var operators = []string{"<=", "<", ">=", ">", "===", "==", "!="}

// methodsByType lists the aggregation methods k6 accepts on each metric type.
var methodsByType = map[string][]string{
	TypeCounter: {methodCount, methodRate},
	TypeGauge:   {methodValue},
	TypeRate:    {methodRate},
	TypeTrend:   {methodAvg, methodMin, methodMax, methodMed, methodPercentile},
}

// builtinTypes are the types of k6's built-in metrics (k6 v1.8.1), so a
// threshold on one can be checked before the run and evaluated without samples.
var builtinTypes = map[string]string{
	"vus":                      TypeGauge,
	"vus_max":                  TypeGauge,
	"iterations":               TypeCounter,
	"iteration_duration":       TypeTrend,
	"dropped_iterations":       TypeCounter,
	"checks":                   TypeRate,
	"group_duration":           TypeTrend,
	"http_reqs":                TypeCounter,
	"http_req_failed":          TypeRate,
	"http_req_duration":        TypeTrend,
	"http_req_blocked":         TypeTrend,
	"http_req_connecting":      TypeTrend,
	"http_req_tls_handshaking": TypeTrend,
	"http_req_sending":         TypeTrend,
	"http_req_waiting":         TypeTrend,
	"http_req_receiving":       TypeTrend,
	"ws_sessions":              TypeCounter,
	"ws_msgs_sent":             TypeCounter,
	"ws_msgs_received":         TypeCounter,
	"ws_ping":                  TypeTrend,
	"ws_session_duration":      TypeTrend,
	"ws_connecting":            TypeTrend,
	"grpc_req_duration":        TypeTrend,
	"data_sent":                TypeCounter,
	"data_received":            TypeCounter,
}

// metricNameRE is k6's rule for metric names; no other metric can exist.
var metricNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{1,128}$`)

// thresholdSyntax is the hint that ends an error about a malformed expression.
const thresholdSyntax = "want METHOD OPERATOR NUMBER, like p(95)<300, with a method of avg, min, med, max, p(N), count, rate or value and an operator of < <= > >= == === !="

// threshold is one parsed k6 threshold on a metric or a tag-selected part
// of it (a k6 sub-metric).
type threshold struct {
	metric   string     // as written: http_req_duration{status:200}
	expr     string     // as written: p(95) < 300
	base     string     // the metric without the selector: http_req_duration
	selector []tagMatch // nil for the whole metric
	method   string     // one of the method constants
	pct      float64    // the N of p(N)
	op       string     // one of operators
	value    float64    // the right-hand side
}

// tagMatch is one key:value of a tag selector; a sample matches a selector
// when it has every one of its tags.
type tagMatch struct{ key, value string }

// parseThresholds parses every threshold of a script's options.thresholds
// (metric → expressions), sorted by metric and then in the given order.
func parseThresholds(m map[string][]string) ([]threshold, error) {
	metrics := make([]string, 0, len(m))
	for metric := range m {
		metrics = append(metrics, metric)
	}
	sort.Strings(metrics)
	var out []threshold
	for _, metric := range metrics {
		base, selector, err := parseMetricSelector(metric)
		if err != nil {
			return nil, err
		}
		for _, expr := range m[metric] {
			t, err := parseExpression(expr)
			if err != nil {
				return nil, fmt.Errorf("loadtest: threshold %q on %s: %w", expr, metric, err)
			}
			t.metric, t.base, t.selector = metric, base, selector
			if typ, ok := builtinTypes[base]; ok && !slices.Contains(methodsByType[typ], t.method) {
				return nil, fmt.Errorf("loadtest: threshold %q on %s: %s", expr, metric, wrongMethod(t.method, typ))
			}
			out = append(out, t)
		}
	}
	return out, nil
}

// wrongMethod says that method does not apply to a metric of type typ.
func wrongMethod(method, typ string) string {
	if method == methodPercentile {
		method = "p(N)"
	}
	methods := slices.Clone(methodsByType[typ])
	for i, m := range methods {
		if m == methodPercentile {
			methods[i] = "p(N)"
		}
	}
	return fmt.Sprintf("%s does not apply to a %s metric; use %s", method, typ, strings.Join(methods, ", "))
}

// ValidateThresholds checks a metric → expressions map as k6 would before a
// run: the syntax of every expression and selector, and the method against
// the type of k6's built-in metrics.
func ValidateThresholds(m map[string][]string) error {
	_, err := parseThresholds(m)
	return err
}

// parseExpression parses a threshold expression as k6 v1.8.1 does: the
// first operator found splits it, and both sides are trimmed.
func parseExpression(expr string) (threshold, error) {
	t := threshold{expr: expr}
	var left, right string
	for _, op := range operators {
		if l, r, _ := strings.Cut(expr, op); r != "" {
			left, right, t.op = strings.TrimSpace(l), strings.TrimSpace(r), op
			break
		}
	}
	if t.op == "" {
		return t, errors.New("no operator; " + thresholdSyntax)
	}
	switch left {
	case methodValue, methodCount, methodRate, methodAvg, methodMin, methodMed, methodMax:
		t.method = left
	default:
		if !strings.HasPrefix(left, "p(") || !strings.HasSuffix(left, ")") {
			return t, fmt.Errorf("unknown method %q; %s", left, thresholdSyntax)
		}
		pct, err := strconv.ParseFloat(left[2:len(left)-1], 64)
		if err != nil {
			return t, fmt.Errorf("percentile %q is not a number; %s", left, thresholdSyntax)
		}
		// k6 parses any number here but fails at run time outside [0, 100].
		if !(pct >= 0 && pct <= 100) {
			return t, fmt.Errorf("percentile %q is outside 0 to 100", left)
		}
		t.method, t.pct = methodPercentile, pct
	}
	v, err := strconv.ParseFloat(right, 64)
	if err != nil {
		return t, fmt.Errorf("%q after %s is not a number; %s", right, t.op, thresholdSyntax)
	}
	t.value = v
	return t, nil
}

// parseMetricSelector splits a threshold's metric into the metric name and
// its tag selector, following k6's own checks: http_req_duration{name:login,
// method:GET}, with spaces and quotes around keys and values dropped.
func parseMetricSelector(metric string) (string, []tagMatch, error) {
	open, close := strings.IndexByte(metric, '{'), strings.LastIndexByte(metric, '}')
	base := metric
	switch {
	case open < 0 && close < 0:
	case open < 0 || close < 0 || close < open || close != len(metric)-1:
		return "", nil, fmt.Errorf("loadtest: threshold metric %q: unbalanced braces; want METRIC or METRIC{TAG:VALUE,...}, like http_req_duration{status:200}", metric)
	default:
		base = metric[:open]
	}
	if !metricNameRE.MatchString(base) {
		return "", nil, fmt.Errorf("loadtest: threshold metric %q: %q is not a k6 metric name (2 to 129 letters, digits or underscores, not starting with a digit)", metric, base)
	}
	if open < 0 {
		return base, nil, nil
	}
	var sel []tagMatch
	for kv := range strings.SplitSeq(metric[open+1:close], ",") {
		k, v, _ := strings.Cut(kv, ":")
		if v == "" {
			return "", nil, fmt.Errorf("loadtest: threshold metric %q: tag %q has no value; want METRIC{TAG:VALUE,...}, like http_req_duration{status:200}", metric, kv)
		}
		key := strings.Trim(strings.TrimSpace(k), `"'`)
		if key == "" {
			return "", nil, fmt.Errorf("loadtest: threshold metric %q: tag %q has no name; want METRIC{TAG:VALUE,...}, like http_req_duration{status:200}", metric, kv)
		}
		sel = setTag(sel, tagMatch{key, strings.Trim(strings.TrimSpace(v), `"'`)})
	}
	return base, sel, nil
}

// setTag adds m to sel, replacing an earlier value of its key as k6's tag
// sets do, and keeps sel sorted by key.
func setTag(sel []tagMatch, m tagMatch) []tagMatch {
	i, found := slices.BinarySearchFunc(sel, m.key, func(t tagMatch, key string) int { return strings.Compare(t.key, key) })
	if found {
		sel[i] = m
		return sel
	}
	return slices.Insert(sel, i, m)
}

// selectorKey is a canonical form of a selector, so thresholds on the same
// tags share one sub-metric.
func selectorKey(base string, sel []tagMatch) string {
	var b strings.Builder
	b.WriteString(base)
	for _, m := range sel {
		b.WriteString("\x00" + m.key + "\x00" + m.value)
	}
	return b.String()
}

// holds applies the threshold's operator to an observed value.
func (t *threshold) holds(v float64) bool {
	switch t.op {
	case "<":
		return v < t.value
	case "<=":
		return v <= t.value
	case ">":
		return v > t.value
	case ">=":
		return v >= t.value
	case "==", "===":
		return v == t.value
	case "!=":
		return v != t.value
	}
	return false
}

// finite replaces NaN and infinities, which JSON cannot encode, with 0.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}
